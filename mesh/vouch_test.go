package mesh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/proofmesh/proofmesh/internal/testkeys"
	"github.com/proofmesh/proofmesh/protocol"
)

// quickProbes makes a timed-out ping cost 300 ms, not 2 s.
func quickProbes(c *Config) {
	slowHeartbeats(c)
	c.ProbeTimeout = 300 * time.Millisecond
}

// servePing answers libp2p pings on m's host, except those of the peers
// in deaf, which it reads and never answers: a path that loses them.
func servePing(m *Mesh, deaf ...peer.ID) {
	m.Host().SetStreamHandler(ping.ID, func(s network.Stream) {
		defer s.Close()
		for _, p := range deaf {
			if s.Conn().RemotePeer() == p {
				_, _ = io.Copy(io.Discard, s)
				return
			}
		}
		buf := make([]byte, ping.PingSize)
		for {
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	})
}

func livenessEvent(m *Mesh, event string) float64 {
	return testutil.ToFloat64(m.met.liveness.WithLabelValues(event))
}

// SWIM's indirect probe: a's pings of b time out (only on their path), but
// c, asked by a, reaches b, so a's timeouts are no evidence: a never
// claims b. When b answers nobody (a hung process), the helpers' probes
// time out too, and two of a's timeouts make a claim as before.
func TestIndirectProbe(t *testing.T) {
	a := newTestMesh(t, "testnet", quickProbes)
	b := newTestMesh(t, "testnet", quickProbes)
	c := newTestMesh(t, "testnet", quickProbes)
	connect(t, a, b)
	connect(t, a, c)
	connect(t, b, c)
	meetAll(t, []*Mesh{a, b, c})

	servePing(b, a.ID())
	for i := range 3 {
		before := livenessEvent(a, "vouched")
		a.enqueueProbe(probeOf(b.ID()))
		eventually(t, 5*time.Second, "a's timeout of b vouched for by c", func() bool { return livenessEvent(a, "vouched") > before })
		if i < 2 {
			time.Sleep(a.cfg.Detector.RetryAfter) // a second strike would be due now
		}
	}
	if n := livenessEvent(a, "claimed"); n != 0 {
		t.Fatalf("a claimed b %v times though c reached it", n)
	}
	if n := livenessEvent(c, "indirect_served"); n == 0 {
		t.Fatal("c served no indirect probe")
	}
	if st := statusOf(a, b.ID()); st != protocol.StatusOnline {
		t.Fatalf("b %s on a", st)
	}

	servePing(b, a.ID(), c.ID()) // hung: answers nobody
	a.enqueueProbe(probeOf(b.ID()))
	eventually(t, 10*time.Second, "a claims a b that nobody reaches", func() bool { return livenessEvent(a, "claimed") > 0 })
}

func probeOf(p peer.ID) protocol.LivenessAction {
	return protocol.LivenessAction{Kind: protocol.ActProbe, Peer: p}
}

// A helper runs probes only for peers it lists, about peers it lists,
// within a rate per requester, and refuses malformed requests; the
// request's decoder takes nothing but a length byte and a peer id.
func TestServeProbeRefuses(t *testing.T) {
	a, b, c := helperLine(t)
	ask := func(from host.Host, req []byte) byte { t.Helper(); return askRaw(t, from, b, req) }
	reqFor := func(p peer.ID) []byte { t.Helper(); return probeRequest(t, p) }

	if st := ask(a.Host(), reqFor(c.ID())); st != vouchReached {
		t.Fatalf("a listed peer asking about a listed peer: status %d", st)
	}
	if st := ask(a.Host(), []byte{0}); st != statusBadRequest {
		t.Fatalf("a zero-length id: status %d", st)
	}
	if st := ask(a.Host(), append([]byte{5}, "hello"...)); st != statusBadRequest {
		t.Fatalf("five bytes that are no peer id: status %d", st)
	}
	_, unlisted := testkeys.New(t)
	if st := ask(a.Host(), reqFor(unlisted)); st != vouchRefused {
		t.Fatalf("a target b does not list: status %d", st)
	}
	if st := ask(a.Host(), reqFor(a.ID())); st != vouchRefused {
		t.Fatalf("asking about itself: status %d", st)
	}

	stranger, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := stranger.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	if st := ask(stranger, reqFor(c.ID())); st != vouchRefused {
		t.Fatalf("a requester b does not list: status %d", st)
	}

	// a's bucket: the burst, then refusals.
	refused := 0
	for range vouchBurst + 2 {
		if ask(a.Host(), reqFor(c.ID())) == vouchRefused {
			refused++
		}
	}
	if refused == 0 {
		t.Fatalf("%d requests in a row from one peer, none refused (burst %d)", vouchBurst+2, vouchBurst)
	}
}

func TestProbeRequestCodec(t *testing.T) {
	_, id := testkeys.New(t)
	req, err := EncodeProbeRequest(id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeProbeRequest(bytes.NewReader(req))
	if err != nil || got != id {
		t.Fatalf("round trip: %s, %v", got, err)
	}
	for name, in := range map[string][]byte{
		"empty":      nil,
		"zero":       {0},
		"too long":   append([]byte{65}, bytes.Repeat([]byte{1}, 65)...),
		"truncated":  req[:len(req)-1],
		"not an id":  append([]byte{4}, "abcd"...),
		"length 255": {255},
	} {
		if _, err := DecodeProbeRequest(bytes.NewReader(in)); !errors.Is(err, ErrBadProbeRequest) {
			t.Errorf("%s: %v, want ErrBadProbeRequest", name, err)
		}
	}
	if _, err := EncodeProbeRequest(""); !errors.Is(err, ErrBadProbeRequest) {
		t.Errorf("empty id encoded: %v", err)
	}
}

func FuzzDecodeProbeRequest(f *testing.F) {
	_, id := testkeys.New(f)
	req, _ := EncodeProbeRequest(id)
	f.Add(req)
	f.Add([]byte{0})
	f.Add([]byte{64})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		p, err := DecodeProbeRequest(r)
		if err != nil {
			if !errors.Is(err, ErrBadProbeRequest) {
				t.Fatalf("error not ErrBadProbeRequest: %v", err)
			}
			return
		}
		if consumed := len(data) - r.Len(); consumed > 1+maxPeerIDBytes {
			t.Fatalf("read %d bytes, more than a request holds", consumed)
		}
		again, err := EncodeProbeRequest(p)
		if err != nil || !bytes.Equal(again, data[:len(again)]) {
			t.Fatalf("%x decoded to %s, which encodes to %x (%v)", data, p, again, err)
		}
	})
}

