package mesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/marcopolo/simnet"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/proofmesh/proofmesh/protocol"
)

// Hole punching needs what loopback cannot give: public addresses (the
// hole-punch service starts only once the host has one) and a firewall
// that drops unsolicited inbound packets. go-libp2p's simulated network
// (github.com/marcopolo/simnet, the one its own holepunch tests use) gives
// both in-process: QUIC runs over simulated UDP sockets on public-looking
// addresses, and SimpleFirewallRouter lets a packet into a node that is
// not publicly reachable only from an address that node has sent to. A
// direct connection between two such nodes therefore comes up only when
// both dial at once, which is what DCUtR coordinates over the relay.
//
// The tests swap only the transport's sockets and the listen addresses
// (Config.hostOptions, Config.ListenAddrs); everything else is mesh.New and
// newHost as in production: AutoNAT v2, hole punching, AutoRelay with
// proofmesh's relay source, the bounded relay service, the address
// policy, forced reachability, the DHT, gossipsub and the blob protocol.

// simQUIC makes a host's QUIC transport use simnet sockets attached to
// router. A public node's address is reachable from anywhere; any other's
// only from addresses it has sent to.
func simQUIC(router *simnet.SimpleFirewallRouter, public bool) libp2p.Option {
	src := &simSourceIP{}
	return libp2p.QUICReuse(quicreuse.NewConnManager,
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) { return src, nil }),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			src.ip.Store(&addr.IP)
			if public {
				router.SetAddrPubliclyReachable(addr)
			}
			c := simnet.NewSimConn(addr)
			c.SetUpPacketReceiver(router) // conn -> router (AddNode wires router -> conn)
			router.AddNode(addr, c)
			return c, nil
		}))
}

// simSourceIP answers quicreuse's "which local IP reaches this address"
// with the simulated node's own IP (there is no routing table to ask).
type simSourceIP struct{ ip atomic.Pointer[net.IP] }

func (s *simSourceIP) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) {
	if ip := s.ip.Load(); ip != nil {
		return *ip, nil
	}
	return nil, errors.New("simnet: not listening yet")
}

// punchTracer records the hole-punch service's events.
type punchTracer struct {
	mu     sync.Mutex
	events []*holepunch.Event
}

func (p *punchTracer) Trace(e *holepunch.Event) {
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}

// upgraded returns the event by which the service got a direct connection
// to remote (a successful direct dial or hole punch), if any.
func (p *punchTracer) upgraded(remote peer.ID) (*holepunch.Event, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.events {
		if e.Remote != remote {
			continue
		}
		switch ev := e.Evt.(type) {
		case *holepunch.DirectDialEvt:
			if ev.Success {
				return e, true
			}
		case *holepunch.EndHolePunchEvt:
			if ev.Success {
				return e, true
			}
		}
	}
	return nil, false
}

func (p *punchTracer) all() []*holepunch.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// traceHolePunching adds tr to the hole-punch service's options. It does
// not enable hole punching: it fails the host's construction unless
// proofmesh's own options already did, and it appends to their options
// rather than replacing them.
func traceHolePunching(tr *punchTracer) libp2p.Option {
	return func(c *libp2p.Config) error {
		if !c.EnableHolePunching {
			return errors.New("proofmesh's host options do not enable hole punching")
		}
		c.HolePunchingOptions = append(c.HolePunchingOptions, holepunch.WithTracer(tr))
		return nil
	}
}

// connLog records whether the first connection a host opened to each peer
// went through a relay.
type connLog struct {
	mu           sync.Mutex
	firstRelayed map[peer.ID]bool
}

func (l *connLog) Connected(_ network.Network, c network.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstRelayed == nil {
		l.firstRelayed = make(map[peer.ID]bool)
	}
	if _, seen := l.firstRelayed[c.RemotePeer()]; !seen {
		l.firstRelayed[c.RemotePeer()] = isRelayed(c.RemoteMultiaddr())
	}
}
func (l *connLog) Disconnected(network.Network, network.Conn) {}
func (l *connLog) Listen(network.Network, ma.Multiaddr)       {}
func (l *connLog) ListenClose(network.Network, ma.Multiaddr)  {}

