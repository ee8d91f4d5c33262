package mesh

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/proofmesh/proofmesh/internal/testkeys"
	"github.com/proofmesh/proofmesh/protocol"
)

// Issue 12, attack 4 (identity flood): one connection published
// heartbeats for 5,000 fresh identities and the victim's peer table grew
// from 45 to 5,045 rows, each persisted. Here an attacker publishes, over
// its one connection, signed heartbeats for 3,000 identities; the victim's
// table stays within its bound, honest peers stay listed and online, and
// the refusals are counted.
func TestIdentityFloodThroughOneConnectionBounded(t *testing.T) {
	const maxPeers, burst, rate = 40, 10, 5
	var persisted []peer.ID
	persistedCh := make(chan peer.ID, 4096)
	victim := newTestMesh(t, "testnet", func(c *Config) {
		c.DHT = false
		c.MaxPeers, c.NewPeerBurst, c.NewPeerRate = maxPeers, burst, rate
		c.OnPeer = func(p PeerInfo) { persistedCh <- p.ID }
	})
	var honest []*Mesh
	for range 3 {
		h := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false })
		connect(t, h, victim)
		honest = append(honest, h)
	}
	eventually(t, 10*time.Second, "honest peers online", func() bool {
		for _, h := range honest {
			if statusOf(victim, h.ID()) != protocol.StatusOnline {
				return false
			}
		}
		return true
	})
	// The attacker's own node must not refuse its forgeries locally.
	a := newTestMesh(t, "testnet", func(c *Config) {
		c.Self, c.DHT = nil, false
		c.MaxPeers, c.NewPeerRate, c.NewPeerBurst = 1<<20, 1e9, 1<<20
	})
	connect(t, a, victim)
	eventually(t, 10*time.Second, "attacker on the victim's topic", func() bool {
		a.mu.Lock()
		tp := a.topics[KindHeartbeat]
		a.mu.Unlock()
		return len(tp.ListPeers()) > 0
	})
	a.mu.Lock()
	topic := a.topics[KindHeartbeat]
	a.mu.Unlock()
	caps := protocol.Capabilities{"cpu_cores": int64(2), "node_type": "compute"}
	const sybils = 2000
	admittedC := victim.met.admissions.WithLabelValues("admitted")
	before := testutil.ToFloat64(admittedC)
	for len(persistedCh) > 0 {
		<-persistedCh // the honest peers' and attacker's rows
	}
	start := time.Now()
	for i := range sybils {
		key, id := testkeys.New(t)
		data := mustEncode(t, heartbeatFrom(id, 1, caps))
		if err := topic.Publish(context.Background(), data, pubsub.WithSecretKeyAndPeerId(key, id)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	refused := victim.met.admissions.WithLabelValues("refused_rate")
	eventually(t, 20*time.Second, "the flood is refused", func() bool {
		return testutil.ToFloat64(refused) > sybils/4
	})
	elapsed := time.Since(start)
	rows := victim.table.len()
	if rows > maxPeers {
		t.Fatalf("peer table holds %d rows, bound %d", rows, maxPeers)
	}
	// The attacker's connection admits at most its burst and rate.
	admitted := int(testutil.ToFloat64(admittedC) - before)
	if limit := burst + int(rate*elapsed.Seconds()) + 1; admitted > limit {
		t.Fatalf("%d forged identities admitted, the admission rate allows %d", admitted, limit)
	}
	for _, h := range honest {
		if statusOf(victim, h.ID()) != protocol.StatusOnline {
			t.Fatalf("honest peer %s is %q after the flood", h.ID(), statusOf(victim, h.ID()))
		}
	}
	// Only admitted identities are reported for persistence.
	for len(persistedCh) > 0 {
		persisted = append(persisted, <-persistedCh)
	}
	if len(persisted) > admitted {
		t.Fatalf("%d identities reported for persistence, %d admitted", len(persisted), admitted)
	}
	t.Logf("%d heartbeats of forged identities in %s: %d rows, %d forged admitted, %.0f refused", sybils, elapsed.Round(time.Millisecond), rows, admitted, testutil.ToFloat64(refused))
}

// A full table evicts a tombstone, then an offline, then a stale row,
// never a connected peer's or an online one; with only online rows left a
// new identity is refused (IGNORE) unless it is directly connected.
// Retention purges offline rows and tombstones.
func TestPeerTableBoundEvictsOfflineFirst(t *testing.T) {
	now := time.Now()
	conns := map[peer.ID]bool{}
	tb := newBoundedTable(4, 1000, 1000, func(p peer.ID) bool { return conns[p] })
	relay := peer.ID("relay")
	add := func(lastSeen time.Time) peer.ID {
		_, id := testkeys.New(t)
		hb := heartbeatFrom(id, 1, nil)
		hb.IntervalMS = 1000
		if _, _, err := tb.observe(&hb, nil, relay, now); err != nil {
			t.Fatal(err)
		}
		tb.mu.Lock()
		tb.peers[id].info.LastSeen = lastSeen
		tb.mu.Unlock()
		return id
	}
	offline := add(now.Add(-time.Hour))
	connected := add(now.Add(-2 * time.Hour)) // offline too, but connected
	conns[connected] = true
	stale := add(now.Add(-5 * time.Second))
	online := add(now)
	newcomer := add(now)
	if _, ok := tb.get(offline, now); ok || tb.len() != 4 {
		t.Fatalf("the offline row was not evicted first (%d rows)", tb.len())
	}
	for _, id := range []peer.ID{connected, stale, online, newcomer} {
		if _, ok := tb.get(id, now); !ok {
			t.Fatalf("row %s evicted", id)
		}
	}
	add(now) // evicts the stale row
	if _, ok := tb.get(stale, now); ok {
		t.Fatal("the stale row was not evicted")
	}
	_, id := testkeys.New(t)
	hb := heartbeatFrom(id, 1, nil)
	if _, _, err := tb.observe(&hb, nil, relay, now); !errors.Is(err, protocol.ErrNotYet) || !protocol.Ignorable(err) {
		t.Fatalf("a new identity in a table of online rows: %v, want IGNORE", err)
	}
	conns[id] = true
	if _, _, err := tb.observe(&hb, nil, id, now); err != nil || tb.len() != 5 {
		t.Fatalf("a directly connected newcomer: %v, %d rows", err, tb.len())
	}
	clear(conns)
	gone := tb.purge(now.Add(48*time.Hour), now, now.Add(24*time.Hour))
	if len(gone) != 5 || tb.len() != 0 {
		t.Fatalf("retention purged %d, %d rows left", len(gone), tb.len())
	}
}

// The admission rate is per forwarding peer: one relay's flood does not
// stop another's honest newcomers.
func TestAdmissionRatePerForwarder(t *testing.T) {
	now := time.Now()
	tb := newBoundedTable(1000, 1, 3, func(peer.ID) bool { return false })
	try := func(via peer.ID) error {
		_, id := testkeys.New(t)
		hb := heartbeatFrom(id, 1, nil)
		_, _, err := tb.observe(&hb, nil, via, now)
		return err
	}
	for range 3 {
		if err := try("flooder"); err != nil {
			t.Fatal(err)
		}
	}
	if err := try("flooder"); !errors.Is(err, protocol.ErrNotYet) {
		t.Fatalf("fourth new identity from one forwarder: %v", err)
	}
	if err := try("honest"); err != nil {
		t.Fatalf("another forwarder's newcomer: %v", err)
	}
}

// The admission rate is also per forwarding IP: one host opening
// connections under many keys does not multiply its rate.
func TestAdmissionRatePerForwardingIP(t *testing.T) {
	now := time.Now()
	tb := newBoundedTable(1000, 1, 3, func(peer.ID) bool { return false })
	tb.sourceIP = func(p peer.ID) string {
		if p == "elsewhere" {
			return "198.51.100.9"
		}
		return "203.0.113.7" // every other forwarder is one host
	}
	try := func(via peer.ID) error {
		_, id := testkeys.New(t)
		hb := heartbeatFrom(id, 1, nil)
		_, _, err := tb.observe(&hb, nil, via, now)
		return err
	}
	for i := range 3 {
		if err := try(peer.ID(fmt.Sprint("key-", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := try("key-3"); !errors.Is(err, protocol.ErrNotYet) {
		t.Fatalf("fourth new identity from one host under a fresh key: %v", err)
	}
	if err := try("elsewhere"); err != nil {
		t.Fatalf("another host's newcomer: %v", err)
	}
}
