package mesh

import (
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// denyGater refuses connections to and from the peers an operator denied.
// Their gossip relayed by others is IGNOREd by the validators (see
// Mesh.validator): the relaying peer is not at fault.
//
// It also refuses to dial an address of a class this node's network does
// not use (dialScope): addresses reach the peerstore from what peers
// claim (identify, DHT provider records and closer peers, rendezvous),
// and a stranger must not make a node on a public network connect to
// its own loopback services or its site's private hosts.
type denyGater struct {
	deny  map[peer.ID]bool
	scope *dialScope // nil: dial any address (a simulation's host)
}

func (g denyGater) InterceptPeerDial(p peer.ID) bool { return !g.deny[p] }
func (g denyGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return !g.deny[p] && (g.scope == nil || g.scope.dialable(a))
}
func (g denyGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }
func (g denyGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.deny[p]
}
func (g denyGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// dialScope decides which address classes the node dials: those its
// AddrPolicy would advertise (AddrPolicy.Scope over the network's
// bootstrap and relay addresses and the node's own listen addresses).
// Public and relayed addresses always (a relayed address's relay is dialed,
// and gated, on its own); private ones on a site network; loopback ones on
// a testnet on one machine. The scope is read from the host's listen
// addresses at the first dial and kept.
type dialScope struct {
	policy AddrPolicy
	host   *hostRef
	got    atomic.Pointer[[2]bool] // private, loopback
}

func (d *dialScope) dialable(a ma.Multiaddr) bool {
	switch ClassifyAddr(a) {
	case AddrPublic, AddrRelayed:
		return true
	case AddrUnspecified:
		return false
	}
	s := d.got.Load()
	if s == nil {
		h := d.host.get()
		if h == nil {
			return true // no host yet: nothing dials
		}
		private, loopback := d.policy.Scope(listenAddrs(h))
		s = &[2]bool{private, loopback}
		d.got.Store(s)
	}
	if ClassifyAddr(a) == AddrLoopback {
		return s[1]
	}
	return s[0]
}
