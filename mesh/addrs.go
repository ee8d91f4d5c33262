package mesh

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// AddrClass says who can dial an address.
type AddrClass string

// Address classes, as `proofmesh id` and the API label them.
const (
	AddrPublic      AddrClass = "public"      // routable on the internet (and DNS names)
	AddrPrivate     AddrClass = "private"     // RFC 1918, CGNAT, ULA, link-local: one site only
	AddrLoopback    AddrClass = "loopback"    // this machine only
	AddrRelayed     AddrClass = "relayed"     // through a circuit relay (/p2p-circuit)
	AddrUnspecified AddrClass = "unspecified" // 0.0.0.0 or ::: a listen address, never dialable
)

// ClassifyAddr returns who can dial a.
func ClassifyAddr(a ma.Multiaddr) AddrClass {
	switch {
	case isRelayed(a):
		return AddrRelayed
	case manet.IsIPLoopback(a):
		return AddrLoopback
	case manet.IsIPUnspecified(a):
		return AddrUnspecified
	}
	if name, ok := dnsName(a); ok {
		switch {
		case name == "localhost" || strings.HasSuffix(name, ".localhost"):
			return AddrLoopback
		case !strings.Contains(strings.TrimSuffix(name, "."), "."),
			strings.HasSuffix(name, ".local"), strings.HasSuffix(name, ".internal"), strings.HasSuffix(name, ".lan"):
			return AddrPrivate // a name only a site's resolver knows (compose service names)
		default:
			return AddrPublic
		}
	}
	switch {
	case manet.IsPublicAddr(a):
		return AddrPublic
	default:
		return AddrPrivate
	}
}

// dnsName returns the name of a /dns, /dns4 or /dns6 address.
func dnsName(a ma.Multiaddr) (string, bool) {
	if len(a) == 0 {
		return "", false
	}
	switch a[0].Protocol().Code {
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
		return strings.ToLower(a[0].Value()), true
	}
	return "", false
}

func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// AddrPolicy decides which of a node's addresses it advertises (in
// identify, the DHT, heartbeats and the API): DESIGN.md "Reaching nodes".
type AddrPolicy struct {
	// Announce, when not empty, replaces the node's own direct addresses
	// (1:1 NAT, port forwarding, a load balancer). Relay addresses that
	// AutoRelay adds while the node is not confirmed reachable are kept.
	Announce []ma.Multiaddr
	// NoAnnounce removes matching addresses: an entry matches an address
	// it is a prefix of (/ip4/10.1.2.3 matches every port of that IP), and
	// an /ipcidr entry matches the addresses inside the range
	// (/ip4/10.0.0.0/ipcidr/8). Relayed addresses are matched by relayed
	// entries only.
	NoAnnounce []ma.Multiaddr
	// Network are the addresses of the network's bootstrap peers and
	// static relays. Their classes say what kind of network this is: a
	// private address among them lets the node advertise its private
	// addresses, a loopback one its loopback addresses.
	Network []ma.Multiaddr
}

// Scope reports which non-public addresses are useful to others, given
// the node's own addresses:
//   - private addresses when a bootstrap peer or relay has one, or when
//     neither they nor the node have a public address (a site network,
//     a compose testnet);
//   - loopback addresses when a bootstrap peer or relay has one, or when
//     the node's own addresses are all loopback (a testnet on one machine).
func (p AddrPolicy) Scope(own []ma.Multiaddr) (private, loopback bool) {
	netHas := map[AddrClass]bool{}
	for _, a := range p.Network {
		netHas[ClassifyAddr(a)] = true
	}
	ownHas := map[AddrClass]bool{}
	for _, a := range own {
		ownHas[ClassifyAddr(a)] = true
	}
	private = netHas[AddrPrivate] || !netHas[AddrPublic] && !ownHas[AddrPublic]
	onlyLoopback := ownHas[AddrLoopback] && !ownHas[AddrPublic] && !ownHas[AddrPrivate]
	loopback = netHas[AddrLoopback] || onlyLoopback && !netHas[AddrPublic] && !netHas[AddrPrivate]
	return private, loopback
}