func (l *connLog) first(p peer.ID) (relayed, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	relayed, ok = l.firstRelayed[p]
	return relayed, ok
}

// circuitAddrs returns m's advertised /p2p-circuit addresses without the
// trailing /p2p/<m>.
func circuitAddrs(m *Mesh) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range m.Addrs() {
		if isRelayed(a) {
			base, _ := ma.SplitLast(a)
			out = append(out, base)
		}
	}
	return out
}

// waitHolePunchReady waits until m's hole-punch service runs. go-libp2p
// starts it only once the host has a public address, which it polls for
// with a backoff of up to 5 s; only then does the service watch for
// relayed connections, and one that came up before is never upgraded.
// The service registers the DCUtR protocol handler as it starts.
func waitHolePunchReady(t *testing.T, m *Mesh) {
	t.Helper()
	eventually(t, 60*time.Second, "the hole-punch service to start", func() bool {
		return slices.Contains(m.Host().Mux().Protocols(), holepunch.Protocol)
	})
}

// natPunchTrio starts, on one simulated network, a relay (public, relay
// service on) and two nodes behind firewalls (forced private, the relay as
// their static relay) that serve one blob each, and returns once both
// advertise a circuit address through the relay. aConns has watched a's
// connections since before b existed.
func natPunchTrio(t *testing.T) (relay, a, b *Mesh, trA, trB *punchTracer, aConns *connLog, blob []byte, hash string) {
	t.Helper()
	router := &simnet.SimpleFirewallRouter{}
	relay = newTestMesh(t, "punch", func(c *Config) {
		c.Reachability = ReachabilityPublic
		c.ListenAddrs = []string{"/ip4/1.2.0.1/udp/8000/quic-v1"}
		c.hostOptions = []libp2p.Option{simQUIC(router, true)}
	})
	if !relay.cfg.RelayService {
		t.Fatal("the relay's config does not offer relay service")
	}
	relayInfo := peer.AddrInfo{ID: relay.ID(), Addrs: relay.Host().Addrs()}
	blob = bytes.Repeat([]byte("hole-punched blob "), 1000)
	sum := sha256.Sum256(blob)
	hash = hex.EncodeToString(sum[:])
	private := func(listen string, tr *punchTracer) *Mesh {
		return newTestMesh(t, "punch", func(c *Config) {
			c.Reachability = ReachabilityPrivate
			c.StaticRelays = []peer.AddrInfo{relayInfo}
			c.ListenAddrs = []string{listen}
			c.Blob = func(h string) ([]byte, bool) { return blob, h == hash }
			// A fetch would go through the relay only after this wait,
			// far beyond the test's deadlines: a blob that arrives came
			// over a direct connection.
			c.BlobDirectWait = time.Hour
			c.hostOptions = []libp2p.Option{simQUIC(router, false), traceHolePunching(tr)}
			// No rendezvous discovery: it could connect a and b through
			// the relay before their hole-punch services have started
			// (see waitHolePunchReady), and that connection would never
			// be upgraded. The test makes the one relayed connection.
			c.DHT = false
		})
	}
	trA, trB = &punchTracer{}, &punchTracer{}
	t.Cleanup(func() {
		if t.Failed() {
			for _, tr := range []*punchTracer{trA, trB} {
				for _, e := range tr.all() {
					t.Logf("hole-punch event on %s with %s: %s %+v", e.Peer, e.Remote, e.Type, e.Evt)
				}
			}
		}
	})
	a = private("/ip4/2.2.0.1/udp/8000/quic-v1", trA)
	aConns = &connLog{}
	a.Host().Network().Notify(aConns)
	t.Cleanup(func() { a.Host().Network().StopNotify(aConns) })
	b = private("/ip4/2.2.0.2/udp/8001/quic-v1", trB)
	for _, m := range []*Mesh{a, b} {
		eventually(t, 60*time.Second, "a reservation on the relay and a circuit address", func() bool {
			return len(circuitAddrs(m)) > 0
		})
		waitHolePunchReady(t, m)
	}
	return relay, a, b, trA, trB, aConns, blob, hash
}

