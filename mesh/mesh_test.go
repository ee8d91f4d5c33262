package mesh

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/proofmesh/proofmesh/protocol"
)

const testInterval = 200 * time.Millisecond

type testOpt func(*Config)

func newTestMesh(t *testing.T, network string, opts ...testOpt) *Mesh {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NetworkID = network
	cfg.Key = key
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.HeartbeatInterval = testInterval
	cfg.Colocation = true
	cfg.LeaveFlush = 300 * time.Millisecond
	cfg.Self = func() protocol.Heartbeat {
		return protocol.Heartbeat{
			Capabilities: protocol.Capabilities{"cpu_cores": int64(2), "memory_gb": int64(4), "node_type": "compute"},
			NodeType:     "compute",
			Health:       1,
			Version:      "test",
		}
	}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func connect(t *testing.T, a, b *Mesh) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func statusOf(m *Mesh, id peer.ID) protocol.PeerStatus {
	p, ok := m.Peer(id)
	if !ok {
		return ""
	}
	return p.Status
}

func allSee(ms []*Mesh, target peer.ID, want protocol.PeerStatus) bool {
	for _, m := range ms {
		if m.ID() != target && statusOf(m, target) != want {
			return false
		}
	}
	return true
}

// Five nodes, four of which know only the first one's address, all see each
// other online; a killed node goes stale and then offline everywhere; a
// Leave deletes a node everywhere.
func TestFiveNodesDiscoverLivenessAndLeave(t *testing.T) {
	ms := make([]*Mesh, 5)
	for i := range ms {
		ms[i] = newTestMesh(t, "testnet")
	}
	for _, m := range ms[1:] {
		connect(t, m, ms[0])
	}
	eventually(t, 30*time.Second, "every node online on every other", func() bool {
		for _, m := range ms {
			if !allSee(ms, m.ID(), protocol.StatusOnline) {
				return false
			}
		}
		return true
	})
	// Rendezvous: the nodes that only knew the bootstrap node connect to
	// each other.
	eventually(t, 30*time.Second, "direct connections through rendezvous", func() bool {
		return ms[1].Connected(ms[2].ID()) || ms[2].Connected(ms[1].ID())
	})

	// Killed without a Leave: stale after 3 intervals, offline after 10.
	killed := ms[4]
	_ = killed.Close()
	rest := ms[:4]
	eventually(t, 3*time.Second, "killed node stale", func() bool {
		return allSee(rest, killed.ID(), protocol.StatusStale)
	})
	eventually(t, 5*time.Second, "killed node offline", func() bool {
		return allSee(rest, killed.ID(), protocol.StatusOffline)
	})

	// Graceful exit: deleted everywhere, 404 material.
	leaver := ms[3]
	if err := leaver.Leave(context.Background(), "maintenance"); err != nil {
		t.Fatal(err)
	}
	_ = leaver.Close()
	eventually(t, 5*time.Second, "leaver deleted", func() bool {
		return allSee(ms[:3], leaver.ID(), protocol.StatusDeleted)
	})
	p, _ := ms[0].Peer(leaver.ID())
	if p.LeaveReason != "maintenance" || p.DeletedAt.IsZero() {
		t.Fatalf("tombstone = %+v", p)
	}
}

// publisher is a node that publishes raw bytes on the heartbeat topic.
func attacker(t *testing.T, victim *Mesh) *Mesh {
	t.Helper()
	a := newTestMesh(t, victim.NetworkID(), func(c *Config) { c.Self = nil; c.DHT = false })
	connect(t, a, victim)
	eventually(t, 10*time.Second, "attacker sees the victim on the topic", func() bool {
		a.mu.Lock()
		tp := a.topics[KindHeartbeat]
		a.mu.Unlock()
		for _, p := range tp.ListPeers() {
			if p == victim.ID() {
				return true
			}
		}
		return false
	})
	return a
}

func heartbeatFrom(id peer.ID, seq uint64, caps protocol.Capabilities) protocol.Heartbeat {
	return protocol.Heartbeat{
		NodeID: id.String(), Seq: seq, Time: time.Now().UnixMilli(), Capabilities: caps,
		PolicyVersion: 1, NodeType: "compute", Health: 1, Version: "test", IntervalMS: 1000,
	}
}

func mustEncode(t *testing.T, hb protocol.Heartbeat) []byte {
	t.Helper()
	b, err := hb.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Each bad heartbeat is refused by the receiving node and counted under its
// reason; none reaches the peer table.
func TestBadHeartbeatsRefusedByReason(t *testing.T) {
	victim := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
	goodCaps := protocol.Capabilities{"cpu_cores": int64(2), "node_type": "compute"}
	other := newTestMesh(t, "othernet", func(c *Config) { c.Self = nil; c.DHT = false })

	cases := []struct {
		name    string
		reason  string
		verdict string
		data    func(a *Mesh) [][]byte
	}{
		{"forged node_id", "forged", "reject", func(a *Mesh) [][]byte {
			return [][]byte{mustEncode(t, heartbeatFrom(other.ID(), 1, goodCaps))}
		}},
		{"unknown capability", "unknown_capability", "reject", func(a *Mesh) [][]byte {
			return [][]byte{mustEncode(t, heartbeatFrom(a.ID(), 1, protocol.Capabilities{"cpu_cores": int64(2), "node_type": "compute", "quantum": true}))}
		}},
		{"out of range", "capability_range", "reject", func(a *Mesh) [][]byte {
			return [][]byte{mustEncode(t, heartbeatFrom(a.ID(), 1, protocol.Capabilities{"cpu_cores": int64(100000), "node_type": "compute"}))}
		}},
		{"replayed seq", "stale", "ignore", func(a *Mesh) [][]byte {
			first := heartbeatFrom(a.ID(), 10, goodCaps)
			replay := heartbeatFrom(a.ID(), 10, goodCaps)
			replay.Load = 0.5 // new bytes, old seq
			return [][]byte{mustEncode(t, first), mustEncode(t, replay)}
		}},
		{"oversized", "oversized", "reject", func(a *Mesh) [][]byte {
			hb := heartbeatFrom(a.ID(), 1, goodCaps)
			b := mustEncode(t, hb)
			pad := strings.Repeat("x", protocol.MaxHeartbeatBytes)
			return [][]byte{[]byte(strings.Replace(string(b), `"version":"test"`, `"version":"`+pad+`"`, 1))}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh sender per case: peer scoring graylists a sender
			// after its second invalid message.
			a := attacker(t, victim)
			counter := victim.met.hbRefused.WithLabelValues(tc.reason, tc.verdict)
			before := testutil.ToFloat64(counter)
			for _, d := range tc.data(a) {
				if err := a.Publish(context.Background(), KindHeartbeat, d); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 5*time.Second, "refusal counted as "+tc.reason, func() bool {
				return testutil.ToFloat64(counter) == before+1
			})
			if tc.reason != "stale" {
				if _, ok := victim.Peer(a.ID()); ok {
					t.Fatalf("refused heartbeat entered the peer table")
				}
			}
		})
	}
}

// Nodes of different networks never see each other, even when connected.
func TestNetworksAreIsolated(t *testing.T) {
	a1 := newTestMesh(t, "alpha")
	a2 := newTestMesh(t, "alpha")
	b1 := newTestMesh(t, "beta")
	connect(t, a2, a1)
	connect(t, b1, a1)
	connect(t, b1, a2)
	eventually(t, 10*time.Second, "alpha nodes see each other", func() bool {
		return statusOf(a1, a2.ID()) == protocol.StatusOnline && statusOf(a2, a1.ID()) == protocol.StatusOnline
	})
	// Several beta heartbeats have been sent by now over live connections.
	time.Sleep(5 * testInterval)
	for _, m := range []*Mesh{a1, a2} {
		if _, ok := m.Peer(b1.ID()); ok {
			t.Fatalf("alpha node %s sees beta node", m.ID())
		}
	}
	if len(b1.Peers()) != 0 {
		t.Fatalf("beta node sees %d peers", len(b1.Peers()))
	}
}

func TestRestoreKeepsSeqAgainstReplay(t *testing.T) {
	id := peer.ID("x")
	m := newTestMesh(t, "testnet", func(c *Config) {
		c.Self = nil
		c.DHT = false
		c.Restore = []PeerInfo{{ID: id, Seq: 50, LastSeen: time.Now().Add(-time.Hour), Interval: time.Second}}
	})
	if got := m.table.lastSeq(id); got != 50 {
		t.Fatalf("lastSeq = %d", got)
	}
	if st := statusOf(m, id); st != protocol.StatusOffline {
		t.Fatalf("restored peer status = %s, want offline", st)
	}
}

// A restarted node's first heartbeat announces the interval its restored
// table gives, not the base interval: with the table loaded after the
// first heartbeat, a node announced its base interval, and a peer that
// then missed its second heartbeat listed it stale after three base
// intervals (at 1,000 simulated nodes: dozens of nodes offline a minute
// after start).
func TestRestoredTableSetsFirstInterval(t *testing.T) {
	now := time.Now()
	rows := make([]PeerInfo, 50)
	for i := range rows {
		rows[i] = PeerInfo{ID: peer.ID(fmt.Sprintf("peer-%d", i)), Seq: 1, FirstSeen: now, LastSeen: now, Interval: time.Hour}
	}
	const base, budget = time.Minute, 0.5
	m := newTestMesh(t, "testnet", func(c *Config) {
		c.DHT = false
		c.HeartbeatInterval = base
		c.HeartbeatBudget = budget
		c.Restore = rows
	})
	// The first heartbeat goes out at once; the next one would be a base
	// interval later.
	want := protocol.AdaptiveInterval(base, len(rows), budget) // 102 s
	eventually(t, 3*time.Second, "the first heartbeat at the restored table's interval", func() bool { return m.Interval() == want })
}

func TestBlobFetch(t *testing.T) {
	blob := []byte("module bytes")
	good := protocol.HashHex(blob)
	lying := protocol.HashHex([]byte("something else"))
	big := make([]byte, 4096)
	bigHash := protocol.HashHex(big)
	server := newTestMesh(t, "testnet", func(c *Config) {
		c.Self = nil
		c.DHT = false
		c.Blob = func(h string) ([]byte, bool) {
			switch h {
			case good, lying:
				return blob, true
			case bigHash:
				return big, true
			}
			return nil, false
		}
	})
	client := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
	connect(t, client, server)
	ctx := context.Background()

	got, err := client.FetchBlob(ctx, server.ID(), good, 0)
	if err != nil || string(got) != string(blob) {
		t.Fatalf("fetch = %q, %v", got, err)
	}
	for _, tc := range []struct {
		hash string
		max  int64
		want error
	}{
		{lying, 0, ErrBlobHashMismatch},
		{protocol.HashHex([]byte("absent")), 0, ErrBlobNotFound},
		{bigHash, 1024, ErrBlobTooLarge},
	} {
		if _, err := client.FetchBlob(ctx, server.ID(), tc.hash, tc.max); !errors.Is(err, tc.want) {
			t.Errorf("fetch %.8s: err = %v, want %v", tc.hash, err, tc.want)
		}
	}
	if _, err := client.FetchBlob(ctx, server.ID(), "NOTAHASH", 0); err == nil {
		t.Error("malformed hash accepted")
	}
}

// One peer that opens blob streams and stalls holds blobPeerStreams of the
// server's slots, not all of them: the resource manager resets its next
// stream, other peers are still served, and the slot comes back when the
// peer lets a stream go.
func TestBlobStreamsBoundedPerPeer(t *testing.T) {
	blob := []byte("module bytes")
	hash := protocol.HashHex(blob)
	server := newTestMesh(t, "testnet", func(c *Config) {
		c.Self = nil
		c.DHT = false
		c.Blob = func(h string) ([]byte, bool) { return blob, h == hash }
	})
	hog := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
	honest := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
	connect(t, hog, server)
	connect(t, honest, server)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	proto := blobProtocolID("testnet")
	var stalled []network.Stream
	for range blobPeerStreams {
		s, err := hog.Host().NewStream(ctx, server.ID(), proto)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("0")); err != nil { // one byte of a 65-byte request
			t.Fatal(err)
		}
		stalled = append(stalled, s)
	}
	inbound := func() int {
		n := 0
		_ = server.Host().Network().ResourceManager().ViewProtocol(proto, func(s network.ProtocolScope) error {
			n = s.Stat().NumStreamsInbound
			return nil
		})
		return n
	}
	eventually(t, 10*time.Second, "stalled streams held by the server", func() bool { return inbound() == blobPeerStreams })

	_, err := hog.FetchBlob(ctx, server.ID(), hash, 0)
	if err == nil || errors.Is(err, ErrBlobBusy) {
		t.Fatalf("hog's stream beyond its %d: err = %v, want a reset by the resource manager", blobPeerStreams, err)
	}
	if got, err := honest.FetchBlob(ctx, server.ID(), hash, 0); err != nil || string(got) != string(blob) {
		t.Fatalf("honest peer while the hog stalls: %q, %v", got, err)
	}
	_ = stalled[0].Reset()
	eventually(t, 10*time.Second, "a slot freed", func() bool { return inbound() < blobPeerStreams })
	if _, err := hog.FetchBlob(ctx, server.ID(), hash, 0); err != nil {
		t.Fatalf("hog after letting a stream go: %v", err)
	}
}

// An honest fetcher never runs into the per-peer stream limit: many fetches
// from one peer at once wait for a slot and all succeed.
func TestConcurrentBlobFetchesFromOnePeer(t *testing.T) {
	blob := []byte("module bytes")
	hash := protocol.HashHex(blob)
	server := newTestMesh(t, "testnet", func(c *Config) {
		c.Self = nil
		c.DHT = false
		c.Blob = func(h string) ([]byte, bool) {
			time.Sleep(20 * time.Millisecond) // keep the streams open long enough to overlap
			return blob, h == hash
		}
	})
	client := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
	connect(t, client, server)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 8 * blobPeerFetches
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := client.FetchBlob(ctx, server.ID(), hash, 0)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	client.fetches.mu.Lock()
	defer client.fetches.mu.Unlock()
	if len(client.fetches.slots) != 0 {
		t.Errorf("%d fetch slots left after every fetch returned", len(client.fetches.slots))
	}
}

func TestResourceLimitsAboveConnectionManager(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NetworkID = "net"
	sys := resourceLimits(&cfg).ToPartialLimitConfig().System
	if int(sys.ConnsInbound) <= cfg.ConnLimit || int(sys.Conns) <= cfg.ConnLimit || cfg.ConnLimit < cfg.ConnHigh {
		t.Errorf("system conns inbound=%v all=%v: must exceed the connection limit %d, itself at least the connection manager's high water %d", sys.ConnsInbound, sys.Conns, cfg.ConnLimit, cfg.ConnHigh)
	}
	if int64(sys.Memory) != cfg.ResourceMemory || int(sys.FD) != cfg.ResourceFDs {
		t.Errorf("system memory=%v fd=%v, want %d and %d", sys.Memory, sys.FD, cfg.ResourceMemory, cfg.ResourceFDs)
	}
}

func TestConfigValidate(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"bad network id", func(c *Config) { c.NetworkID = "Bad/Net" }, "network id"},
		{"no key", func(c *Config) { c.Key = nil }, "identity key"},
		{"interval too short", func(c *Config) { c.HeartbeatInterval = time.Millisecond }, "heartbeat interval"},
		{"water marks", func(c *Config) { c.ConnHigh = c.ConnLow }, "water marks"},
		{"limit below high water", func(c *Config) { c.ConnLimit = c.ConnHigh - 1 }, "limit=31"},
		{"resource memory", func(c *Config) { c.ResourceMemory = 1 << 20 }, "resource memory"},
		{"resource fds", func(c *Config) { c.ResourceFDs = 64 }, "resource fds 64"},
		{"detector max health", func(c *Config) { c.Detector.MaxHealth = 65 }, "max health 65"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.NetworkID, c.Key = "net", key
			tc.mod(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if got := TopicName("net", KindHeartbeat); got != "/proofmesh/net/heartbeat/1" {
		t.Fatal(got)
	}
	_ = fmt.Sprint()
}

// A denied peer can neither connect nor be connected to, and its gossip
// relayed by others is dropped.
func TestDenyList(t *testing.T) {
	bad := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false })
	relay := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false })
	guard := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false; c.Deny = []peer.ID{bad.ID()} })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := guard.Connect(ctx, peer.AddrInfo{ID: bad.ID(), Addrs: bad.Host().Addrs()}); err == nil {
		t.Fatal("dialled a denied peer")
	}
	if err := bad.Connect(ctx, peer.AddrInfo{ID: guard.ID(), Addrs: guard.Host().Addrs()}); err == nil {
		eventually(t, 5*time.Second, "denied inbound connection closed", func() bool { return !guard.Connected(bad.ID()) })
	}
	connect(t, bad, relay)
	connect(t, guard, relay)
	eventually(t, 10*time.Second, "relay sees both", func() bool {
		return statusOf(relay, bad.ID()) == protocol.StatusOnline && statusOf(relay, guard.ID()) == protocol.StatusOnline
	})
	eventually(t, 5*time.Second, "guard drops the denied peer's relayed heartbeats", func() bool {
		return testutil.ToFloat64(guard.met.gossip.WithLabelValues(KindHeartbeat, "denied")) > 0
	})
	if _, ok := guard.Peer(bad.ID()); ok {
		t.Fatal("denied peer entered the peer table")
	}
}