// Three hosts nobody lists, each with three streams (the per-peer limit)
// that send one length byte and stall, had held all of a helper's slots
// (taken before the request was read and its requester checked), so
// listed peers got "busy". Slots are now taken after the checks.
func TestStallingStrangersCannotBusyAHelper(t *testing.T) {
	a, b, c := helperLine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		h := stranger(ctx, t, b)
		for range 3 {
			s, err := h.NewStream(ctx, b.ID(), b.probeProtocol())
			if err != nil {
				t.Fatal(err)
			}
			_, _ = s.Write([]byte{34}) // a length byte, then nothing
		}
	}
	time.Sleep(200 * time.Millisecond) // the strangers' streams reach b's handler
	if n := len(b.vouchSem); n != 0 {
		t.Fatalf("strangers hold %d of b's slots", n)
	}
	if st := askRaw(t, a.Host(), b, probeRequest(t, c.ID())); st != vouchReached {
		t.Fatalf("listed requester about a reachable listed peer: status %d (4 = busy); unlisted strangers hold the helper", st)
	}
}

// stranger is a plain libp2p host, listed by nobody, connected to m;
// closed when the test ends.
func stranger(ctx context.Context, t *testing.T, m *Mesh) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if err := h.Connect(ctx, peer.AddrInfo{ID: m.ID(), Addrs: m.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h
}

// helperLine is a – b – c, each listing the others online: b may be asked
// about c by a.
func helperLine(t *testing.T) (a, b, c *Mesh) {
	t.Helper()
	b = newTestMesh(t, "testnet", quickProbes)
	c = newTestMesh(t, "testnet", quickProbes)
	a = newTestMesh(t, "testnet", quickProbes)
	connect(t, a, b)
	connect(t, b, c)
	meetAll(t, []*Mesh{a, b, c})
	return a, b, c
}

// askRaw sends req to helper's probe protocol from a host and returns the
// status byte it answers.
func askRaw(t *testing.T, from host.Host, helper *Mesh, req []byte) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := from.NewStream(ctx, helper.ID(), helper.probeProtocol())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _ = s.Write(req)
	_ = s.CloseWrite()
	var st [1]byte
	if _, err := io.ReadFull(s, st[:]); err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return st[0]
}

