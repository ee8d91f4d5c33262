package mesh

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/proofmesh/proofmesh/internal/testkeys"
	"github.com/proofmesh/proofmesh/protocol"
)

// slowHeartbeats is a heartbeat interval long enough that no status in
// these tests can come from heartbeats going missing: stale after 3 min.
func slowHeartbeats(c *Config) {
	c.HeartbeatInterval = time.Minute
	c.HeartbeatBudget = 0
	c.DHT = false
}

// meetAll sends heartbeats out of schedule until every node lists every
// other online (the first scheduled ones go out before the gossip mesh
// forms, and the next are a minute away).
func meetAll(t *testing.T, ms []*Mesh) {
	t.Helper()
	eventually(t, 30*time.Second, "every node online on every other", func() bool {
		for _, m := range ms {
			_ = m.sendHeartbeat(m.Interval())
		}
		time.Sleep(200 * time.Millisecond)
		for _, m := range ms {
			if !allSee(ms, m.ID(), protocol.StatusOnline) {
				return false
			}
		}
		return true
	})
}

// A killed node is off every survivor's online list long before its
// heartbeats could tell (a minute apart): at once on the peer that held a
// connection to it (its own failed probe) and, through that peer's
// suspicion, on the peers that had none (no refutation came).
func TestDetectKilledNodeWithoutHeartbeats(t *testing.T) {
	ms := make([]*Mesh, 4)
	for i := range ms {
		ms[i] = newTestMesh(t, "testnet", slowHeartbeats)
	}
	// A star around ms[0], plus ms[1]–ms[2]: only ms[0] holds a
	// connection to ms[3].
	for _, m := range ms[1:] {
		connect(t, m, ms[0])
	}
	connect(t, ms[1], ms[2])
	meetAll(t, ms)
	if ms[1].Connected(ms[3].ID()) || ms[2].Connected(ms[3].ID()) {
		t.Fatal("test setup: ms[1] or ms[2] holds a connection to ms[3]")
	}

	killed, rest := ms[3], ms[:3]
	_ = killed.Close()
	// The bound is generous (the figures live in
	// BenchmarkFailureDetection); heartbeats alone would take 3 minutes.
	eventually(t, 20*time.Second, "killed node offline on every survivor", func() bool {
		return allSee(rest, killed.ID(), protocol.StatusOffline)
	})
	if n := testutil.ToFloat64(ms[0].met.liveness.WithLabelValues("claimed")); n < 1 {
		t.Errorf("the connected peer gossiped %v suspicions, want one", n)
	}
	for _, m := range rest {
		if !allSee(rest, m.ID(), protocol.StatusOnline) {
			t.Errorf("a survivor is not online everywhere")
		}
	}
}

