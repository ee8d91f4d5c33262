package mesh

import (
	"context"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/proofmesh/proofmesh/internal/testkeys"
	"github.com/proofmesh/proofmesh/protocol"
)

// Review of the bounds a peer can push on (memory per identity).
//
// floodScore keeps a row per peer that sent its own excess past a topic
// rate (Mesh.validator): a host with many free identities connects under
// each in turn and floods a little. Rows were never removed, whatever
// their decay: the map grew by one row per identity for the node's
// lifetime. Here real flooders feed it over real connections, then more
// identities than its bound are pushed at it: it keeps maxFloodRows rows,
// the real flooders (the highest penalties) among them, and forgets
// every row once its penalty has decayed away.
func TestFloodScoreRowsBounded(t *testing.T) {
	victim := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false })
	caps := protocol.Capabilities{"cpu_cores": int64(2), "node_type": "compute"}
	var flooders []*Mesh
	for range 3 {
		a := attacker(t, victim)
		for i := range 60 {
			if err := a.Publish(context.Background(), KindHeartbeat, mustEncode(t, heartbeatFrom(a.ID(), uint64(100+i), caps))); err != nil {
				t.Fatal(err)
			}
		}
		flooders = append(flooders, a)
	}
	eventually(t, 10*time.Second, "every flooder penalised", func() bool {
		for _, a := range flooders {
			if victim.floods.penalty(a.ID(), time.Now()) < 5 {
				return false
			}
		}
		return true
	})

	// Identities beyond the bound, each flooding once.
	now := time.Now()
	for range maxFloodRows + 1000 {
		_, id := testkeys.New(t)
		victim.floods.add(id, now)
	}
	if n := victim.floods.len(); n > maxFloodRows {
		t.Fatalf("flood score holds %d rows, bound %d", n, maxFloodRows)
	}
	for _, a := range flooders {
		if pen := victim.floods.penalty(a.ID(), now); pen < 5 {
			t.Fatalf("a real flooder's penalty evicted by one-message identities: %.1f left", pen)
		}
	}
	// Decayed away: forgotten at the next sweep (maintenanceLoop).
	victim.floods.sweep(now.Add(3 * time.Hour))
	if n := victim.floods.len(); n != 0 {
		t.Fatalf("%d rows kept after their penalties decayed away", n)
	}
}

// One connection publishes heartbeats signed by thousands of made-up
// identities: each spends a token of its origin's bucket before the
// admission rate IGNOREs it, so each made a bucket of the heartbeat topic's
// limiter, kept until a sweep a minute after the last (up to two minutes),
// however fast the connection could sign: memory in proportion to the
// flood's rate times two minutes. A bucket that has refilled is the same
// as none, so buckets are forgotten once full: a few seconds after the
// flood, the forged origins hold none.
func TestForgedOriginsLeaveNoRateBuckets(t *testing.T) {
	victim := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false })
	honest := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false })
	connect(t, honest, victim)
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
	const sybils = 1500
	start := time.Now()
	for i := range sybils {
		key, id := testkeys.New(t)
		if err := topic.Publish(context.Background(), mustEncode(t, heartbeatFrom(id, 1, caps)), pubsub.WithSecretKeyAndPeerId(key, id)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	refused := victim.met.admissions.WithLabelValues("refused_rate")
	eventually(t, 30*time.Second, "the flood is refused", func() bool {
		return testutil.ToFloat64(refused) > sybils/2
	})
	lim := victim.rates.kinds[KindHeartbeat]
	peak := lim.Len()
	t.Logf("%d forged origins in %s: %d heartbeat rate buckets held", sybils, time.Since(start).Round(time.Millisecond), peak)
	// The honest peer keeps heartbeating (every 200 ms), which is what
	// runs the limiter's sweeps.
	eventually(t, 10*time.Second, "the forged origins' buckets forgotten", func() bool {
		return lim.Len() <= 10
	})
	for _, l := range victim.rates.kinds {
		if l.Len() > 10 {
			t.Fatalf("a topic limiter holds %d buckets after the flood", l.Len())
		}
	}
}

// Identify results of peers of another network (any identity can connect
// and claim any protocol list): the rows of protocol lists and of warned
// ids stay within maxProtoRows and maxWarned however many identities
// are met.
func TestIdentifyRowsBounded(t *testing.T) {
	m := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false; c.Self = nil })
	other := []string{string(probeProtocolID("othernet"))}
	now := time.Now()
	for range maxWarned + 100 {
		_, id := testkeys.New(t)
		m.observeProtocols(id, other, false, "", now)
	}
	m.compat.mu.Lock()
	rows, warned := len(m.compat.peers), len(m.compat.warned)
	m.compat.mu.Unlock()
	if rows > maxProtoRows || warned > maxWarned {
		t.Fatalf("%d protocol rows (bound %d), %d warned ids (bound %d)", rows, maxProtoRows, warned, maxWarned)
	}
	if inc := m.Incompatible(); len(inc) == 0 || len(inc) > maxProtoRows {
		t.Fatalf("%d incompatible peers listed", len(inc))
	}
}