// Two nodes behind simulated firewalls, each holding a reservation on a
// public relay, meet through the relay (/p2p-circuit) and DCUtR upgrades
// the relayed connection to a direct one; gossipsub then runs over the
// direct connection and a blob comes over it.
func TestHolePunchUpgradesRelayedConnection(t *testing.T) {
	_, a, b, trA, trB, aConns, blob, hash := natPunchTrio(t)

	// a dials b's circuit addresses. Nothing but a hole punch can then
	// connect them directly: each one's firewall drops the other's packets
	// until it has sent to the other
	// (TestHolePunchControlFirewallDropsUnsolicitedDials).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: circuitAddrs(b)}); err != nil {
		t.Fatalf("dial through the relay: %v", err)
	}
	if relayed, ok := aConns.first(b.ID()); !ok || !relayed {
		t.Fatalf("a's first connection to b was not through the relay (recorded: %v)", ok)
	}

	eventually(t, 60*time.Second, "a direct connection both ways", func() bool {
		return a.directConn(b.ID()) && b.directConn(a.ID())
	})
	var how *holepunch.Event
	eventually(t, 30*time.Second, "the hole-punch service's record of the upgrade", func() bool {
		var ok bool
		if how, ok = trB.upgraded(a.ID()); !ok {
			how, ok = trA.upgraded(b.ID())
		}
		return ok
	})
	t.Logf("upgraded by %s on %s; a's events %d, b's events %d", how.Type, how.Peer, len(trA.all()), len(trB.all()))
	for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
		if !c.Stat().Limited && !isRelayed(c.RemoteMultiaddr()) {
			t.Logf("direct connection a -> b: %s", c.RemoteMultiaddr())
		}
	}

	// Gossipsub opens no stream over a limited (relayed) connection: b is
	// a's topic peer only over the direct one.
	topic := TopicName("punch", KindHeartbeat)
	eventually(t, 60*time.Second, "a and b gossipsub peers over the direct connection", func() bool {
		return slices.Contains(a.ps.ListPeers(topic), b.ID()) && slices.Contains(b.ps.ListPeers(topic), a.ID())
	})
	eventually(t, 60*time.Second, "heartbeats both ways", func() bool {
		return statusOf(a, b.ID()) == protocol.StatusOnline && statusOf(b, a.ID()) == protocol.StatusOnline
	})

	// BlobDirectWait is an hour: the blob can only have come directly.
	fctx, fcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer fcancel()
	got, err := a.FetchBlob(fctx, b.ID(), hash, 0)
	if err != nil {
		t.Fatalf("fetch over the hole-punched connection: %v", err)
	}
	if !bytes.Equal(got, blob) {
		t.Fatal("wrong blob")
	}
}

// The control for TestHolePunchUpgradesRelayedConnection: on the simulated
// network an unsolicited direct dial to a node behind a firewall fails, and
// the same pair connects once the callee has sent to the caller. Order of
// sending is all that matters, which is what DCUtR coordinates; without it
// (hole punching removed from newHost) the hole-punching test finds no
// direct connection.
func TestHolePunchControlFirewallDropsUnsolicitedDials(t *testing.T) {
	router := &simnet.SimpleFirewallRouter{}
	private := func(listen string) *Mesh {
		return newTestMesh(t, "punch", func(c *Config) {
			c.Reachability = ReachabilityPrivate
			c.ListenAddrs = []string{listen}
			c.hostOptions = []libp2p.Option{simQUIC(router, false)}
		})
	}
	a := private("/ip4/2.2.0.1/udp/8000/quic-v1")
	b := private("/ip4/2.2.0.2/udp/8001/quic-v1")
	direct := func(m *Mesh) peer.AddrInfo {
		return peer.AddrInfo{ID: m.ID(), Addrs: m.Host().Network().ListenAddresses()}
	}

	short, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Connect(short, direct(b)); err == nil {
		t.Fatal("a dialed b directly although b's firewall has seen nothing from b to a")
	} else {
		t.Logf("a -> b refused by b's firewall: %v", err)
	}
	// a's dial opened a's firewall to b: b's dial now gets through.
	ctx, cancel2 := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel2()
	if err := b.Connect(ctx, direct(a)); err != nil {
		t.Fatalf("b -> a after a sent to b: %v", err)
	}
	if !a.directConn(b.ID()) || !b.directConn(a.ID()) {
		t.Fatal("no direct connection between a and b")
	}
}