// A liar gossiping suspicions of a live node, over and over, gets it marked
// offline nowhere: the peer connected to it probes it, the others wait for
// its refutation, which comes at once.
func TestFalseSuspicionDoesNotStick(t *testing.T) {
	victim := newTestMesh(t, "testnet", slowHeartbeats)
	a := newTestMesh(t, "testnet", slowHeartbeats)
	b := newTestMesh(t, "testnet", slowHeartbeats)
	c := newTestMesh(t, "testnet", slowHeartbeats)
	liar := newTestMesh(t, "testnet", slowHeartbeats)
	connect(t, victim, a)
	connect(t, a, b)
	connect(t, b, c)
	for _, m := range []*Mesh{a, b, c} {
		connect(t, liar, m)
	}
	ms := []*Mesh{victim, a, b, c, liar}
	meetAll(t, ms)
	if c.Connected(victim.ID()) {
		t.Fatal("test setup: c holds a connection to the victim")
	}

	ctx := context.Background()
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		now := time.UnixMilli(time.Now().UnixMilli())
		// The highest seq the rules let a claimant name.
		claim := protocol.Suspicion{Suspect: victim.ID().String(), Seq: uint64(now.Add(victim.cfg.ClockSkew).UnixMicro()), Time: now.UnixMilli()}
		data, err := claim.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := liar.Publish(ctx, KindLiveness, data); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			for _, m := range []*Mesh{a, b, c} {
				if st := statusOf(m, victim.ID()); st != protocol.StatusOnline {
					p, _ := m.Peer(victim.ID())
					t.Fatalf("victim %s on %s (a %s b %s c %s) after a false suspicion: %+v", st, m.ID(), a.ID(), b.ID(), c.ID(), p)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// c holds no connection to the victim: only the refutation saved it.
	if n := testutil.ToFloat64(c.met.liveness.WithLabelValues("claim_taken")); n == 0 {
		t.Error("c never took the liar's suspicion as a hint: the test did not test anything")
	}
	if n := testutil.ToFloat64(victim.met.liveness.WithLabelValues("refuted")); n == 0 {
		t.Error("the victim never refuted")
	}
}

// A death's neighbours all claim it at once, and each claim used to cross
// the whole network: a node now forwards (ACCEPTs) only the claims that
// add to a suspicion it holds (a new claimant within the bound, or a seq
// above every claim it forwarded) and IGNOREs the rest, which one it
// forwarded covers.
func TestClaimsAddingNothingAreNotForwarded(t *testing.T) {
	victim := newTestMesh(t, "testnet", slowHeartbeats)
	a := newTestMesh(t, "testnet", slowHeartbeats)
	b := newTestMesh(t, "testnet", slowHeartbeats)
	claimants := make([]*Mesh, b.cfg.Detector.Confirmations+2)
	connect(t, victim, a)
	connect(t, a, b)
	for i := range claimants {
		claimants[i] = newTestMesh(t, "testnet", slowHeartbeats)
		connect(t, claimants[i], b)
	}
	meetAll(t, append([]*Mesh{victim, a, b}, claimants...))
	if b.Connected(victim.ID()) {
		t.Fatal("test setup: b holds a connection to the victim (it would probe it)")
	}
	info, _ := b.Peer(victim.ID())
	claim := func(seq uint64) []byte {
		data, err := (&protocol.Suspicion{Suspect: victim.ID().String(), Seq: seq, Time: time.Now().UnixMilli()}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	// Straight to b's validator, not gossiped: the victim cannot refute.
	ctx := context.Background()
	for i, c := range claimants {
		_, err := b.validateSuspicion(ctx, c.ID(), claim(info.Seq))
		v, _ := verdict(err)
		want := pubsub.ValidationAccept
		if i > b.cfg.Detector.Confirmations {
			want = pubsub.ValidationIgnore // four claimants forwarded already
		}
		if v != want {
			t.Fatalf("claim %d of %d: verdict %v (%v), want %v", i+1, len(claimants), v, err, want)
		}
	}
	last := claimants[len(claimants)-1].ID()
	if _, err := b.validateSuspicion(ctx, last, claim(info.Seq+1)); err != nil {
		t.Fatalf("a claim above every claim forwarded: %v, want it forwarded (the suspect must hear it)", err)
	}
	if _, err := b.validateSuspicion(ctx, last, claim(info.Seq+1)); !errors.Is(err, protocol.ErrDuplicate) {
		t.Fatalf("the same claim again: %v, want ErrDuplicate (IGNORE)", err)
	}
}

// A down mark holds against heartbeats the claim had already covered (one
// in flight when the node died) and yields to a newer one (its refutation
// or its return), or to a successful probe.
func TestDownMarkYieldsOnlyToNewerHeartbeatOrProbe(t *testing.T) {
	_, id := testkeys.New(t)
	tb := newTable()
	now := time.Now()
	caps := protocol.Capabilities{"cpu_cores": int64(2)}
	observe := func(seq uint64) {
		t.Helper()
		hb := heartbeatFrom(id, seq, caps)
		if _, _, err := tb.observe(&hb, caps, id, now); err != nil {
			t.Fatal(err)
		}
	}
	observe(10)
	if _, before, ok := tb.markDown(id, 20, now); !ok || before != protocol.StatusOnline {
		t.Fatalf("markDown: %v %s", ok, before)
	}
	observe(15) // a straggler below the claim's seq
	if p, _ := tb.get(id, now); p.Status != protocol.StatusOffline {
		t.Fatalf("after a straggler: %s, want offline", p.Status)
	}
	observe(21) // the refutation
	if p, _ := tb.get(id, now); p.Status != protocol.StatusOnline || !p.DownAt.IsZero() {
		t.Fatalf("after the refutation: %s, down at %v", p.Status, p.DownAt)
	}
	tb.markDown(id, 30, now)
	if _, ok := tb.markUp(id, now); !ok {
		t.Fatal("markUp found no down mark")
	}
	if p, _ := tb.get(id, now); p.Status != protocol.StatusOnline {
		t.Fatalf("after a successful probe: %s", p.Status)
	}
}

// A heartbeat below a claim this node dropped (the row was offline
// already) lists the peer online again, on the peer's signature, but
// contested: gossip may have brought a refutation the peer sent before it
// died after the claims that followed its death. A heartbeat above every
// such claim, and a straggler that leaves the row down, are not
// contested; a contest's bar is at most contestSpan above the heartbeat,
// and a peer is contested at most once per contestEvery.
func TestLateHeartbeatBelowADroppedClaimIsContested(t *testing.T) {
	caps := protocol.Capabilities{"cpu_cores": int64(2)}
	t0 := time.Now()
	setup := func(t *testing.T) (*table, peer.ID, func(seq uint64, at time.Time) observation) {
		_, id := testkeys.New(t)
		tb := newTable()
		return tb, id, func(seq uint64, at time.Time) observation {
			t.Helper()
			hb := heartbeatFrom(id, seq, caps)
			o, err := tb.observeFrom(id, &hb, caps, id, at)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
	}

	t.Run("a late refutation below a dropped claim", func(t *testing.T) {
		tb, id, observe := setup(t)
		observe(10, t0)
		tb.claimDropped(id, 50, t0) // online: a claim here is taken, not dropped
		tb.markDown(id, 10, t0)
		tb.claimDropped(id, 30, t0)
		tb.claimDropped(id, 25, t0)
		if o := observe(20, t0); o.contested != 30 || !o.notable || o.info.Status != protocol.StatusOnline {
			t.Fatalf("%+v, want online and contested at 30", o)
		}
		if o := observe(21, t0); o.contested != 0 {
			t.Fatal("the next heartbeat contested too: the claim bar outlived the return")
		}
	})

	t.Run("at the claim's own seq", func(t *testing.T) {
		tb, id, observe := setup(t)
		observe(10, t0)
		tb.markDown(id, 10, t0)
		tb.claimDropped(id, 80, t0)
		if o := observe(80, t0); o.contested != 80 {
			t.Fatalf("contested %d, want 80", o.contested)
		}
	})

	t.Run("a straggler below the down mark keeps the bar", func(t *testing.T) {
		tb, id, observe := setup(t)
		observe(10, t0)
		tb.markDown(id, 40, t0)
		tb.claimDropped(id, 45, t0)
		if o := observe(35, t0); o.contested != 0 || o.info.Status != protocol.StatusOffline {
			t.Fatalf("%+v, want offline, not contested", o)
		}
		if o := observe(42, t0); o.contested != 45 {
			t.Fatal("the claim bar was lost to a straggler that left the row down")
		}
	})

	t.Run("above every dropped claim", func(t *testing.T) {
		tb, id, observe := setup(t)
		observe(10, t0)
		tb.markDown(id, 50, t0)
		tb.claimDropped(id, 55, t0)
		if o := observe(56, t0); o.contested != 0 || o.info.Status != protocol.StatusOnline {
			t.Fatalf("%+v, want online, not contested", o)
		}
	})

	t.Run("a probe's answer clears the bar", func(t *testing.T) {
		tb, id, observe := setup(t)
		observe(10, t0)
		tb.markDown(id, 60, t0)
		tb.claimDropped(id, 70, t0)
		tb.markUp(id, t0)
		tb.markDown(id, 60, t0)
		if o := observe(65, t0); o.contested != 0 {
			t.Fatal("a probe's answer did not clear the claim bar")
		}
	})

	t.Run("offline by its heartbeats' age", func(t *testing.T) {
		tb, id, observe := setup(t)
		observe(10, t0.Add(-time.Hour))
		tb.claimDropped(id, 90, t0)
		if o := observe(85, t0); o.contested != 90 {
			t.Fatalf("contested %d, want 90", o.contested)
		}
	})

	// A liar's claim, dropped where the peer is away and forwarded to
	// nobody, names a seq up to a minute ahead: the peer's return is
	// contested (clocks cannot tell a return from a straggler), but at a
	// bar just above its own heartbeat, which its next heartbeat passes,
	// and once per contestEvery.
	t.Run("a liar's claim a minute ahead", func(t *testing.T) {
		tb, id, observe := setup(t)
		back := uint64(t0.UnixMicro())
		observe(back-60_000_000, t0.Add(-time.Hour))
		tb.claimDropped(id, back+60_000_000, t0)
		want := back + uint64(contestSpan.Microseconds())
		if o := observe(back, t0); o.contested != want {
			t.Fatalf("contested at %d, want %d (contestSpan above the heartbeat)", o.contested, want)
		}
		tb.markDown(id, want, t0.Add(time.Second)) // the contest ran out
		tb.claimDropped(id, back+120_000_000, t0.Add(2*time.Second))
		next := back + uint64(time.Minute.Microseconds())
		if o := observe(next, t0.Add(time.Minute)); o.contested != 0 || o.info.Status != protocol.StatusOnline {
			t.Fatalf("%+v: contested again within contestEvery", o)
		}
		tb.markDown(id, next, t0.Add(time.Minute))
		tb.claimDropped(id, next+60_000_000, t0.Add(time.Minute))
		later := t0.Add(time.Minute + contestEvery)
		if o := observe(next+1, later); o.contested == 0 {
			t.Fatal("not contested after contestEvery: the window never ends")
		}
	})
}

// The run the 1,000-node benchmark left stuck, on real hosts: a survivor
// marked a dead node down, dropped the claims that followed (stale there),
// and then received the dead node's refutation, sent before it died and
// delayed in gossip. It lists the node online again, suspected at the
// dropped claim's seq, and declares it down once more when no refutation
// comes; heartbeats a minute apart could not (offline after 10 minutes).
func TestContestedReturnIsSuspectedAgain(t *testing.T) {
	s := newTestMesh(t, "testnet", slowHeartbeats)
	_, dead := testkeys.New(t)
	_, claimant := testkeys.New(t)
	lateRefutation(t, s, claimant, dead)
	if n := livenessEvent(s, "up_contested"); n != 1 {
		t.Fatalf("%v contested returns counted, want 1", n)
	}
	eventually(t, 20*time.Second, "the dead node offline again", func() bool {
		return statusOf(s, dead) == protocol.StatusOffline
	})
	if n := livenessEvent(s, "claimed"); n != 0 {
		t.Fatalf("%v claims gossiped: a contested return costs the network nothing", n)
	}
}

// A live node in the same place, connected, answers the probe the
// contested suspicion asks for at once (the node's own random probes are
// a minute apart here) and stays online.
func TestContestedLivePeerIsProbed(t *testing.T) {
	rare := func(c *Config) { slowHeartbeats(c); c.ProbeInterval = time.Minute }
	s := newTestMesh(t, "testnet", rare)
	alive := newTestMesh(t, "testnet", rare)
	connect(t, s, alive)
	_, claimant := testkeys.New(t)
	lateRefutation(t, s, claimant, alive.ID())
	eventually(t, 5*time.Second, "the live node probed", func() bool { return livenessEvent(s, "probe_ok") > 0 })
	s.live.mu.Lock()
	_, held := s.live.det.Suspected(alive.ID())
	s.live.mu.Unlock()
	if held {
		t.Fatal("the live node is still suspected after it answered")
	}
	if st := statusOf(s, alive.ID()); st != protocol.StatusOnline {
		t.Fatalf("the live node: %s, want online", st)
	}
}

// lateRefutation plays, on s, a peer's down mark, a claim about it
// dropped there (seq 30, from a listed claimant), and then the peer's
// refutation (seq 20) signed before the claim came and delivered after:
// it lists the peer online again, contested.
func lateRefutation(t *testing.T, s *Mesh, claimant, p peer.ID) {
	t.Helper()
	caps := protocol.Capabilities{"cpu_cores": int64(2), "node_type": "compute"}
	signed := time.Now().Add(-2 * time.Second)
	heartbeat := func(id peer.ID, seq uint64) {
		t.Helper()
		hb := heartbeatFrom(id, seq, caps)
		hb.IntervalMS = 60_000
		hb.Time = signed.UnixMilli()
		if err := s.acceptHeartbeat(id, id, mustEncode(t, hb)); err != nil {
			t.Fatal(err)
		}
	}
	heartbeat(claimant, uint64(time.Now().UnixMicro()))
	heartbeat(p, 10)
	s.table.markDown(p, 10, time.Now())
	data, err := (&protocol.Suspicion{Suspect: p.String(), Seq: 30, Time: time.Now().UnixMilli()}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.validateSuspicion(context.Background(), claimant, data); !errors.Is(err, protocol.ErrStale) {
		t.Fatalf("a claim of a peer marked down: %v, want ErrStale (dropped)", err)
	}
	heartbeat(p, 20) // the late refutation
	if st := statusOf(s, p); st != protocol.StatusOnline {
		t.Fatalf("after a heartbeat above the down mark: %s, want online", st)
	}
}

// A probe that may not dial and finds the connection gone (trimmed, or
// closed by the suspect's connection manager after a liar's claim queued
// the probe) is no evidence of a death: it must not confirm someone
// else's claim, which would be gossiped and shorten every node's wait.
func TestProbeWithoutConnectionConfirmsNothing(t *testing.T) {
	m := newTestMesh(t, "testnet", slowHeartbeats)
	_, suspect := testkeys.New(t)
	_, liar := testkeys.New(t)
	caps := protocol.Capabilities{"cpu_cores": int64(2)}
	hb := heartbeatFrom(suspect, 10, caps)
	if _, _, err := m.table.observe(&hb, caps, suspect, time.Now()); err != nil {
		t.Fatal(err)
	}
	claim := &protocol.Suspicion{Suspect: suspect.String(), Seq: 10, Time: time.Now().UnixMilli()}
	m.live.mu.Lock()
	_, err := m.live.det.Claim(suspect, liar, claim, 10, 0, true, time.Now())
	m.live.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// The probe the claim asked for, run after the connection closed.
	m.enqueueProbe(protocol.LivenessAction{Kind: protocol.ActProbe, Peer: suspect})
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(m.met.liveness.WithLabelValues("probe_failed")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the probe never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := testutil.ToFloat64(m.met.liveness.WithLabelValues("claimed")); n != 0 {
		t.Fatalf("a probe that found no connection was gossiped as a confirmation (%v claims)", n)
	}
}

// liarLine is victim – a – b, with a liar connected to b (and to the
// victim if direct), every node listing every other online: b holds no
// connection to the victim, so only the victim's refutation keeps it
// online there.
func liarLine(t *testing.T, direct bool) (victim, b, liar *Mesh) {
	t.Helper()
	victim = newTestMesh(t, "testnet", slowHeartbeats)
	a := newTestMesh(t, "testnet", slowHeartbeats)
	b = newTestMesh(t, "testnet", slowHeartbeats)
	liar = newTestMesh(t, "testnet", slowHeartbeats)
	connect(t, victim, a)
	connect(t, a, b)
	connect(t, liar, b)
	if direct {
		connect(t, liar, victim)
	}
	meetAll(t, []*Mesh{victim, a, b, liar})
	if b.Connected(victim.ID()) {
		t.Fatal("setup: b connected to the victim")
	}
	return victim, b, liar
}

// staysOnline fails if observer lists the victim anything but online
// within a lone claim's wait and 3 s more.
func staysOnline(t *testing.T, observer, victim *Mesh) {
	t.Helper()
	deadline := time.Now().Add(observer.cfg.Detector.SuspicionTimeout + 3*time.Second)
	for time.Now().Before(deadline) {
		if st := statusOf(observer, victim.ID()); st != protocol.StatusOnline {
			t.Fatalf("live victim %s on %s (victim refuted %v times)", st, observer.ID(), livenessEvent(victim, "refuted"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A liar spends its own rate bucket at the victim with ten liveness
// messages on its direct connection (claims about a peer nobody lists:
// IGNOREd there, forwarded nowhere, within the burst), then gossips one
// claim of the victim. The victim used to drop that claim as rate-limited
// and never refute it, and every node not connected to it declared it
// down. A claim about this node now passes the per-origin rate limit.
func TestSuspectRefutesClaimsPastTheRateLimit(t *testing.T) {
	victim, b, liar := liarLine(t, true)
	// What ten signed liveness messages from the liar on its own link do
	// (a stand-in: the limiter's bucket spent directly).
	for range 10 {
		victim.rates.allow(KindLiveness, liar.ID(), time.Now())
	}
	info, _ := b.Peer(victim.ID())
	if err := liar.publishSuspicion(victim.ID(), info.Seq); err != nil {
		t.Fatal(err)
	}
	staysOnline(t, b, victim)
}

// A claim dated at the edge of the skew window is taken at its first hop
// and was too old 400 ms later at the suspect, which dropped it instead of
// refuting it. The suspect now answers a claim of any age. (Validators
// called directly, standing for 400 ms of gossip between b and the victim.)
func TestSuspectRefutesAClaimTooOldForItsWindow(t *testing.T) {
	victim, b, liar := liarLine(t, false)
	info, _ := b.Peer(victim.ID())
	data, err := (&protocol.Suspicion{Suspect: victim.ID().String(), Seq: info.Seq,
		Time: time.Now().Add(-b.cfg.ClockSkew + 300*time.Millisecond).UnixMilli()}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.validateSuspicion(ctx, liar.ID(), data); err != nil {
		t.Fatalf("b: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, err := victim.validateSuspicion(ctx, liar.ID(), data); errors.Is(err, protocol.ErrClockSkew) {
		t.Fatalf("victim: %v, want the claim refuted", err)
	}
	staysOnline(t, b, victim)
}

// A connection the connection manager trims is no evidence of a death:
// neither end dials the other back (which would undo the trim), over TCP
// (yamux carries the close code) and QUIC alike; a connection that closes
// otherwise is, at once, the detector's probe. The trims are made as
// libp2p's connection manager makes them (CloseWithError with
// ConnGarbageCollected): it never trims the heartbeat mesh's peers, which
// a network this small holds only.
func TestTrimmedConnectionIsNoEvidence(t *testing.T) {
	for _, transport := range []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"} {
		t.Run(transport, func(t *testing.T) {
			listen := func(c *Config) { c.ListenAddrs = []string{transport} }
			hub := newTestMesh(t, "testnet", slowHeartbeats, listen)
			ms := []*Mesh{hub}
			for range 3 {
				leaf := newTestMesh(t, "testnet", slowHeartbeats, listen)
				connect(t, leaf, hub)
				ms = append(ms, leaf)
			}
			meetAll(t, ms)
			kept, trimmed := ms[1], ms[2:]
			for _, leaf := range trimmed {
				for _, c := range hub.Host().Network().ConnsToPeer(leaf.ID()) {
					_ = c.CloseWithError(network.ConnGarbageCollected)
				}
			}
			eventually(t, 5*time.Second, "both ends count the trims", func() bool {
				for _, leaf := range trimmed {
					if testutil.ToFloat64(leaf.met.liveness.WithLabelValues("trimmed")) != 1 {
						return false
					}
				}
				return testutil.ToFloat64(hub.met.liveness.WithLabelValues("trimmed")) == 2
			})
			time.Sleep(time.Second) // a probe's dial on loopback takes milliseconds
			for _, leaf := range trimmed {
				if hub.Connected(leaf.ID()) {
					t.Errorf("a trimmed connection was dialled back")
				}
				if statusOf(hub, leaf.ID()) != protocol.StatusOnline || statusOf(leaf, hub.ID()) != protocol.StatusOnline {
					t.Errorf("a trimmed peer is no longer listed online")
				}
			}
			for _, m := range ms {
				if n := testutil.ToFloat64(m.met.liveness.WithLabelValues("probe_failed")); n != 0 {
					t.Errorf("a node failed %v probes after the trims, want none", n)
				}
			}

			// The connection left closes without the trim's code: the
			// detector dials it back to probe.
			for _, c := range hub.Host().Network().ConnsToPeer(kept.ID()) {
				_ = c.Close()
			}
			// Generous: a loaded machine delays the probe (its second
			// try is a second after a first that failed).
			eventually(t, 15*time.Second, "a connection closed otherwise dialled back", func() bool {
				return hub.Connected(kept.ID())
			})
		})
	}
}

// A node holding no connection and no address of a peer (libp2p forgets
// them 15 minutes after the last connection closed, and a node keeps few
// connections) still reaches it by id: the DHT is asked first, as a
// routed host would.
func TestDialByIDFindsForgottenAddresses(t *testing.T) {
	withDHT := func(c *Config) { c.DHT = true }
	// a's discovery stops at one connection (ConnHigh/2), so a meets c
	// only through this test's dial.
	a := newTestMesh(t, "testnet", slowHeartbeats, withDHT, func(c *Config) { c.ConnLow, c.ConnHigh = 1, 2 })
	b := newTestMesh(t, "testnet", slowHeartbeats, withDHT)
	c := newTestMesh(t, "testnet", slowHeartbeats, withDHT)
	connect(t, a, b)
	connect(t, c, b)
	eventually(t, 10*time.Second, "b in a's routing table, b knows c's addresses", func() bool {
		return a.kad.RoutingTable().Find(b.ID()) != "" && len(b.Host().Peerstore().Addrs(c.ID())) > 0
	})
	for _, conn := range a.Host().Network().ConnsToPeer(c.ID()) {
		_ = conn.CloseWithError(network.ConnGarbageCollected) // a DHT query of a's may have dialled c
	}
	a.Host().Peerstore().ClearAddrs(c.ID())
	if a.Connected(c.ID()) || len(a.Host().Peerstore().Addrs(c.ID())) != 0 {
		t.Fatal("test setup: a still holds a connection to or an address of c")
	}
	if err := a.probe(c.ID(), true, 10*time.Second); err != nil {
		t.Fatalf("dial by id of a peer whose addresses were forgotten: %v", err)
	}
	if !a.Connected(c.ID()) {
		t.Fatal("the probe succeeded without a connection")
	}
}

// An observer's results sync may not dial (network.WithNoDial,
// node/lifecycle.go: a silence must never have the network dial the
// submitter), so it runs no DHT lookup for a peer whose addresses are
// unknown either: the DHT's dials ignore NoDial and would reach the
// target. (Found by a review that attacked the connection bound.)
func TestNoDialRequestRunsNoLookup(t *testing.T) {
	withDHT := func(c *Config) { c.DHT = true }
	few := func(c *Config) { c.ConnLow, c.ConnHigh = 1, 2 } // discovery stops at one peer
	a := newTestMesh(t, "testnet", slowHeartbeats, withDHT, few)
	b := newTestMesh(t, "testnet", slowHeartbeats, withDHT)
	c := newTestMesh(t, "testnet", slowHeartbeats, withDHT, few)
	connect(t, a, b)
	connect(t, c, b)
	eventually(t, 10*time.Second, "b in a's routing table, b knows c's addresses", func() bool {
		return a.kad.RoutingTable().Find(b.ID()) != "" && len(b.Host().Peerstore().Addrs(c.ID())) > 0
	})
	for _, conn := range a.Host().Network().ConnsToPeer(c.ID()) {
		_ = conn.CloseWithError(network.ConnGarbageCollected)
	}
	a.Host().Peerstore().ClearAddrs(c.ID())
	if a.Connected(c.ID()) {
		t.Fatal("setup: a connected to c")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = network.WithNoDial(ctx, "results sync of an observed task")
	_, err := a.FetchResults(ctx, c.ID(), strings.Repeat("ab", 32))
	t.Logf("FetchResults under NoDial: err=%v", err)
	if n := len(a.Host().Peerstore().Addrs(c.ID())); n > 0 {
		t.Errorf("a NoDial request ran a DHT lookup for its target (%d addresses of c now in a's peerstore)", n)
	}
	if a.Connected(c.ID()) {
		t.Errorf("a NoDial request left a connected to the target (dialled by findAddrs' DHT lookup); err=%v", err)
	}
}

// A connection the connection manager trims while a probe's ping is in
// flight on it is no failed probe: with a liar's claim held, it would be
// gossiped as this node's own confirmation. (A trim before the probe is
// TestProbeWithoutConnectionConfirmsNothing.)
func TestTrimDuringProbeIsNoEvidence(t *testing.T) {
	hub := newTestMesh(t, "testnet", slowHeartbeats)
	leaf := newTestMesh(t, "testnet", slowHeartbeats)
	connect(t, leaf, hub)
	meetAll(t, []*Mesh{hub, leaf})
	// The leaf answers pings slowly (a loaded node: 400 ms).
	leaf.Host().SetStreamHandler(ping.ID, func(s network.Stream) {
		defer s.Close()
		buf := make([]byte, ping.PingSize)
		for {
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			time.Sleep(400 * time.Millisecond)
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	})
	_, liar := testkeys.New(t)
	seq := hub.table.lastSeq(leaf.ID())
	claim := &protocol.Suspicion{Suspect: leaf.ID().String(), Seq: seq, Time: time.Now().UnixMilli()}
	hub.live.mu.Lock()
	acts, err := hub.live.det.Claim(leaf.ID(), liar, claim, seq, 0, true, time.Now())
	hub.live.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	hub.act(acts) // the probe the claim asks for, over the live connection
	time.Sleep(150 * time.Millisecond)
	for _, c := range hub.Host().Network().ConnsToPeer(leaf.ID()) {
		_ = c.CloseWithError(network.ConnGarbageCollected) // as connmgr trims
	}
	eventually(t, 5*time.Second, "the probe ends", func() bool {
		return testutil.ToFloat64(hub.met.liveness.WithLabelValues("probe_failed"))+
			testutil.ToFloat64(hub.met.liveness.WithLabelValues("probe_ok")) > 0
	})
	time.Sleep(100 * time.Millisecond)
	if n := testutil.ToFloat64(hub.met.liveness.WithLabelValues("claimed")); n != 0 {
		t.Errorf("a probe cut by a trim was gossiped as a confirmation of a liar's claim (%v claims, probe_failed=%v, trimmed=%v)",
			n, testutil.ToFloat64(hub.met.liveness.WithLabelValues("probe_failed")), testutil.ToFloat64(hub.met.liveness.WithLabelValues("trimmed")))
	}
}

// Lost connections wait for the detector in a queue of lostQueue: beyond
// it one is dropped and counted, and the swarm's notification never
// blocks (the detector's loop is not running here, so nothing drains it).
func TestLostConnectionsBeyondTheQueueAreDroppedAndCounted(t *testing.T) {
	idle := func(c *Config) { c.deferLiveness = true }
	a := newTestMesh(t, "testnet", slowHeartbeats, idle)
	b := newTestMesh(t, "testnet", slowHeartbeats, idle)
	connect(t, a, b)
	meetAll(t, []*Mesh{a, b})
	conns := a.Host().Network().ConnsToPeer(b.ID())
	for _, c := range conns {
		_ = c.Close()
	}
	eventually(t, 5*time.Second, "the connection closed", func() bool { return !a.Connected(b.ID()) })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range lostQueue + 5 {
			a.disconnected(a.Host().Network(), conns[0])
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the Disconnected notification blocked on a full queue")
	}
	if n := len(a.live.lost); n != lostQueue {
		t.Errorf("%d lost connections queued, want the queue's %d", n, lostQueue)
	}
	if n := testutil.ToFloat64(a.met.liveness.WithLabelValues("lost_dropped")); n != 5 {
		t.Errorf("%v dropped and counted, want 5", n)
	}
}

// Two heartbeats of a peer validated on two workers: the late one below a
// dropped claim (contested) and the peer's refutation above it. If the
// refutation reaches the detector between the table's verdict on the late
// one and its Contested call, the suspicion it should have cleared is
// raised after it, and the live peer is declared down.
func TestContestAfterRefutationIsNoSuspicion(t *testing.T) {
	c := newContestSetup(t, 30)
	// Worker A: the late heartbeat, as far as the table.
	o := c.observe(t, 20, 30)
	// Worker B: the refutation, all of it.
	if err := c.s.acceptHeartbeat(c.p, c.p, mustEncode(t, c.hb(31))); err != nil {
		t.Fatal(err)
	}
	// Worker A again.
	c.s.contest(c.p, o.contested, time.Now())
	if c.held() {
		t.Fatal("a refutation accepted before the contest left the peer suspected")
	}
}

// A heartbeat at the contest's bar itself refutes nothing (a claim at seq
// S is refuted above S): the contest's re-check holds the peer suspected.
func TestContestAtItsBarIsSuspicion(t *testing.T) {
	c := newContestSetup(t, 40)
	o := c.observe(t, 40, 40)
	c.s.contest(c.p, o.contested, time.Now())
	if !c.held() {
		t.Fatal("a heartbeat at the contest's bar counted as its refutation")
	}
}

// contestSetup is a mesh s that listed peer p online at seq 10, then
// marked it down there and dropped a claim about it at seq claim.
type contestSetup struct {
	s    *Mesh
	p    peer.ID
	caps protocol.Capabilities
}

func newContestSetup(t *testing.T, claim uint64) *contestSetup {
	t.Helper()
	c := &contestSetup{s: newTestMesh(t, "testnet", slowHeartbeats), caps: protocol.Capabilities{"cpu_cores": int64(2), "node_type": "compute"}}
	_, c.p = testkeys.New(t)
	if err := c.s.acceptHeartbeat(c.p, c.p, mustEncode(t, c.hb(10))); err != nil {
		t.Fatal(err)
	}
	c.s.table.markDown(c.p, 10, time.Now())
	c.s.table.claimDropped(c.p, claim, time.Now())
	return c
}

// hb is p's heartbeat at seq, signed before the claims.
func (c *contestSetup) hb(seq uint64) protocol.Heartbeat {
	h := heartbeatFrom(c.p, seq, c.caps)
	h.IntervalMS = 60_000
	h.Time = time.Now().Add(-2 * time.Second).UnixMilli()
	return h
}

// observe runs p's heartbeat at seq through the table, as a validation
// worker does before its contest, and wants it contested at bar.
func (c *contestSetup) observe(t *testing.T, seq, bar uint64) observation {
	t.Helper()
	h := c.hb(seq)
	o, err := c.s.table.observeFrom(c.p, &h, c.caps, c.p, time.Now())
	if err != nil || o.contested != bar {
		t.Fatalf("%+v %v, want contested at %d", o, err, bar)
	}
	return o
}

// held reports whether s's detector holds p suspected.
func (c *contestSetup) held() bool {
	c.s.live.mu.Lock()
	defer c.s.live.mu.Unlock()
	_, held := c.s.live.det.Suspected(c.p)
	return held
}
