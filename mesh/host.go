package mesh

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// newHost builds the libp2p host: TCP and QUIC, Noise and TLS, the resource
// manager sized by resourceLimits, and a connection manager whose high water
// mark stays below the resource manager's connection limits; and go-libp2p's
// NAT services (DESIGN.md "Reaching nodes"):
//
//   - AutoNAT v2 confirms which addresses others can dial (observed
//     addresses from identify are advertised once confirmed), and the
//     AutoNAT v1 service answers other nodes' reachability checks (v1's
//     verdict drives AutoRelay, the relay service and the DHT's mode);
//   - AutoRelay reserves a slot on a circuit relay while the node is not
//     publicly reachable, taking candidates from relaySource (the static
//     ones from network.json first, then peers offering relay service);
//   - hole punching (DCUtR) turns a relayed connection into a direct one;
//   - the relay service, bounded by relayResources, runs once the node is
//     public (cfg.RelayService);
//   - UPnP/NAT-PMP port mapping on request (cfg.NATPortMap);
//   - the AddrPolicy of cfg decides what the node advertises.
func newHost(cfg *Config, ref *hostRef) (host.Host, error) {
	if err := checkListenFree(cfg.ListenAddrs); err != nil {
		return nil, err
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits(cfg)))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	grace := time.Minute
	if cfg.connGrace > 0 {
		grace = cfg.connGrace // tests only
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(grace))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(newConns(cm, cfg.NetworkID)),
		libp2p.UserAgent(userAgent(cfg.Version)),
		// libp2p's own metrics went to the process-wide default registry,
		// which no /metrics serves: collected for nobody, at a cost on
		// every connection, stream and dial.
		libp2p.DisableMetrics(),
		// TCP first, QUIC a moment later (dialrank.go).
		libp2p.SwarmOpts(swarm.WithDialRanker(tcpFirst)),
	}
	policy := AddrPolicy{Announce: cfg.Announce, NoAnnounce: cfg.NoAnnounce, Network: cfg.NetworkAddrs}
	opts = append(opts, libp2p.ConnectionGater(denyGater{deny: denySet(cfg.Deny), scope: &dialScope{policy: policy, host: ref}}))
	opts = append(opts,
		libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
			return policy.Filter(policy.AddRelays(addrs, ref.reservedRelays()))
		}),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableNATService(),
		libp2p.EnableHolePunching(),
		libp2p.EnableAutoRelayWithPeerSource((&relaySource{static: cfg.StaticRelays, host: ref}).peers,
			autorelay.WithMinCandidates(1),          // one static relay is enough to start
			autorelay.WithBootDelay(10*time.Second), // then take what the peer source found
			autorelay.WithBackoff(time.Minute),      // retry a refusing relay after a minute, not an hour
			autorelay.WithMinInterval(10*time.Second),
		),
	)
	if cfg.RelayService {
		opts = append(opts, libp2p.EnableRelayService(relayv2.WithResources(relayResources())))
	}
	if cfg.NATPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	switch cfg.Reachability {
	case ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	opts = append(opts, cfg.hostOptions...) // tests only: nil in production
	h, err := libp2p.New(opts...)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("libp2p host on %v: %w", cfg.ListenAddrs, err)
	}
	ref.p.Store(&h)
	return h, nil
}

// relayResources bounds what the relay service gives others. A relayed
// connection is "limited" in libp2p's terms: gossipsub and the DHT do not
// use it (a node behind a NAT gossips over its own outbound connections);
// it carries identify, hole punching and, when no direct path comes up, a
// blob now and then (blobStreamContext), never a stream of bulk data.
func relayResources() relayv2.Resources {
	r := relayv2.DefaultResources()
	r.Limit = &relayv2.RelayLimit{
		Duration: 10 * time.Minute, // a relayed connection is reset after 10 minutes (the client redials)
		Data:     4 << 20,          // and after 4 MiB each way: task inputs and outputs, not proving keys
	}
	r.MaxReservations = 64 // nodes behind NATs this node relays for
	r.MaxCircuits = 8      // relayed connections at once per reserving node
	r.MaxReservationsPerIP = 4
	r.MaxReservationsPerASN = 16
	return r
}

