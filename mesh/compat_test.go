package mesh

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/proofmesh/proofmesh/internal/logbuf"
	"github.com/proofmesh/proofmesh/protocol"
)

func withLog(buf *logbuf.Buffer) testOpt {
	return func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
}

// Issue 13: a build that added one heartbeat field was rejected by every
// older node. A heartbeat with fields this build does not know now passes
// gossip validation and lists the peer; one with a duplicate key is still
// REJECTED.
func TestHeartbeatWithUnknownFieldsAcceptedThroughGossip(t *testing.T) {
	victim := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
	a := attacker(t, victim)
	hb := mustEncode(t, heartbeatFrom(a.ID(), 1, protocol.Capabilities{"cpu_cores": int64(2), "node_type": "compute"}))
	newer := []byte(`{"nat":{"reachability":"public","relays":["x"]},"uptime_s":12,` + string(hb[1:]))
	if err := a.Publish(context.Background(), KindHeartbeat, newer); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the newer heartbeat accepted", func() bool {
		p, ok := victim.Peer(a.ID())
		return ok && p.Status == protocol.StatusOnline && p.Heartbeat.Version == "test"
	})

	rejected := victim.met.hbRefused.WithLabelValues("malformed", "reject")
	before := testutil.ToFloat64(rejected)
	dup := mustEncode(t, heartbeatFrom(a.ID(), 2, protocol.Capabilities{"cpu_cores": int64(2), "node_type": "compute"}))
	dup = []byte(`{"seq":3,` + string(dup[1:]))
	if err := a.Publish(context.Background(), KindHeartbeat, dup); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the duplicate-key heartbeat rejected", func() bool {
		return testutil.ToFloat64(rejected) == before+1
	})
	if p, _ := victim.Peer(a.ID()); p.Seq != 1 {
		t.Fatalf("duplicate-key heartbeat applied: seq %d", p.Seq)
	}
}

