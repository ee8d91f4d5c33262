package mesh

import (
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// denyGater refuses connections to and from the peers an operator denied.
// Their gossip relayed by others is IGNOREd by the validators (see
// Mesh.validator): the relaying peer is not at fault.
type denyGater struct{ deny map[peer.ID]bool }

func (g denyGater) InterceptPeerDial(p peer.ID) bool                 { return !g.deny[p] }
func (g denyGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.deny[p] }
func (g denyGater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g denyGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.deny[p]
}
func (g denyGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
