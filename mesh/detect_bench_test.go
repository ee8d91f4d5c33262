package mesh

import (
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/proofmesh/proofmesh/protocol"
)

// benchDetectLarge adds 1,000 nodes to BenchmarkFailureDetection: heavy for
// a 2-core machine.
var benchDetectLarge = flag.Bool("detect-large", false, "BenchmarkFailureDetection: also run 1,000 nodes")

// benchDetectBudget overrides the network-wide heartbeat budget of
// BenchmarkFailureDetection. Heartbeats carry capabilities, not liveness,
// and their cost grows with the network in one simulating process (every
// node checks every heartbeat): a lower budget leaves a 2-core machine
// enough CPU for 1,000 nodes' failure detection, which costs each node the
// same at any size.
var benchDetectBudget = flag.Float64("detect-budget", 0, "BenchmarkFailureDetection: network-wide heartbeats per second (0: DefaultConfig's)")

// benchDetectProfile writes CPU profiles of the quiet window before the
// kill (what a network of that size costs the process when nothing
// happens) and of the first round (the kill until detection), as
// PREFIX.N.quiet and PREFIX.N.round.
var benchDetectProfile = flag.String("detect-profile", "", "BenchmarkFailureDetection: write CPU profiles of the quiet window and the first round to PREFIX.N.quiet and PREFIX.N.round")

// startBenchProfile starts a CPU profile to the file -detect-profile names
// with suffix, if set; the function it returns stops it.
func startBenchProfile(b *testing.B, suffix string) func() {
	if *benchDetectProfile == "" {
		return func() {}
	}
	f, err := os.Create(*benchDetectProfile + "." + suffix)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

const benchKilled = 10 // nodes killed at once per b.N iteration

// BenchmarkFailureDetection measures how long it takes, after 10 nodes of a
// mocknet network are killed at once (their hosts closed, as when a process
// dies), until no survivor lists any of them online, at 100 nodes (and
// 1,000 with -detect-large), on DefaultConfig: a 10 s base heartbeat
// interval stretched by the budget of 10 heartbeats a second
// network-wide (10 s at 100 nodes, 100 s at 1,000), so heartbeats alone
// would take 3 intervals. It also reports the gossipsub bytes a node sends
// per second, before the kill (heartbeats, gossip control) and during
// detection (suspicions added). The graph is newBenchNet's (ring plus
// chords, mean degree ≈ 8, 20 ms links); nodes start with their peer table
// restored. Run it with -benchtime 1x.
func BenchmarkFailureDetection(b *testing.B) {
	sizes := []int{100}
	if *benchDetectLarge {
		sizes = append(sizes, 1000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) { benchmarkFailureDetection(b, n) })
	}
}