func probeRequest(t *testing.T, p peer.ID) []byte {
	t.Helper()
	req, err := EncodeProbeRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// One peer holds at most vouchHelpers inbound probe streams at once (the
// resource manager's per-peer limit for the protocol): of twice as many
// opened together, the ones beyond are reset at once while the others
// still wait on their requests.
func TestProbeStreamsBoundedPerPeer(t *testing.T) {
	_, b, _ := helperLine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := stranger(ctx, t, b)
	// Each stream stalls after its length byte; b's handler waits
	// vouchRequestTimeout (1 s) for the rest.
	var streams []network.Stream
	refused := 0
	for range 2 * vouchHelpers {
		s, err := h.NewStream(ctx, b.ID(), b.probeProtocol())
		if err == nil {
			_, err = s.Write([]byte{34})
		}
		if err != nil {
			refused++
			continue
		}
		streams = append(streams, s)
	}
	time.Sleep(100 * time.Millisecond) // b's handlers take them, or its resource manager resets them
	open := 0
	for _, s := range streams {
		// Open: a read finds no answer and no reset within 200 ms.
		_ = s.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var one [1]byte
		_, err := s.Read(one[:])
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			open++
		} else {
			refused++
		}
	}
	if open != vouchHelpers || refused != vouchHelpers {
		t.Fatalf("of %d probe streams from one peer, %d open and %d refused; want %d and %d", 2*vouchHelpers, open, refused, vouchHelpers, vouchHelpers)
	}
}

// A ping that times out while the peer's gossip keeps arriving over the
// connection is the path's delay, not the peer's death: a busy link
// queues pings behind gossip, and on 1,000 simulated nodes such timeouts
// became false claims that fed on themselves. a holds no other peer to
// ask, so only what b sends keeps a from claiming it, for
// maxHeardExcuses timeouts in a row; once b falls silent (a hung
// process), two timeouts make a claim as before.
func TestTimeoutWhileHearingFromThePeerIsNoEvidence(t *testing.T) {
	// No random probes: only the test's own use up b's excuses.
	onlyOurs := func(c *Config) { quickProbes(c); c.ProbeInterval = time.Minute }
	a := newTestMesh(t, "testnet", onlyOurs)
	b := newTestMesh(t, "testnet", onlyOurs)
	connect(t, a, b)
	meetAll(t, []*Mesh{a, b})
	servePing(b, a.ID())

	stop := keepTalking(b)
	for i := range maxHeardExcuses {
		before := livenessEvent(a, "heard")
		a.enqueueProbe(probeOf(b.ID()))
		eventually(t, 5*time.Second, "a's timeout of b, b heard meanwhile", func() bool { return livenessEvent(a, "heard") > before })
		if i < maxHeardExcuses-1 {
			time.Sleep(a.cfg.Detector.RetryAfter) // a second strike would be due now
		}
	}
	time.Sleep(a.cfg.Detector.RetryAfter)
	if n := livenessEvent(a, "claimed"); n != 0 {
		t.Fatalf("a claimed b %v times while b's gossip kept arriving", n)
	}
	if n := livenessEvent(a, "vouched"); n != 0 {
		t.Fatalf("%v indirect probes vouched with no helper", n)
	}
	// b still talks but never answers: no more excuses, and two
	// timeouts a second apart make a claim (b, alive, refutes it).
	before := livenessEvent(a, "probe_failed")
	a.enqueueProbe(probeOf(b.ID()))
	eventually(t, 5*time.Second, "a's first strike", func() bool { return livenessEvent(a, "probe_failed") > before })
	time.Sleep(a.cfg.Detector.RetryAfter)
	a.enqueueProbe(probeOf(b.ID())) // the second probe (ticks are 15 s apart here)
	eventually(t, 5*time.Second, "a claims a b that keeps talking but never answers", func() bool { return livenessEvent(a, "claimed") > 0 })
	if n := livenessEvent(a, "heard"); n != maxHeardExcuses {
		t.Fatalf("%v timeouts excused, want %d", n, maxHeardExcuses)
	}

	// One answered ping gives b its excuses back.
	servePing(b)
	okBefore := livenessEvent(a, "probe_ok")
	a.enqueueProbe(probeOf(b.ID()))
	eventually(t, 5*time.Second, "b answers a's ping", func() bool { return livenessEvent(a, "probe_ok") > okBefore })
	servePing(b, a.ID())
	heardBefore := livenessEvent(a, "heard")
	a.enqueueProbe(probeOf(b.ID()))
	eventually(t, 5*time.Second, "a timeout excused again after an answer", func() bool { return livenessEvent(a, "heard") > heardBefore })
	stop()
}