// Filter returns the addresses to advertise out of the node's current
// ones (listen addresses resolved to interfaces, NAT mappings, confirmed
// observed addresses, relay addresses): the announced ones if any, else
// those of a class others can use, minus NoAnnounce. Never an unspecified
// or an IPv6 link-local address (it needs a zone only the dialer knows).
func (p AddrPolicy) Filter(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	if len(p.Announce) > 0 {
		out = append(out, p.Announce...)
		for _, a := range addrs {
			if isRelayed(a) {
				out = append(out, a)
			}
		}
	} else {
		private, loopback := p.Scope(addrs)
		for _, a := range addrs {
			if isRelayed(a) || usable(a, private, loopback) {
				out = append(out, a)
			}
		}
	}
	out = slices.DeleteFunc(out, func(a ma.Multiaddr) bool {
		return slices.ContainsFunc(p.NoAnnounce, func(f ma.Multiaddr) bool { return addrMatches(f, a) })
	})
	return ma.Unique(out)
}

// usable reports whether a direct address is of a class others on this
// network can dial, given the network's scope (AddrPolicy.Scope): public
// always, private on a private network (never IPv6 link-local, which needs
// a zone only the dialer knows), loopback on a loopback testnet.
func usable(a ma.Multiaddr, private, loopback bool) bool {
	switch ClassifyAddr(a) {
	case AddrPublic:
		return true
	case AddrPrivate:
		return private && !manet.IsIP6LinkLocal(a)
	case AddrLoopback:
		return loopback
	}
	return false
}

// maxAddrsPerRelay bounds the circuit addresses AddRelays builds through
// one relay: a relay's addresses are what it claims in identify, and a
// hostile one would have the node advertise hundreds of addresses of its
// choosing (AutoRelay caps its own at 100 in all).
const maxAddrsPerRelay = 8

// AddRelays adds to addrs circuit addresses through the relays this node
// holds a reservation with, built from each relay's addresses of a class
// this network can use. AutoRelay builds them from the relays' public
// addresses only, so on a private network (a compose testnet, a site)
// a node behind a NAT would advertise none; a relay that already has a
// circuit address in addrs is left as it is. At most maxAddrsPerRelay
// are built through one relay.
func (p AddrPolicy) AddRelays(addrs []ma.Multiaddr, relays []peer.AddrInfo) []ma.Multiaddr {
	if len(relays) == 0 {
		return addrs
	}
	private, loopback := p.Scope(addrs)
	out := slices.Clone(addrs)
	for _, r := range relays {
		if slices.ContainsFunc(addrs, func(a ma.Multiaddr) bool {
			id, err := peer.IDFromP2PAddr(a.Decapsulate(ma.StringCast("/p2p-circuit")))
			return err == nil && id == r.ID && isRelayed(a)
		}) {
			continue
		}
		via := ma.Join(ma.StringCast("/p2p/"+r.ID.String()), ma.StringCast("/p2p-circuit"))
		added := 0
		for _, a := range r.Addrs {
			if added == maxAddrsPerRelay {
				break
			}
			if !usable(a, private, loopback) {
				continue
			}
			base, _ := ma.SplitLast(a)
			if _, err := a.ValueForProtocol(ma.P_P2P); err != nil {
				base = a
			}
			out = append(out, base.Encapsulate(via))
			added++
		}
	}
	return out
}

// addrMatches reports whether the NoAnnounce entry f matches a: f is a
// prefix of a, or f is /ip4|ip6/X/ipcidr/N and a's IP lies in that range.
// A relayed address is matched only by an entry that is itself relayed:
// /ip4/127.0.0.1 removes the node's loopback addresses, not its circuit
// addresses through a relay's loopback address.
func addrMatches(f, a ma.Multiaddr) bool {
	if len(f) == 0 || len(f) > len(a) || isRelayed(a) != isRelayed(f) {
		return false
	}
	if bits, err := f.ValueForProtocol(ma.P_IPCIDR); err == nil && len(f) == 2 {
		_, ipnet, err := net.ParseCIDR(f[0].Value() + "/" + bits)
		if err != nil {
			return false
		}
		ip, err := manet.ToIP(a)
		return err == nil && ipnet.Contains(ip)
	}
	for i := range f {
		if !f[i].Equal(&a[i]) {
			return false
		}
	}
	return true
}

// ParseAddrFlags parses multiaddrs given to a flag (--announce,
// --no-announce), naming the flag and the bad value in the error.
func ParseAddrFlags(flag string, values []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(values))
	for _, v := range values {
		a, err := ma.NewMultiaddr(v)
		if err != nil {
			return nil, fmt.Errorf("%s %q is not a multiaddr: %w", flag, v, err)
		}
		out = append(out, a)
	}
	return out, nil
}
