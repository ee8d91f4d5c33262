package mesh

import (
	"context"
	"slices"
	"sync/atomic"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// relaySource feeds AutoRelay: the static relays first, then peers this
// node knows that offer relay service (identify lists the circuit v2 hop
// protocol for them). The host is set once it exists.
type relaySource struct {
	static []peer.AddrInfo
	host   *hostRef
}

// hostRef lets the options given to libp2p.New reach the host it builds.
type hostRef struct{ p atomic.Pointer[host.Host] }

func (r *hostRef) get() host.Host {
	if hp := r.p.Load(); hp != nil {
		return *hp
	}
	return nil
}

// reservedRelays returns the relays AutoRelay holds a reservation with
// (it protects their connections with its tag), with their direct
// addresses.
func (r *hostRef) reservedRelays() []peer.AddrInfo {
	h := r.get()
	if h == nil {
		return nil
	}
	var out []peer.AddrInfo
	for _, p := range h.Network().Peers() {
		if h.ConnManager().IsProtected(p, "autorelay") {
			out = append(out, peer.AddrInfo{ID: p, Addrs: slices.DeleteFunc(slices.Clone(h.Peerstore().Addrs(p)), isRelayed)})
		}
	}
	return out
}

func (r *relaySource) peers(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, num)
	defer close(out)
	seen := map[peer.ID]bool{}
	add := func(ai peer.AddrInfo) bool {
		if len(out) == num || seen[ai.ID] || len(ai.Addrs) == 0 {
			return len(out) < num
		}
		seen[ai.ID] = true
		out <- ai
		return len(out) < num
	}
	for _, ai := range r.static {
		if !add(ai) {
			return out
		}
	}
	h := r.host.get()
	if h == nil {
		return out
	}
	ps := h.Peerstore()
	// Connected peers first: they answered identify recently.
	candidates := h.Network().Peers()
	for _, p := range ps.PeersWithAddrs() {
		if !slices.Contains(candidates, p) {
			candidates = append(candidates, p)
		}
	}
	for _, p := range candidates {
		if ctx.Err() != nil || p == h.ID() {
			continue
		}
		if ok, err := ps.SupportsProtocols(p, proto.ProtoIDv2Hop); err != nil || len(ok) == 0 {
			continue
		}
		addrs := slices.DeleteFunc(slices.Clone(ps.Addrs(p)), isRelayed)
		if !add(peer.AddrInfo{ID: p, Addrs: addrs}) {
			break
		}
	}
	return out
}

// dhtMode chooses the DHT's mode: a client when forced private, a server
// when forced public or when the network is private or loopback (AutoNAT
// only confirms public addresses, so there it would never say public), and
// otherwise by AutoNAT's verdict. own are the node's listen addresses with
// unspecified ones expanded to the interfaces.
func dhtMode(cfg *Config, own []ma.Multiaddr) dht.ModeOpt {
	switch cfg.Reachability {
	case ReachabilityPublic:
		return dht.ModeServer
	case ReachabilityPrivate:
		return dht.ModeClient
	}
	policy := AddrPolicy{Network: cfg.NetworkAddrs}
	if private, loopback := policy.Scope(own); private || loopback {
		return dht.ModeServer
	}
	return dht.ModeAuto
}

// listenAddrs returns the host's listen addresses with the unspecified ones
// expanded to the machine's interface addresses.
func listenAddrs(h host.Host) []ma.Multiaddr {
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return h.Network().ListenAddresses()
	}
	out, err := manet.ResolveUnspecifiedAddresses(h.Network().ListenAddresses(), ifaces)
	if err != nil {
		return h.Network().ListenAddresses()
	}
	return out
}

// Reachability returns AutoNAT's latest verdict on this node: "public",
// "private" or "unknown".
func (m *Mesh) Reachability() string {
	switch network.Reachability(m.reach.Load()) {
	case network.ReachabilityPublic:
		return ReachabilityPublic
	case network.ReachabilityPrivate:
		return ReachabilityPrivate
	default:
		return "unknown"
	}
}

// watchReachability follows AutoNAT's verdict and logs each change with
// the addresses the node now advertises.
func (m *Mesh) watchReachability() error {
	return m.follow("proofmesh reachability", new(event.EvtLocalReachabilityChanged), func(ev any) {
		r := ev.(event.EvtLocalReachabilityChanged).Reachability
		if old := m.reach.Swap(int32(r)); old != int32(r) {
			m.log.Info("reachability changed", "reachability", m.Reachability(), "addrs", m.h.Addrs())
		}
	})
}

// directConn reports whether the node has a direct (not relayed, not
// limited) connection to p.
func (m *Mesh) directConn(p peer.ID) bool {
	for _, c := range m.h.Network().ConnsToPeer(p) {
		if !c.Stat().Limited && !isRelayed(c.RemoteMultiaddr()) {
			return true
		}
	}
	return false
}

// Relayed reports whether every connection to p goes through a relay.
func (m *Mesh) Relayed(p peer.ID) bool {
	conns := m.h.Network().ConnsToPeer(p)
	return len(conns) > 0 && !m.directConn(p)
}