// A peer flooding the heartbeat topic has its excess ignored, and honest
// heartbeats keep arriving.
func TestFloodingPeerRateLimited(t *testing.T) {
	victim := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false })
	honest := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false })
	connect(t, honest, victim)
	flooder := attacker(t, victim)
	for i := range 300 {
		hb := heartbeatFrom(flooder.ID(), uint64(100+i), protocol.Capabilities{"cpu_cores": int64(2), "node_type": "compute"})
		if err := flooder.Publish(context.Background(), KindHeartbeat, mustEncode(t, hb)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "flood rate limited", func() bool {
		return testutil.ToFloat64(victim.met.gossip.WithLabelValues(KindHeartbeat, "rate_limited")) > 100
	})
	if pen := victim.floods.penalty(flooder.ID(), time.Now()); pen < 50 {
		t.Errorf("flooder's score penalty %.1f, want it to have dropped", pen)
	}
	if pen := victim.floods.penalty(honest.ID(), time.Now()); pen != 0 {
		t.Errorf("honest peer penalised %.1f", pen)
	}
	p, _ := victim.Peer(honest.ID())
	seq := p.Seq
	eventually(t, 5*time.Second, "honest heartbeats still arrive", func() bool {
		p, _ := victim.Peer(honest.ID())
		return p.Seq > seq && p.Status == protocol.StatusOnline
	})
}

// libp2p's own metrics are off: they went to the process-wide default
// registry, which no /metrics serves, at a cost on every connection,
// stream and dial. Two meshes that connect leave no trace there.
func TestLibp2pMetricsOff(t *testing.T) {
	opened := func() float64 {
		fams, err := prometheus.DefaultGatherer.Gather()
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for _, f := range fams {
			if strings.HasPrefix(f.GetName(), "libp2p_swarm_connections_opened") {
				for _, m := range f.GetMetric() {
					sum += m.GetCounter().GetValue()
				}
			}
		}
		return sum
	}
	before := opened()
	a := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
	b := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
	connect(t, a, b)
	if after := opened(); after != before {
		t.Fatalf("libp2p counted %v connections into the default registry", after-before)
	}
}