func benchmarkFailureDetection(b *testing.B, n int) {
	cfg := DefaultConfig()
	if *benchDetectBudget > 0 {
		cfg.HeartbeatBudget = *benchDetectBudget
	}
	iv := protocol.AdaptiveInterval(cfg.HeartbeatInterval, n-1, cfg.HeartbeatBudget)
	began := time.Now()
	net := newBenchNet(b, n, 0, iv, func(c *Config) {
		c.HeartbeatBudget = cfg.HeartbeatBudget
		c.deferLiveness = true
	})
	b.Logf("%d nodes, %d links, set up in %s, heartbeat budget %g/s network-wide, interval %s", n, net.links, time.Since(began).Round(time.Second), cfg.HeartbeatBudget, iv)
	// Let the gossip meshes form and the start-up load pass (every node's
	// first heartbeats reach every other: n² checks in this one process,
	// not n per node as on n machines), then start failure detection,
	// and measure a quiet window once it has run a while.
	time.Sleep(3 * time.Second) // warm-up, not a wait for a condition
	settled, offline := net.allOnline(2 * time.Minute)
	b.Logf("start-up load passed in %s: (node, peer) pairs not listed online, by status: %s", settled.Round(time.Second), offline)
	for _, m := range net.meshes {
		if err := m.startLiveness(); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(5 * time.Second) // detection's own warm-up: probes, the liveness topic's meshes
	stopProfile := startBenchProfile(b, fmt.Sprintf("%d.quiet", n))
	cpuQuiet := cpuSample()
	quiet := net.bytesPerNodeSecond(n, 5*time.Second)
	stopProfile()
	b.Logf("quiet window: this process kept %.0f%% of its %d cores busy", 100*cpuBusy(cpuQuiet), runtime.GOMAXPROCS(0))
	b.Logf("before the kill: %s", livenessCounts(net.meshes, nil))

	rng := mrand.New(mrand.NewPCG(uint64(n), 3))
	alive := slices.Clone(net.meshes)
	var detect, pairs []time.Duration
	var busy float64
	for b.Loop() {
		rng.Shuffle(len(alive), func(i, j int) { alive[i], alive[j] = alive[j], alive[i] })
		killed, rest := alive[:benchKilled], alive[benchKilled:]
		ids := make([]peer.ID, len(killed))
		for i, m := range killed {
			ids[i] = m.ID()
		}
		before := livenessSnapshot(rest)
		stopProfile := func() {}
		if len(detect) == 0 {
			stopProfile = startBenchProfile(b, fmt.Sprintf("%d.round", n))
		}
		cpuBefore := cpuSample()
		net.probe.bytes.Store(0)
		net.probe.measuring.Store(true)
		start := time.Now()
		for _, m := range killed {
			net.kill(m)
		}
		first := make(map[[2]int]time.Duration) // (survivor, killed) → when it left the online list
		deadline := start.Add(2 * time.Minute)
		lastLog := start
		for len(first) < len(rest)*len(killed) && time.Now().Before(deadline) {
			for i, m := range rest {
				for j, id := range ids {
					if _, done := first[[2]int{i, j}]; done {
						continue
					}
					if statusOf(m, id) != protocol.StatusOnline {
						first[[2]int{i, j}] = time.Since(start)
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
			if time.Since(lastLog) >= 15*time.Second {
				lastLog = time.Now()
				b.Logf("%s after the kill: %d pairs online; %s", time.Since(start).Round(time.Second), len(rest)*len(killed)-len(first), livenessCounts(rest, before))
			}
		}
		took := time.Since(start)
		busyCPU := cpuBusy(cpuBefore)
		stopProfile()
		notDown := 0
		for _, m := range rest {
			for _, id := range ids {
				if p, _ := m.Peer(id); p.DownAt.IsZero() {
					notDown++
				}
			}
		}
		b.Logf("round: %d pairs off by heartbeat age, not the detector; during the round: %s; local health scores: %s; this process kept %.0f%% of its %d cores busy", notDown, livenessCounts(rest, before), healthScores(rest), 100*busyCPU, runtime.GOMAXPROCS(0))
		net.probe.measuring.Store(false)
		busy = float64(net.probe.bytes.Load()) / float64(len(rest)) / took.Seconds()
		if len(first) < len(rest)*len(killed) {
			b.Fatalf("after %s, %d of %d (survivor, killed) pairs still online", took.Round(time.Second), len(rest)*len(killed)-len(first), len(rest)*len(killed))
		}
		last := time.Duration(0)
		for _, d := range first {
			pairs = append(pairs, d)
			last = max(last, d)
		}
		detect = append(detect, last)
		alive = rest
	}
	slices.Sort(pairs)
	b.ReportMetric(slices.Max(detect).Seconds(), "detect-s")
	b.ReportMetric(pairs[len(pairs)/2].Seconds(), "pair-p50-s")
	b.ReportMetric(pairs[len(pairs)*99/100].Seconds(), "pair-p99-s")
	b.ReportMetric(quiet, "idle-bytes/node/s")
	b.ReportMetric(busy, "detect-bytes/node/s")
	b.Logf("%d nodes, %d killed at once per round, %d rounds: every survivor stopped listing them online after %s (slowest round); "+
		"per (survivor, killed) pair p50 %s, p99 %s; gossipsub bytes per node per second %.0f before, %.0f during detection "+
		"(RPCs handed to the transport; pings, one per node per second, are 2×32 B more)",
		n, benchKilled, len(detect), slices.Max(detect).Round(10*time.Millisecond),
		pairs[len(pairs)/2].Round(10*time.Millisecond), pairs[len(pairs)*99/100].Round(10*time.Millisecond), quiet, busy)
}

var (
	livenessEvents   = []string{"probe_ok", "probe_failed", "probe_spared", "heard", "vouched", "indirect_served", "claimed", "claim_taken", "claim_not_taken", "refuted", "down", "up", "up_contested", "contest_not_held", "trimmed", "lost_dropped"}
	livenessVerdicts = []string{"accept", "ignore", "reject", "rate_limited"}
)

// livenessSnapshot sums the nodes' failure-detection events and liveness
// gossip verdicts, in livenessEvents then livenessVerdicts order.
func livenessSnapshot(ms []*Mesh) []float64 {
	var out []float64
	for _, e := range livenessEvents {
		sum := 0.0
		for _, m := range ms {
			sum += testutil.ToFloat64(m.met.liveness.WithLabelValues(e))
		}
		out = append(out, sum)
	}
	for _, v := range livenessVerdicts {
		sum := 0.0
		for _, m := range ms {
			sum += testutil.ToFloat64(m.met.gossip.WithLabelValues(KindLiveness, v))
		}
		out = append(out, sum)
	}
	return out
}

// livenessCounts prints livenessSnapshot(ms), less before if not nil.
func livenessCounts(ms []*Mesh, before []float64) string {
	now := livenessSnapshot(ms)
	var out []string
	for i, name := range append(slices.Clone(livenessEvents), livenessVerdicts...) {
		if i >= len(livenessEvents) {
			name = "gossip " + name
		}
		v := now[i]
		if before != nil {
			v -= before[i]
		}
		out = append(out, fmt.Sprintf("%s %.0f", name, v))
	}
	return strings.Join(out, ", ")
}

// allOnline waits, at most limit, until every node lists every other online,
// and returns how long it waited and the (node, peer) pairs not listed
// online at the end, counted by status.
func (net *benchNet) allOnline(limit time.Duration) (time.Duration, string) {
	start := time.Now()
	for {
		offline := map[protocol.PeerStatus]int{}
		peers := map[peer.ID]string{} // a sample row of each peer not online
		for _, m := range net.meshes {
			for _, o := range net.meshes {
				p, _ := m.Peer(o.ID())
				if o != m && p.Status != protocol.StatusOnline {
					offline[p.Status]++
					peers[o.ID()] = fmt.Sprintf("interval %s, seq %d, last seen %s ago", p.Interval, p.Seq, time.Since(p.LastSeen).Round(time.Second))
				}
			}
		}
		if len(offline) == 0 || time.Since(start) >= limit {
			out := fmt.Sprintf("%v, %d peers", offline, len(peers))
			for id, row := range peers {
				out += fmt.Sprintf("; %s: %s", id.ShortString(), row)
				if len(out) > 1000 {
					break
				}
			}
			return time.Since(start), out
		}
		time.Sleep(time.Second)
	}
}

// bytesPerNodeSecond counts the gossipsub bytes the nodes send during d.
func (net *benchNet) bytesPerNodeSecond(n int, d time.Duration) float64 {
	net.probe.bytes.Store(0)
	net.probe.measuring.Store(true)
	time.Sleep(d) // the measurement itself
	net.probe.measuring.Store(false)
	return float64(net.probe.bytes.Load()) / float64(n) / d.Seconds()
}

// kill makes m's node gone as a dead process is: its links removed (no
// dial reaches it again), its host and mesh closed (every connection
// closes). mocknet alone would let a closed host's peers dial it again.
func (net *benchNet) kill(m *Mesh) {
	id := m.ID()
	for _, p := range net.mn.Peers() {
		if p != id && len(net.mn.LinksBetweenPeers(id, p)) > 0 {
			_ = net.mn.UnlinkPeers(id, p)
		}
	}
	_ = m.Close()
	// Closing a mocknet host resets its streams one by one, and a reset
	// waits for the stream's other end: at 1,000 nodes on 2 cores one
	// such wait never ended (a goroutine dump after 17 minutes showed the
	// kill stuck in mock stream Reset). A dead process waits for nobody.
	go func() { _ = m.Host().Close() }()
}

// healthScores counts the nodes by their local health score (Lifeguard's
// multiplier: above 0, a node's probes timed out over live connections).
func healthScores(ms []*Mesh) string {
	by := map[int]int{}
	for _, m := range ms {
		m.live.mu.Lock()
		by[m.live.det.Health()]++
		m.live.mu.Unlock()
	}
	return fmt.Sprint(by)
}

// cpuSample is the CPU time this process used so far (user + system,
// from getrusage) and the wall time. The Go runtime's own CPU estimates
// (runtime/metrics' /cpu/classes) move only at a GC, and a window without
// one read as 0% busy.
type cpuSampleT struct {
	used time.Duration
	at   time.Time
}

func cpuSample() cpuSampleT {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return cpuSampleT{used: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), at: time.Now()}
}

// cpuBusy returns the share of the available CPU (GOMAXPROCS × wall) this
// process used since before: 1 means every core was busy, so the
// simulated nodes were starved for CPU, and times measured include their
// waiting for it.
func cpuBusy(before cpuSampleT) float64 {
	now := cpuSample()
	wall := now.at.Sub(before.at)
	if wall <= 0 {
		return 0
	}
	return float64(now.used-before.used) / float64(wall) / float64(runtime.GOMAXPROCS(0))
}
