package mesh

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// newHost builds the libp2p host: TCP and QUIC, Noise and TLS, the resource
// manager sized by resourceLimits, and a connection manager whose high water
// mark stays below the resource manager's connection limits.
func newHost(cfg *Config) (host.Host, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits(cfg)))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.DisableRelay(),
		libp2p.ConnectionGater(denyGater{deny: denySet(cfg.Deny)}),
		libp2p.UserAgent(userAgent(cfg.Version)),
	)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("libp2p host on %v: %w", cfg.ListenAddrs, err)
	}
	return h, nil
}

// resourceLimits sizes libp2p's resource manager for a small node rather
// than for the machine it runs on (AutoScale would hand libp2p an eighth of
// the machine's memory, which on a shared host is the operator's, not the
// mesh's):
//
//   - the whole stack holds at most cfg.ResourceMemory bytes and
//     cfg.ResourceFDs descriptors, and one peer at most an eighth of the
//     memory, so no single peer can exhaust it;
//   - connections: ConnHigh·1.25 inbound and ConnHigh·1.5 in all, so the
//     connection manager (which trims above ConnHigh) acts first and the
//     resource manager only refuses a burst beyond it;
//   - the blob protocol serves blobServers streams at once and
//     blobPeerStreams per peer, so a peer that opens streams and stalls holds
//     four of the slots, never all of them. Gossipsub, the DHT and identify
//     keep libp2p's per-service defaults.
func resourceLimits(cfg *Config) rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	blob := blobProtocolID(cfg.NetworkID)
	limits.AddProtocolLimit(blob, rcmgr.BaseLimit{
		StreamsInbound: blobServers, StreamsOutbound: blobServers, Streams: 2 * blobServers,
		Memory: cfg.ResourceMemory / 4,
	}, rcmgr.BaseLimitIncrease{})
	limits.AddProtocolPeerLimit(blob, rcmgr.BaseLimit{
		StreamsInbound: blobPeerStreams, StreamsOutbound: blobPeerStreams, Streams: 2 * blobPeerStreams,
		Memory: cfg.ResourceMemory / 8,
	}, rcmgr.BaseLimitIncrease{})
	scaled := limits.Scale(cfg.ResourceMemory, cfg.ResourceFDs)

	in, all := cfg.ConnHigh*5/4, cfg.ConnHigh*3/2
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
