package mesh

import (
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// What a demoted protection is worth to the connection manager's trim.
// Tags add up, and a peer may graft itself into all four other meshes (a
// sybil can): at 5 a topic it reaches 20, the one mesh value gossipsub's
// docs give, and stays below a peer that delivers messages first
// (gossipsub's delivery tags, up to 15 a topic), which a sybil that
// forwards nothing never earns. 5 is also the value the DHT gives the
// routing table peers it does not protect (its baseConnMgrScore).
const (
	meshTagValue    = 5
	kbucketTagValue = 5
)

// The tags libp2p's services protect peers under: gossipsub a topic's mesh
// peers ("pubsub:" + topic name), the DHT the peers of its routing table's
// two farthest buckets (up to 40 peers).
const (
	pubsubTagPrefix = "pubsub:"
	pubsubDirectTag = "pubsub:<direct>" // gossipsub's direct peers (none today): kept
	kbucketTag      = "kbucket"
)

// conns is the host's connection manager as gossipsub, the DHT and
// everything else see it. Trims never close a protected peer, and
// libp2p's services protect generously: gossipsub every mesh peer of every
// topic (each topic's mesh chosen on its own, so five topics protect the
// union of five meshes), the DHT up to 40 routing table peers. A node of
// a 50-node network held 40–45 connections whatever --keep-conns said,
// and one of a larger network could hold the union of both.
//
// conns keeps the protection of the heartbeat topic's mesh only (at most
// Dhi peers: every node is in it, it carries the steady traffic and the
// capabilities a node routes by, and its outbound quota is gossipsub's
// eclipse defence) and turns the other topics' mesh protections and the
// DHT's into tags (meshTagValue, kbucketTagValue), so a trim closes
// other connections first. A mesh peer a trim does close is replaced at
// gossipsub's next heartbeat from the connections left; a routing table
// peer stays in the table and is dialled again when a lookup needs it.
// A trim then leaves at most ConnLow connections besides the heartbeat
// mesh's Dhi (and the peers others protect: the bootstrap peers, relays,
// whose protection passes through unchanged), besides connections younger
// than the grace period of a minute.
type conns struct {
	*connmgr.BasicConnMgr // decaying tags, trims, limits: as is
	keep                  string
}

func newConns(cm *connmgr.BasicConnMgr, networkID string) *conns {
	return &conns{BasicConnMgr: cm, keep: pubsubTagPrefix + TopicName(networkID, KindHeartbeat)}
}

// demoted reports whether tag is a protection this manager turns into a
// tag, and the tag's value.
func (c *conns) demoted(tag string) (int, bool) {
	switch {
	case tag == kbucketTag:
		return kbucketTagValue, true
	case strings.HasPrefix(tag, pubsubTagPrefix) && tag != c.keep && tag != pubsubDirectTag:
		return meshTagValue, true
	}
	return 0, false
}

// Protect protects p under tag, or tags it if the protection is demoted.
func (c *conns) Protect(p peer.ID, tag string) {
	if v, ok := c.demoted(tag); ok {
		c.BasicConnMgr.TagPeer(p, tag, v)
		return
	}
	c.BasicConnMgr.Protect(p, tag)
}

// Unprotect undoes Protect and reports whether p stays protected.
func (c *conns) Unprotect(p peer.ID, tag string) bool {
	if _, ok := c.demoted(tag); ok {
		c.BasicConnMgr.UntagPeer(p, tag)
		return c.BasicConnMgr.IsProtected(p, "")
	}
	return c.BasicConnMgr.Unprotect(p, tag)
}