// A peer that serves our network only at another protocol major is never
// listed, is named with both majors in one warn-level line (once, however
// often it reconnects), and shows as incompatible.
func TestPeerOfAnotherMajorWarnedOnce(t *testing.T) {
	var logs logbuf.Buffer
	m := newTestMesh(t, "testnet", withLog(&logs), func(c *Config) { c.DHT = false })
	v2, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.UserAgent("proofmesh/v2.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v2.Close() })
	v2.SetStreamHandler(libp2pproto.ID(protocol.MarkerProtocolID("testnet", 2)), func(s network.Stream) { _ = s.Reset() })

	want := "peer " + v2.ID().String() + " runs proofmesh protocol v2 and we run v1; upgrade this node to a release of protocol v2"
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := v2.Connect(ctx, peer.AddrInfo{ID: m.ID(), Addrs: m.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
		cancel()
		eventually(t, 5*time.Second, "the warning", func() bool { return strings.Contains(logs.String(), want) })
		_ = v2.Network().ClosePeer(m.ID())
		eventually(t, 5*time.Second, "disconnected", func() bool { return !m.Connected(v2.ID()) })
	}
	if n := strings.Count(logs.String(), want); n != 1 {
		t.Fatalf("warned %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "peer_release=v2.0.1") {
		t.Fatalf("not at warn level:\n%s", logs.String())
	}
	inc := m.Incompatible()
	if len(inc) != 1 || inc[0].ID != v2.ID() || inc[0].Kind != protocol.OtherMajor || inc[0].Protocols.Describe() != "testnet v2" || inc[0].Release != "v2.0.1" {
		t.Fatalf("incompatible peers %+v", inc)
	}
	if _, ok := m.Peer(v2.ID()); ok {
		t.Fatal("a peer of another major entered the peer table")
	}
}

// A peer of another network is named with both network ids.
func TestPeerOfAnotherNetworkWarned(t *testing.T) {
	var logs logbuf.Buffer
	m := newTestMesh(t, "devnet", withLog(&logs), func(c *Config) { c.DHT = false })
	other := newTestMesh(t, "othernet", func(c *Config) { c.DHT = false })
	connect(t, other, m)
	want := "peer " + other.ID().String() + " is on proofmesh network othernet and this node on devnet"
	eventually(t, 5*time.Second, "the warning", func() bool { return strings.Contains(logs.String(), want) })
	eventually(t, 5*time.Second, "listed as incompatible", func() bool {
		inc := m.Incompatible()
		return len(inc) == 1 && inc[0].Kind == protocol.OtherNetwork && inc[0].Connected && !inc[0].Outbound
	})
	// The side that dialed learns it from its own identify exchange, which
	// may finish after the other side's.
	eventually(t, 5*time.Second, "listed as incompatible by the side that dialed", func() bool {
		inc := other.Incompatible()
		return len(inc) == 1 && inc[0].Outbound
	})
	// The other side sees a peer of devnet.
	if pp, ok := other.PeerProtocols(m.ID()); !ok || pp.Describe() != "devnet v1" {
		t.Fatalf("othernet's view of devnet: %+v %v", pp, ok)
	}
}

// Heartbeats IGNORED for their time still tell a node its clock is off:
// three peers two minutes ahead of it put the median there.
func TestClockOffsetFromIgnoredHeartbeats(t *testing.T) {
	victim := newTestMesh(t, "testnet", func(c *Config) { c.Self = nil; c.DHT = false })
	ignored := victim.met.hbRefused.WithLabelValues("clock_skew", "ignore")
	for i := range 3 {
		a := attacker(t, victim)
		hb := heartbeatFrom(a.ID(), 1, protocol.Capabilities{"cpu_cores": int64(2), "node_type": "compute"})
		hb.Time = time.Now().Add(2*time.Minute + time.Duration(i)*time.Second).UnixMilli()
		if err := a.Publish(context.Background(), KindHeartbeat, mustEncode(t, hb)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the heartbeat ignored", func() bool { return testutil.ToFloat64(ignored) == float64(i+1) })
	}
	off, voters := victim.ClockOffset()
	if voters != 3 || off < 115*time.Second || off > 125*time.Second || !protocol.ClockOff(off, voters, victim.ClockSkew()) {
		t.Fatalf("offset %s from %d voters", off, voters)
	}
}

func TestReleaseOfAgent(t *testing.T) {
	for agent, want := range map[string]string{
		"proofmesh/v0.4.0-3-g1a2b3c4-dirty": "v0.4.0-3-g1a2b3c4-dirty",
		"proofmesh/":                        "",
		"proofmesh/v1 \x1b[2J":              "",
		"go-ipfs/0.20":                      "",
		userAgent("v1.0.0"):                 "v1.0.0",
		userAgent("bad version"):            "",
	} {
		if got := releaseOf(agent); got != want {
			t.Errorf("releaseOf(%q) = %q, want %q", agent, got, want)
		}
	}
}

// Attack: one host holds a whole IPv6 /64 (the usual allocation of a
// server) and votes on our clock from three of its addresses; one vote
// per IP address let it alone put clock_skew in a node's problems (or
// outvote honest peers to hide a real skew). Votes count per network
// origin, as replica diversity draws it.
func TestClockVotesOnePerNetworkOrigin(t *testing.T) {
	now := time.Now()
	c := protocol.NewClockOffsets(maxClockVoters, clockSampleMaxAge)
	for i := range 40 {
		ap := netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("2001:db8:5:7::%x", i+1)), 4001)
		c.Add(clockVoter(ap), 2*time.Minute, now)
	}
	for i := range 40 {
		ap := netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("203.0.113.%d", i+1)), 4001)
		c.Add(clockVoter(ap), 2*time.Minute, now)
	}
	if off, voters := c.Estimate(now); voters != 2 || protocol.ClockOff(off, voters, 30*time.Second) {
		t.Fatalf("one /64 and one /24 make %d voters, offset %s", voters, off)
	}
	// Hosts of one site (or a testnet on one machine) still vote each.
	for _, ip := range []string{"10.0.0.1", "10.0.0.2", "127.0.0.3"} {
		addr := netip.MustParseAddr(ip)
		if a, b := clockVoter(netip.AddrPortFrom(addr, 1)), clockVoter(netip.AddrPortFrom(addr, 2)); a != b || a != addr.String() {
			t.Errorf("voter of %s: %q and %q", ip, a, b)
		}
	}
	// A private IPv6 host holds a /64, as a public one does (a second
	// review of 2026-12-07): one voter.
	if a, b := clockVoter(netip.MustParseAddrPort("[fd00::1]:1")), clockVoter(netip.MustParseAddrPort("[fd00::2]:1")); a != b || a != "fd00::/64" {
		t.Errorf("voters of one private /64: %q and %q", a, b)
	}
	if clockVoter(netip.MustParseAddrPort("198.51.100.1:1")) == clockVoter(netip.MustParseAddrPort("198.51.101.1:1")) {
		t.Error("two /24s are one voter")
	}
}
