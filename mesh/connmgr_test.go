package mesh

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	coreconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// The heartbeat mesh's protection passes through; another topic's mesh
// protection becomes a tag worth meshTagValue, the DHT's one worth
// kbucketTagValue; every other protection (the bootstrap peer, relays)
// passes through; gossipsub's delivery tags still find a decayer.
func TestConnsProtectOnlyTheHeartbeatMesh(t *testing.T) {
	cm, err := connmgr.NewConnManager(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Close()
	c := newConns(cm, "testnet")
	var p peer.ID = "peer-a"
	hb := pubsubTagPrefix + TopicName("testnet", KindHeartbeat)
	tasks := pubsubTagPrefix + TopicName("testnet", KindTasks)

	c.Protect(p, tasks)
	if c.IsProtected(p, "") || c.IsProtected(p, tasks) {
		t.Fatal("a tasks mesh peer is protected")
	}
	if v := c.GetTagInfo(p).Tags[tasks]; v != meshTagValue {
		t.Fatalf("tasks mesh tag = %d, want %d", v, meshTagValue)
	}
	c.Protect(p, hb)
	if !c.IsProtected(p, hb) || !c.IsProtected(p, "") {
		t.Fatal("a heartbeat mesh peer is not protected")
	}
	if still := c.Unprotect(p, tasks); !still {
		t.Fatal("leaving the tasks mesh reported the heartbeat mesh's protection gone")
	}
	if _, ok := c.GetTagInfo(p).Tags[tasks]; ok {
		t.Fatal("leaving the tasks mesh kept its tag")
	}
	if still := c.Unprotect(p, hb); still {
		t.Fatal("a peer in no mesh is still protected")
	}
	c.Protect(p, "bootstrap")
	if !c.IsProtected(p, "bootstrap") {
		t.Fatal("a protection that is no gossip mesh's was dropped")
	}
	// Another network's heartbeat topic is another topic: not protected.
	c.Protect(p, pubsubTagPrefix+TopicName("othernet", KindHeartbeat))
	if c.IsProtected(p, pubsubTagPrefix+TopicName("othernet", KindHeartbeat)) {
		t.Fatal("another network's heartbeat mesh is protected")
	}
	// The DHT's protection of its routing table's far buckets is a tag of
	// the value it gives the other buckets; its removal from the table
	// (Unprotect, then UntagPeer) clears it.
	var q peer.ID = "peer-b"
	c.Protect(q, kbucketTag)
	if c.IsProtected(q, "") {
		t.Fatal("a routing table peer is protected")
	}
	if v := c.GetTagInfo(q).Tags[kbucketTag]; v != kbucketTagValue {
		t.Fatalf("routing table tag = %d, want %d", v, kbucketTagValue)
	}
	if c.Unprotect(q, kbucketTag) {
		t.Fatal("leaving the routing table reported a peer protected that never was")
	}
	c.UntagPeer(q, kbucketTag)
	if info := c.GetTagInfo(q); info != nil && info.Tags[kbucketTag] != 0 {
		t.Fatal("a peer removed from the routing table keeps its tag")
	}
	// gossipsub's direct peers keep their protection.
	c.Protect(q, "pubsub:<direct>")
	if !c.IsProtected(q, "") {
		t.Fatal("a direct peer of gossipsub is not protected")
	}
	if _, ok := coreconnmgr.SupportsDecay(c); !ok {
		t.Fatal("gossipsub's delivery tags need a decayer, and the wrapper hides it")
	}
}

// Fourteen real nodes on loopback, every one connected to every other,
// with five gossip topics each (heartbeat, leave, liveness, tasks,
// results) and water marks of 2 and 4: once the meshes formed and the
// connections left their grace period, a trim leaves each node the
// heartbeat mesh (at most Dhi = 8 peers) and ConnLow = 2 others, not the
// union of five meshes (12 or 13 of 13 peers). The tasks topic still
// reaches every node over what is left.
func TestTrimKeepsOnlyTheHeartbeatMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("14 real hosts")
	}
	const n, low, high = 14, 2, 4
	const grace = 3 * time.Second // the meshes form first (gossipsub's heartbeat: 1 s)
	var mu sync.Mutex
	got := make(map[peer.ID]map[string]bool)
	ms := make([]*Mesh, n)
	for i := range ms {
		ms[i] = newTestMesh(t, "testnet", func(c *Config) {
			c.DHT = false
			c.ConnLow, c.ConnHigh = low, high
			c.connGrace = grace
		})
		self := ms[i].ID()
		accept := func(context.Context, peer.ID, []byte) error { return nil }
		record := func(msg Message) {
			mu.Lock()
			defer mu.Unlock()
			if got[self] == nil {
				got[self] = make(map[string]bool)
			}
			got[self][string(msg.Data)] = true
		}
		for _, kind := range []string{KindTasks, KindResults} {
			if err := ms[i].Join(kind, accept, record, JoinOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range ms {
		for j := i + 1; j < n; j++ {
			connect(t, ms[i], ms[j])
		}
	}
	limit := low + gossipParams().Dhi
	eventually(t, 30*time.Second, fmt.Sprintf("every node trimmed to at most %d connections", limit), func() bool {
		for _, m := range ms {
			if len(m.Host().Network().Peers()) > limit {
				return false
			}
		}
		return true
	})
	// Let gossipsub's heartbeat replace the tasks mesh peers the trim closed.
	time.Sleep(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ms[0].Publish(ctx, KindTasks, []byte("after the trim")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the tasks message at every node", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range ms[1:] {
			if !got[m.ID()]["after the trim"] {
				return false
			}
		}
		return true
	})
}

// JoinedPeers, what the bootstrap keeper counts, is the connected peers
// listed online: a bare libp2p identity connected to the node is not one.
func TestJoinedPeersCountsNodesListedOnline(t *testing.T) {
	a, b := newTestMesh(t, "testnet"), newTestMesh(t, "testnet")
	connect(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		stranger(ctx, t, a)
	}
	eventually(t, 10*time.Second, "b listed online at a", func() bool { return a.JoinedPeers() == 1 })
	if c := a.ConnectedPeers(); c != 4 {
		t.Fatalf("%d connected peers, want b and 3 strangers", c)
	}
	time.Sleep(500 * time.Millisecond) // heartbeats of anything that would be listed
	if j := a.JoinedPeers(); j != 1 {
		t.Fatalf("%d joined peers, want only b", j)
	}
}