// resourceLimits sizes libp2p's resource manager for a small node rather
// than for the machine it runs on (AutoScale would hand libp2p an eighth of
// the machine's memory, which on a shared host is the operator's, not the
// mesh's):
//
//   - the whole stack holds at most cfg.ResourceMemory bytes and
//     cfg.ResourceFDs descriptors, and one peer at most an eighth of the
//     memory, so no single peer can exhaust it;
//   - connections: ConnLimit·1.25 inbound and ConnLimit·1.5 in all, so the
//     connection manager (which trims above ConnHigh ≤ ConnLimit) acts
//     first and the resource manager only refuses a burst beyond it;
//   - the blob and results protocols each serve 16 streams at once
//     (blobServers, resultsServers: slots of their own) and
//     blobPeerStreams per peer, so a peer that opens streams and stalls
//     holds four of either's slots, never all of them; the probe protocol
//     (indirect probes) 32 streams and 3 inbound per peer. Gossipsub, the DHT and identify
//     keep libp2p's per-service defaults.
func resourceLimits(cfg *Config) rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	for _, proto := range []libp2pproto.ID{blobProtocolID(cfg.NetworkID), resultsProtocolID(cfg.NetworkID)} {
		limits.AddProtocolLimit(proto, rcmgr.BaseLimit{
			StreamsInbound: blobServers, StreamsOutbound: blobServers, Streams: 2 * blobServers,
			Memory: cfg.ResourceMemory / 4,
		}, rcmgr.BaseLimitIncrease{})
		limits.AddProtocolPeerLimit(proto, rcmgr.BaseLimit{
			StreamsInbound: blobPeerStreams, StreamsOutbound: blobPeerStreams, Streams: 2 * blobPeerStreams,
			Memory: cfg.ResourceMemory / 8,
		}, rcmgr.BaseLimitIncrease{})
	}
	// Indirect probes (vouch.go): tiny streams, vouchServers served at
	// once (more wait for their answer), a few per peer.
	limits.AddProtocolLimit(probeProtocolID(cfg.NetworkID), rcmgr.BaseLimit{
		StreamsInbound: 4 * vouchServers, StreamsOutbound: 4 * vouchServers, Streams: 8 * vouchServers,
		Memory: 1 << 20,
	}, rcmgr.BaseLimitIncrease{})
	limits.AddProtocolPeerLimit(probeProtocolID(cfg.NetworkID), rcmgr.BaseLimit{
		StreamsInbound: vouchHelpers, StreamsOutbound: 4 * vouchHelpers, Streams: 5 * vouchHelpers,
		Memory: 64 << 10,
	}, rcmgr.BaseLimitIncrease{})
	scaled := limits.Scale(cfg.ResourceMemory, cfg.ResourceFDs)

	in, all := cfg.ConnLimit*5/4, cfg.ConnLimit*3/2
	system := rcmgr.ResourceLimits{
		ConnsInbound:  rcmgr.LimitVal(in),
		ConnsOutbound: rcmgr.LimitVal(all),
		Conns:         rcmgr.LimitVal(all),
		Memory:        rcmgr.LimitVal64(cfg.ResourceMemory),
		FD:            rcmgr.LimitVal(cfg.ResourceFDs),
	}
	peerMem := rcmgr.ResourceLimits{Memory: rcmgr.LimitVal64(cfg.ResourceMemory / 8)}
	partial := rcmgr.PartialLimitConfig{
		System:               system,
		AllowlistedSystem:    system,
		PeerDefault:          peerMem,
		Transient:            rcmgr.ResourceLimits{Memory: rcmgr.LimitVal64(cfg.ResourceMemory / 8)},
		AllowlistedTransient: rcmgr.ResourceLimits{Memory: rcmgr.LimitVal64(cfg.ResourceMemory / 8)},
	}
	return partial.Build(scaled)
}

func denySet(ids []peer.ID) map[peer.ID]bool {
	m := make(map[peer.ID]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