// keepTalking has m send a heartbeat every 50 ms (gossip RPCs to its
// peers) until the returned stop is called; stop waits for the sender.
func keepTalking(m *Mesh) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	talking := make(chan struct{})
	go func() {
		defer close(talking)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = m.sendHeartbeat(m.Interval())
			}
		}
	}()
	return func() { cancel(); <-talking }
}

// talkingPair connects two meshes probing every interval and has b keep
// talking (keepTalking) until the returned stop.
func talkingPair(t *testing.T, interval time.Duration) (a, b *Mesh, stop func()) {
	t.Helper()
	opt := func(c *Config) { quickProbes(c); c.ProbeInterval = interval }
	a = newTestMesh(t, "testnet", opt)
	b = newTestMesh(t, "testnet", opt)
	connect(t, a, b)
	meetAll(t, []*Mesh{a, b})
	return a, b, keepTalking(b)
}

// health reads m's local health score.
func health(m *Mesh) int {
	m.live.mu.Lock()
	defer m.live.mu.Unlock()
	return m.live.det.Health()
}

// The random probe of a peer that sent this node gossip within the last
// probe interval is spared: the RPC shows what an answered ping would.
// A peer that falls silent is pinged again, and nothing is spared while
// the local health score is above 0 (only answered pings lower it).
func TestRandomProbeOfAPeerHeardFromIsSpared(t *testing.T) {
	a, b, stop := talkingPair(t, 200*time.Millisecond)
	eventually(t, 5*time.Second, "a spares its random probes of a b that talks", func() bool { return livenessEvent(a, "probe_spared") >= 5 })

	// A slow node (health above 0) pings even a peer it hears, and the
	// answer brings its score back down.
	okBefore := livenessEvent(a, "probe_ok")
	a.live.mu.Lock()
	a.live.det.ProbeTimedOut(b.ID(), 0, true, time.Now()) // vouched: raises the score only
	a.live.mu.Unlock()
	eventually(t, 5*time.Second, "a pings b it hears while its health score is 1", func() bool { return livenessEvent(a, "probe_ok") > okBefore })
	eventually(t, 5*time.Second, "a's health score back to 0", func() bool { return health(a) == 0 })
	stop()

	// b silent, its connection open: a's random probes ping it again.
	okBefore = livenessEvent(a, "probe_ok")
	eventually(t, 5*time.Second, "a pings a b that fell silent", func() bool { return livenessEvent(a, "probe_ok") > okBefore })
}

// A peer this node holds suspected is pinged even if heard: the answer
// clears the suspicion, which the detector may hold without a probe of
// its own (here a contest while not connected, its bar above every
// heartbeat the peer sends).
func TestSuspectedPeerIsNotSpared(t *testing.T) {
	a, b, stop := talkingPair(t, time.Minute) // no random probes: the test's calls only
	defer stop()
	time.Sleep(200 * time.Millisecond)
	now := time.Now()
	if !a.spareProbe(b.ID(), now, now) {
		t.Fatal("the probe of a b that talks not spared")
	}
	a.live.mu.Lock()
	_, err := a.live.det.Contested(b.ID(), math.MaxUint64/2, false, now)
	a.live.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if a.spareProbe(b.ID(), time.Now(), now) {
		t.Fatal("the probe of a suspected b spared")
	}
}

// Sparing leaves a node its test of itself: however often its peer is
// heard, a random probe goes out every pingEvery intervals, so pings
// that would time out (a slow path, or a slow node) still raise the local
// health score, and a timeout excused for a peer that talks has that peer
// pinged again, not spared (a review: a talking b that never answered
// was never pinged, a's score stayed 0, and b's excuses stayed used up).
func TestSparingKeepsPingsThatTimeOut(t *testing.T) {
	a, b, stop := talkingPair(t, 250*time.Millisecond)
	defer stop()
	eventually(t, 5*time.Second, "a spares its random probes of a b that talks", func() bool { return livenessEvent(a, "probe_spared") > 0 })
	servePing(b, a.ID()) // b keeps talking, and never answers a's pings again
	eventually(t, 10*time.Second, "a's health score raised by its pings of b", func() bool { return health(a) > 0 })
	eventually(t, 10*time.Second, "a claims b, which talks but never answers, once its excuses are used up", func() bool { return livenessEvent(a, "claimed") > 0 })
}

// A silent peer is not excused: its last RPC came before the probe.
func TestTimeoutOfASilentPeerIsEvidence(t *testing.T) {
	a := newTestMesh(t, "testnet", quickProbes)
	b := newTestMesh(t, "testnet", quickProbes)
	connect(t, a, b)
	meetAll(t, []*Mesh{a, b})
	servePing(b, a.ID())
	time.Sleep(200 * time.Millisecond) // the last heartbeat's RPCs land
	a.enqueueProbe(probeOf(b.ID()))
	eventually(t, 10*time.Second, "a claims a b that neither answers nor sends", func() bool { return livenessEvent(a, "claimed") > 0 })
	if n := livenessEvent(a, "heard"); n != 0 {
		t.Fatalf("%v timeouts of a silent peer excused", n)
	}
}

func TestHeardFromExcusesAndPrunes(t *testing.T) {
	h := newHeardFrom()
	_, p := testkeys.New(t)
	_, q := testkeys.New(t)
	t0 := time.Now()
	if h.excuse(p, t0.Add(-time.Hour)) {
		t.Fatal("a peer never heard from was excused")
	}
	_ = h.inspect(p, nil)
	if h.excuse(p, time.Now().Add(time.Second)) {
		t.Fatal("excused for a probe begun after its last RPC")
	}
	for i := range maxHeardExcuses {
		if !h.excuse(p, t0) {
			t.Fatalf("timeout %d not excused", i+1)
		}
	}
	if h.excuse(p, t0) {
		t.Fatalf("excused %d times in a row", maxHeardExcuses+1)
	}
	if h.spares(p, t0) {
		t.Fatal("a probe of a peer with excused timeouts spared: only a ping can give them back")
	}
	h.answered(p)
	if !h.spares(p, t0) || h.spares(p, time.Now().Add(time.Second)) || h.spares(q, t0) {
		t.Fatal("spares: want p (answered, heard after t0) spared, not for a later time, and q, never heard, not")
	}
	if !h.excuse(p, t0) {
		t.Fatal("an answered ping did not start the count again")
	}
	_ = h.inspect(q, nil)
	h.prune(time.Now().Add(time.Second))
	if h.len() != 0 {
		t.Fatalf("%d rows left after pruning everything", h.len())
	}
}

// The liveness loop prunes the heard-from rows once per ProbeInterval, so
// they stay bounded by the peers heard within heardTTL.
func TestHeardFromRowsArePrunedByTheLivenessLoop(t *testing.T) {
	m := newTestMesh(t, "testnet", quickProbes)
	_, gone := testkeys.New(t)
	m.heard.mu.Lock()
	m.heard.last[gone] = time.Now().Add(-2 * heardTTL)
	m.heard.excused[gone] = 1
	m.heard.mu.Unlock()
	eventually(t, 5*time.Second, "the stale row pruned", func() bool { return m.heard.len() == 0 })
}
