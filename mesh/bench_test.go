package mesh

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/proofmesh/proofmesh/protocol"
)

// Heartbeat delivery over go-libp2p's mocknet: every node is a full Mesh
// (gossipsub with scoring, validators, peer table, adaptive interval) on a
// mock host, and the links between hosts form a sparse random graph with a
// fixed latency.
const (
	benchNetwork = "bench"
	benchLatency = 20 * time.Millisecond // one-way latency of every link
	benchChords  = 3                     // random links per node on top of a ring: mean degree ≈ 8
	benchRounds  = 5                     // heartbeat intervals measured per b.N iteration
	benchDrain   = 5 * time.Second       // how long a window's last heartbeats may take to arrive
)

// benchTogether starts every node of BenchmarkHeartbeatDelivery at once.
// heartbeatLoop adds no jitter, so nodes started together stay in phase and
// publish each round in a burst: the worst case, not the steady state of a
// network whose nodes joined over time.
var benchTogether = flag.Bool("together", false, "BenchmarkHeartbeatDelivery: start every node at once instead of spreading the starts over one interval")

// benchDeliveryPath splits each heartbeat's last receipt into its arrival
// at the receiver's gossipsub loop and the wait from there to acceptance,
// and says whether the receiver asked for it with IWANT (gossip) rather
// than having it pushed by a mesh peer.
var benchDeliveryHeap = flag.String("delivery-heap", "", "BenchmarkHeartbeatDelivery: write a heap profile of the running network to this file after measuring")

// benchDeliverySoak runs the network this long after its warm-up before
// measuring. Gossipsub's seen caches and the peer score's delivery records
// grow for as long as they keep an id (and up to a minute more, their
// sweep), longer than the warm-up and the measured window together, so the
// default measures a network whose heap is still growing; a soak of 3
// minutes measures its steady state.
var benchDeliverySoak = flag.Duration("delivery-soak", 0, "BenchmarkHeartbeatDelivery: run the network this long after warming up, before measuring")

var benchDeliveryPath = flag.Bool("delivery-path", false, "BenchmarkHeartbeatDelivery: print where the last receipts' time went (arrival, validation, IWANT)")

// BenchmarkHeartbeatDelivery measures, at 10, 50 and 200 nodes, the time
// from a heartbeat's publication to its receipt by the last node (median and
// p99 over heartbeats), the share of heartbeats that reach every node, and
// the gossipsub bytes a node sends per heartbeat interval.
//
// Nodes run DefaultConfig's heartbeat budget (10 per second network-wide)
// on a 1 s base interval, so at 200 nodes the interval stretches to about
// 20 s. Nodes start one after another over one such interval, in random
// order, so that their heartbeats are spread over the interval as in a
// network whose nodes joined over time (-together: all at once). Each node
// starts with its peer table restored, as after a restart on its data dir,
// so that it does not first heartbeat at the base interval while it learns
// the network (the join storm of a fresh network, which is not what this
// measures). The network then warms up, for at most 40 s, until every node
// hears from 95% of the others and runs the interval that gives; each b.N
// iteration measures benchRounds intervals, whether or not it settled (the
// log line says). Run it with -benchtime 1x (make bench,
// bench/heartbeat.sh).
func BenchmarkHeartbeatDelivery(b *testing.B) {
	for _, n := range []int{10, 50, 200} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			benchmarkHeartbeatDelivery(b, n)
		})
	}
}

func benchmarkHeartbeatDelivery(b *testing.B, n int) {
	const base = time.Second
	budget := DefaultConfig().HeartbeatBudget
	iv := protocol.AdaptiveInterval(base, n-1, budget) // the steady state's
	spread, start := iv, "starts spread over "+iv.String()
	if *benchTogether {
		spread, start = 0, "all started at once"
	}
	began := time.Now()
	net := newBenchNet(b, n, spread, iv, func(c *Config) { c.HeartbeatInterval = base })
	settled := "settled"
	if ready, quorum, least := net.settle(base, budget, 40*time.Second); ready < n {
		// Measure anyway: the figures then show the overloaded network.
		settled = fmt.Sprintf("NOT settled (%d of %d nodes saw %d peers online at an interval of %s or more)", ready, n, quorum, least)
	}
	warm := time.Since(began)
	if *benchDeliverySoak > 0 {
		time.Sleep(*benchDeliverySoak) // the network runs meanwhile: nothing to wait for
		settled += fmt.Sprintf(", then ran %s before measuring", *benchDeliverySoak)
	}

	var total windowResult
	cpu, gc := cpuSample(), readGC()
	for b.Loop() {
		total.add(net.probe.measure(benchRounds*iv, benchDrain))
	}
	busy, gcs := cpuBusy(cpu), readGC().since(gc)
	if *benchDeliveryHeap != "" {
		writeHeapProfile(b, *benchDeliveryHeap)
	}
	if total.published == 0 {
		b.Fatal("no heartbeat published during the measurement")
	}
	st := total.stats()
	b.ReportMetric(st.p50, "p50-ms")
	b.ReportMetric(st.p99, "p99-ms")
	b.ReportMetric(100*st.delivery, "delivery-%")
	b.ReportMetric(total.bytesPerNode(n, iv), "bytes/node/interval")
	b.ReportMetric(net.meanInterval().Seconds(), "interval-s")
	b.ReportMetric(float64(total.published), "heartbeats")
	b.Logf("%d nodes (%s), %d links (mean degree %.1f, %s each way), set up and warmed up in %s, %s; "+
		"steady interval %s, measured %s: %d heartbeats of %d B, %d reached all %d other nodes (%.2f%% of receipts); "+
		"publication to last receipt p50 %.0f ms, p99 %.0f ms, max %.0f ms; %.0f B/node/interval, %d RPCs dropped. "+
		"Bytes: gossipsub RPCs handed to the transport (RawTracer.SendRPCCompleted, protobuf size + length prefix), "+
		"every topic, control messages included; mocknet adds no security or muxer framing; "+
		"the process: %.0f%% of %d cores busy while measuring (simulated nodes wait for CPU near 100%%), %s%s",
		n, start, net.links, 2*float64(net.links)/float64(n), benchLatency, warm.Round(time.Second), settled,
		iv, total.window.Round(time.Millisecond), total.published, net.probe.hbBytes.Load(), total.reachedAll, n-1, 100*st.receipts,
		st.p50, st.p99, st.max,
		total.bytesPerNode(n, iv), total.drops, 100*busy, runtime.GOMAXPROCS(0), gcs, net.probe.pathSummary(500*time.Millisecond))
}

// A small network through the benchmark's machinery, so that `make test`
// notices when the benchmark breaks: every heartbeat reaches every node,
// none sooner than one link's latency after its publication, and bytes are
// counted.
func TestHeartbeatDeliveryProbe(t *testing.T) {
	before := runtime.NumGoroutine()
	const iv = 200 * time.Millisecond
	net := newBenchNet(t, 4, 0, 0, func(c *Config) { c.HeartbeatInterval = iv; c.HeartbeatBudget = 0 })
	if ready, _, _ := net.settle(iv, 0, 20*time.Second); ready != 4 {
		t.Fatalf("only %d of 4 nodes see every peer", ready)
	}
	res := net.probe.measure(3*iv, 2*time.Second)
	if st := res.stats(); res.published < 4 || st.delivery != 1 {
		t.Fatalf("%d heartbeats published, %.0f%% reached every node", res.published, 100*st.delivery)
	}
	if fastest := slices.Min(res.latencies); fastest < benchLatency {
		t.Fatalf("fastest delivery %s is below the link latency %s: not measured from publication", fastest, benchLatency)
	}
	if res.bytes <= 0 {
		t.Fatal("no gossipsub bytes counted")
	}
	net.close()
	eventually(t, 5*time.Second, "mesh and mocknet goroutines to end", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// benchNet is a mocknet network of meshes watched by one delivery probe.
type benchNet struct {
	mn        mocknet.Mocknet
	meshes    []*Mesh
	probe     *deliveryProbe
	links     int
	closeOnce sync.Once
}

// newBenchNet starts n meshes on mocknet hosts with Ed25519 identities, one
// every spread/n in a random order (spread 0: all at once), and links and
// connects each edge of sparseGraph, benchLatency long, as soon as both of
// its ends run. With known > 0 every node starts with its peer table
// restored, every other node last seen at its start with interval known,
// as after a restart on its data dir. tune adjusts each node's Config.
// Cleanup closes everything.
func newBenchNet(tb testing.TB, n int, spread, known time.Duration, tune func(*Config)) *benchNet {
	tb.Helper()
	net := &benchNet{
		mn:     mocknet.New(),
		meshes: make([]*Mesh, n),
		probe:  newDeliveryProbe(TopicName(benchNetwork, KindHeartbeat), n),
	}
	tb.Cleanup(net.close)
	net.mn.SetLinkDefaults(mocknet.LinkOptions{Latency: benchLatency})
	hosts := make([]host.Host, n)
	for i := range hosts {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", i>>16&0xff, i>>8&0xff, i&0xff))
		if err != nil {
			tb.Fatal(err)
		}
		if hosts[i], err = net.mn.AddPeer(key, addr); err != nil {
			tb.Fatal(err)
		}
	}
	// Fixed seed: the same graph and start order on every run.
	rng := mrand.New(mrand.NewPCG(uint64(n), 2))
	neighbours := make([][]int, n)
	for _, e := range sparseGraph(n, benchChords, rng) {
		neighbours[e[0]] = append(neighbours[e[0]], e[1])
		neighbours[e[1]] = append(neighbours[e[1]], e[0])
	}
	began := time.Now()
	for k, i := range rng.Perm(n) {
		time.Sleep(time.Until(began.Add(spread * time.Duration(k) / time.Duration(n)))) // the start schedule
		var rows []PeerInfo
		if known > 0 {
			now := time.Now()
			rows = make([]PeerInfo, 0, n-1)
			for _, h := range hosts {
				if h != hosts[i] {
					rows = append(rows, PeerInfo{ID: h.ID(), FirstSeen: now, LastSeen: now, Interval: known})
				}
			}
		}
		m := net.startMesh(tb, hosts[i], func(c *Config) {
			c.Restore = rows
			tune(c)
		})
		net.meshes[i] = m
		for _, j := range neighbours[i] {
			if net.meshes[j] == nil {
				continue // linked when j starts
			}
			if _, err := net.mn.LinkPeers(hosts[i].ID(), hosts[j].ID()); err != nil {
				tb.Fatal(err)
			}
			if _, err := net.mn.ConnectPeers(hosts[i].ID(), hosts[j].ID()); err != nil {
				tb.Fatal(err)
			}
			net.links++
		}
	}
	return net
}

func (net *benchNet) startMesh(tb testing.TB, h host.Host, tune func(*Config)) *Mesh {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.NetworkID = benchNetwork
	cfg.Host = h
	cfg.DHT = false
	cfg.Colocation = true
	cfg.Self = net.probe.self
	cfg.Tracer = probeTracer{p: net.probe, node: h.ID()}
	tune(&cfg)
	m, err := New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// sparseGraph returns the edges of a ring over n nodes plus chords random
// chords from each node: connected by construction, mean degree at most
// 2+2·chords (self-loops and repeated edges are skipped).
func sparseGraph(n, chords int, rng *mrand.Rand) [][2]int {
	seen := make(map[[2]int]bool)
	var edges [][2]int
	add := func(a, b int) {
		if a == b {
			return
		}
		e := [2]int{min(a, b), max(a, b)}
		if !seen[e] {
			seen[e] = true
			edges = append(edges, e)
		}
	}
	for i := range n {
		add(i, (i+1)%n)
	}
	for i := range n {
		for range chords {
			add(i, rng.IntN(n))
		}
	}
	return edges
}

// settle waits for the steady state to within 5%: every node sees at
// least quorum = 95% of the others online, and runs an interval at least
// what the adaptive rule gives for quorum live peers. (At 200 nodes in one
// process, some table almost always misses a peer for a moment.) It
// returns how many nodes got there before the timeout.
func (net *benchNet) settle(base time.Duration, budget float64, timeout time.Duration) (ready, quorum int, least time.Duration) {
	others := len(net.meshes) - 1
	quorum = others - others/20
	least = protocol.AdaptiveInterval(base, quorum, budget)
	deadline := time.Now().Add(timeout)
	for {
		ready = 0
		for _, m := range net.meshes {
			if m.Interval() >= least && heard(m) >= quorum {
				ready++
			}
		}
		if ready == len(net.meshes) || time.Now().After(deadline) {
			return ready, quorum, least
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// meanInterval is the mean of the nodes' current heartbeat intervals.
func (net *benchNet) meanInterval() time.Duration {
	var sum time.Duration
	for _, m := range net.meshes {
		sum += m.Interval()
	}
	return sum / time.Duration(len(net.meshes))
}

// heard counts the peers online on m from a heartbeat (not a restored row).
func heard(m *Mesh) int {
	c := 0
	for _, p := range m.Peers() {
		if p.Seq > 0 && p.Status == protocol.StatusOnline {
			c++
		}
	}
	return c
}

func (net *benchNet) close() {
	net.closeOnce.Do(func() {
		var wg sync.WaitGroup
		for _, m := range net.meshes {
			if m == nil {
				continue // setup failed before it started
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = m.Close()
			}()
		}
		wg.Wait()
		_ = net.mn.Close()
	})
}

// benchHeartbeat is a heartbeat body of realistic size: every capability of
// the default policy, two listen addresses, two task types.
func benchHeartbeat() protocol.Heartbeat {
	return protocol.Heartbeat{
		Capabilities: protocol.Capabilities{
			protocol.CapCPUCores:      int64(8),
			protocol.CapMemoryGB:      int64(32),
			protocol.CapGPUAvailable:  false,
			protocol.CapBandwidthMbps: int64(1000),
			protocol.CapNodeType:      protocol.NodeTypeCompute,
			protocol.CapRegion:        "eu-west-1",
		},
		NodeType:    protocol.NodeTypeCompute,
		Region:      "eu-west-1",
		Load:        0.25,
		Health:      1,
		Version:     "proofmesh/0.1.0",
		TaskTypes:   []string{"wasm", "mimc-chain"},
		ListenAddrs: []string{"/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/udp/4001/quic-v1"},
	}
}

// deliveryProbe collects when each heartbeat was published, when each
// other node accepted it, and how many bytes the nodes wrote.
//
// Every node's Self (called by sendHeartbeat right before it stamps and
// publishes a heartbeat) counts publications, failed ones included, and
// every node's gossipsub tracer reports receipts: the delivery of a message
// after the validators accepted it, that is after the heartbeat entered
// the receiver's peer table. gossipsub does not trace a node's delivery of
// its own messages, so the publication instant is the heartbeat's own Time,
// stamped just before Publish; it has millisecond resolution, so a latency
// errs by under 1 ms on the high side.
type deliveryProbe struct {
	topic string
	nodes int

	measuring atomic.Bool
	tracing   atomic.Bool  // measuring or draining: -delivery-path records
	ignore    atomic.Value // peer.ID whose messages are not heartbeats to measure (a flooder)
	bytes     atomic.Int64 // gossipsub bytes written while measuring
	drops     atomic.Int64 // RPCs dropped (outbound queue full) while measuring
	hbBytes   atomic.Int64 // size of a heartbeat payload

	mu        sync.Mutex
	publishes []time.Time          // when a node's Self was called
	hbs       map[string]*hbRecord // by gossip message id
	paths     map[pathKey]*pathRecord
}

type hbRecord struct {
	published time.Time // the heartbeat's Time
	receipts  int       // nodes other than the publisher that accepted it
	last      time.Time // the latest of those receipts
	lastBy    peer.ID   // the node of that receipt
	first     time.Time // the earliest receipt by another node
	from      peer.ID   // the publisher
}

// writeHeapProfile writes the live heap (after a collection) to path.
func writeHeapProfile(tb testing.TB, path string) {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		tb.Fatal(err)
	}
}

// gcSample is the Go collector's work so far (runtime/metrics).
type gcSample struct{ cycles, cpu, total float64 }

func readGC() gcSample {
	ss := []rtmetrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}
	rtmetrics.Read(ss)
	return gcSample{float64(ss[0].Value.Uint64()), ss[1].Value.Float64(), ss[2].Value.Float64()}
}

// since says how many collections ran after before, and the collector's
// share of the process's CPU in between (the runtime's estimate, updated
// at each collection).
func (g gcSample) since(before gcSample) string {
	if g.cycles == before.cycles {
		// runtime/metrics updates its CPU classes at collections only.
		return "no collection (GOGC=off?)"
	}
	share := math.NaN()
	if d := g.total - before.total; d > 0 {
		share = 100 * (g.cpu - before.cpu) / d
	}
	return fmt.Sprintf("%.0f collections, %.0f%% of its CPU in the collector", g.cycles-before.cycles, share)
}

// pathKey names one node's copy of one heartbeat (-delivery-path).
type pathKey struct {
	id   string
	node peer.ID
}

// pathRecord is when a node's gossipsub loop first saw a heartbeat in an
// RPC, and whether it had asked for it with IWANT (-delivery-path).
type pathRecord struct {
	arrived time.Time
	iwant   bool
}

func newDeliveryProbe(topic string, nodes int) *deliveryProbe {
	return &deliveryProbe{topic: topic, nodes: nodes, hbs: make(map[string]*hbRecord), paths: make(map[pathKey]*pathRecord)}
}

// self is every node's Config.Self.
func (p *deliveryProbe) self() protocol.Heartbeat {
	now := time.Now()
	p.mu.Lock()
	p.publishes = append(p.publishes, now)
	p.mu.Unlock()
	return benchHeartbeat()
}

// delivered records a node's receipt of a message from another node.
func (p *deliveryProbe) delivered(node peer.ID, msg *pubsub.Message) {
	now := time.Now()
	if msg.GetTopic() != p.topic {
		return
	}
	if ig, _ := p.ignore.Load().(peer.ID); ig != "" && msg.GetFrom() == ig {
		return
	}
	id := msg.ID
	if id == "" {
		id = messageID(msg.Message)
	}
	p.mu.Lock()
	r := p.hbs[id]
	p.mu.Unlock()
	if r == nil {
		// First receipt of this heartbeat anywhere: read its Time
		// (outside the lock; every node's event loop comes here).
		hb, err := protocol.DecodeHeartbeat(msg.Data)
		if err != nil {
			return
		}
		p.hbBytes.Store(int64(len(msg.Data)))
		p.mu.Lock()
		if r = p.hbs[id]; r == nil {
			r = &hbRecord{published: time.UnixMilli(hb.Time), from: msg.GetFrom()}
			p.hbs[id] = r
		}
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r.receipts++
	if now.After(r.last) {
		r.last, r.lastBy = now, node
	}
	if r.first.IsZero() || now.Before(r.first) {
		r.first = now
	}
}

func (p *deliveryProbe) sent(rpc *pubsub.RPC) {
	if !p.measuring.Load() {
		return
	}
	size := proto.Size(&rpc.RPC)
	var prefix [binary.MaxVarintLen64]byte
	p.bytes.Add(int64(size + binary.PutUvarint(prefix[:], uint64(size))))
}

// measure counts bytes during a window of length d, then waits up to drain
// for the heartbeats published in the window to reach every node, and
// returns what they did.
func (p *deliveryProbe) measure(d, drain time.Duration) windowResult {
	p.mu.Lock()
	clear(p.hbs)
	clear(p.paths)
	p.publishes = p.publishes[:0]
	p.mu.Unlock()
	p.bytes.Store(0)
	p.drops.Store(0)
	// Heartbeat times are whole milliseconds: so are the window's ends.
	start := time.UnixMilli(time.Now().UnixMilli())
	end := start.Add(d.Truncate(time.Millisecond))
	p.tracing.Store(true)
	defer p.tracing.Store(false)
	p.measuring.Store(true)
	time.Sleep(time.Until(end)) // the measurement itself, not a wait for a condition
	p.measuring.Store(false)

	deadline := time.Now().Add(drain)
	for {
		res := p.result(start, end)
		if res.reachedAll == res.published || time.Now().After(deadline) {
			return res
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *deliveryProbe) result(start, end time.Time) windowResult {
	res := windowResult{window: end.Sub(start), bytes: p.bytes.Load(), drops: p.drops.Load()}
	in := func(t time.Time) bool { return !t.Before(start) && t.Before(end) }
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.publishes {
		if in(t) {
			res.published++
		}
	}
	for _, r := range p.hbs {
		if !in(r.published) {
			continue
		}
		res.receipts += r.receipts
		if r.receipts == p.nodes-1 {
			res.reachedAll++
			res.latencies = append(res.latencies, r.last.Sub(r.published))
		}
	}
	// A heartbeat stamped within microseconds of an end of the window can
	// fall on the other side of it from its Self call.
	res.reachedAll = min(res.reachedAll, res.published)
	res.possible = res.published * (p.nodes - 1)
	res.receipts = min(res.receipts, res.possible)
	return res
}

// probeTracer is a node's gossipsub tracer feeding the probe.
type probeTracer struct {
	nopTracer
	p    *deliveryProbe
	node peer.ID // the node whose gossipsub this traces
}

var _ pubsub.RawTracer = probeTracer{}

func (t probeTracer) DeliverMessage(msg *pubsub.Message) { t.p.delivered(t.node, msg) }
func (t probeTracer) SendRPCCompleted(rpc *pubsub.RPC, _ peer.ID, _ time.Duration) {
	t.p.sent(rpc)
}
func (t probeTracer) DropRPC(*pubsub.RPC, peer.ID) {
	if t.p.measuring.Load() {
		t.p.drops.Add(1)
	}
}

// RecvRPC notes, with -delivery-path, when this node's gossipsub loop
// first saw each heartbeat.
func (t probeTracer) RecvRPC(rpc *pubsub.RPC) {
	if !*benchDeliveryPath || !t.p.tracing.Load() {
		return
	}
	now := time.Now()
	for _, m := range rpc.GetPublish() {
		if m.GetTopic() != t.p.topic {
			continue
		}
		t.p.mu.Lock()
		if r := t.p.pathLocked(pathKey{messageID(m), t.node}); r.arrived.IsZero() {
			r.arrived = now
		}
		t.p.mu.Unlock()
	}
}

// pathLocked returns k's record, created if new. The caller holds p.mu.
func (p *deliveryProbe) pathLocked(k pathKey) *pathRecord {
	r := p.paths[k]
	if r == nil {
		r = &pathRecord{}
		p.paths[k] = r
	}
	return r
}

// SendRPC notes, with -delivery-path, the heartbeats this node asks for
// with IWANT (message ids of other topics are noted too, and never read).
func (t probeTracer) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	if !*benchDeliveryPath || !t.p.tracing.Load() {
		return
	}
	for _, w := range rpc.GetControl().GetIwant() {
		t.p.mu.Lock()
		for _, id := range w.GetMessageIDs() {
			if r := t.p.pathLocked(pathKey{id, t.node}); r.arrived.IsZero() {
				r.iwant = true
			}
		}
		t.p.mu.Unlock()
	}
}

// pathSummary says, with -delivery-path, where the time to the last
// receipt went: for every heartbeat that reached all, and for those that
// took longer than slow, the median time from publication to the last
// receiver's gossipsub loop and from there to its acceptance, and how
// many of those last copies came by IWANT.
func (p *deliveryProbe) pathSummary(slow time.Duration) string {
	if !*benchDeliveryPath {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	type part struct {
		n, iwant, unknown     int
		arrive, accept, first []float64
		from                  map[peer.ID]int
	}
	var all, late part
	for id, r := range p.hbs {
		if r.receipts != p.nodes-1 {
			continue
		}
		parts := []*part{&all}
		if r.last.Sub(r.published) > slow {
			parts = append(parts, &late)
		}
		pr := p.paths[pathKey{id, r.lastBy}]
		for _, x := range parts {
			x.n++
			x.first = append(x.first, ms(r.first.Sub(r.published)))
			if x.from == nil {
				x.from = map[peer.ID]int{}
			}
			x.from[r.from]++
			if pr == nil || pr.arrived.IsZero() {
				x.unknown++
				continue
			}
			if pr.iwant {
				x.iwant++
			}
			x.arrive = append(x.arrive, ms(pr.arrived.Sub(r.published)))
			x.accept = append(x.accept, ms(r.last.Sub(pr.arrived)))
		}
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return math.NaN()
		}
		slices.Sort(v)
		return percentile(v, 0.5)
	}
	f := func(name string, x part) string {
		return fmt.Sprintf("%s: %d heartbeats from %d publishers, last copy by IWANT %d, not traced %d; median publication→first receipt anywhere %.0f ms, publication→arrival at the last receiver %.0f ms, arrival→acceptance %.0f ms (p99 %.0f ms)",
			name, x.n, len(x.from), x.iwant, x.unknown, med(x.first), med(x.arrive), med(x.accept), func() float64 {
				if len(x.accept) == 0 {
					return math.NaN()
				}
				return percentile(x.accept, 0.99) // sorted by med
			}())
	}
	return "; last receipts: " + f("all", all) + "; " + f("slower than "+slow.String(), late)
}

// windowResult is what the probe saw in one or more measurement windows.
type windowResult struct {
	window     time.Duration
	published  int             // heartbeats published in the window
	reachedAll int             // of which every other node accepted
	receipts   int             // (heartbeat, receiver) acceptances
	possible   int             // published × (nodes − 1)
	latencies  []time.Duration // publication → last receipt, for those that reached all
	bytes      int64
	drops      int64
}

func (r *windowResult) add(o windowResult) {
	r.window += o.window
	r.published += o.published
	r.reachedAll += o.reachedAll
	r.receipts += o.receipts
	r.possible += o.possible
	r.latencies = append(r.latencies, o.latencies...)
	r.bytes += o.bytes
	r.drops += o.drops
}

// bytesPerNode is the bytes one node sends per heartbeat interval iv.
func (r *windowResult) bytesPerNode(nodes int, iv time.Duration) float64 {
	if r.window <= 0 {
		return 0
	}
	return float64(r.bytes) / float64(nodes) / (float64(r.window) / float64(iv))
}

// windowStats summarises a window. The percentiles are over every
// heartbeat published, one that never reached every node counting as
// infinitely late (+Inf when more than 1% or 50% did not); max is over
// those that did.
type windowStats struct {
	p50, p99, max      float64 // milliseconds
	delivery, receipts float64 // fractions
}

func (r *windowResult) stats() windowStats {
	var s windowStats
	if r.published > 0 {
		s.delivery = float64(r.reachedAll) / float64(r.published)
	}
	if r.possible > 0 {
		s.receipts = float64(r.receipts) / float64(r.possible)
	}
	l := make([]float64, 0, r.published)
	for _, d := range r.latencies {
		l = append(l, ms(d))
	}
	slices.Sort(l)
	if len(l) > 0 {
		s.max = l[len(l)-1]
	}
	for len(l) < r.published {
		l = append(l, math.Inf(1))
	}
	if len(l) > 0 {
		s.p50, s.p99 = percentile(l, 0.50), percentile(l, 0.99)
	}
	return s
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkHeartbeatDeliveryUnderFlood measures honest heartbeat delivery
// on a 20-node mocknet, first alone and then while one extra peer, linked
// to three nodes, publishes valid-looking heartbeats of its own as fast as
// it can, and prints both side by side. The flooder's excess is ignored by
// the per-origin topic rate limit before validation.
func BenchmarkHeartbeatDeliveryUnderFlood(b *testing.B) {
	const n, base = 20, time.Second
	budget := DefaultConfig().HeartbeatBudget
	iv := protocol.AdaptiveInterval(base, n-1, budget)
	net := newBenchNet(b, n, iv, iv, func(c *Config) { c.HeartbeatInterval = base })
	net.settle(base, budget, 40*time.Second)

	var calm, flood windowResult
	for b.Loop() {
		calm = net.probe.measure(benchRounds*iv, benchDrain)
	}
	st0 := calm.stats()

	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	addr, _ := ma.NewMultiaddr("/ip4/10.255.0.1/tcp/4001")
	fh, err := net.mn.AddPeer(key, addr)
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NetworkID, cfg.Host, cfg.DHT, cfg.Colocation = benchNetwork, fh, false, true
	flooder, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = flooder.Close() })
	net.probe.ignore.Store(fh.ID())
	for _, i := range []int{0, n / 3, 2 * n / 3} {
		if _, err := net.mn.LinkPeers(fh.ID(), net.meshes[i].ID()); err != nil {
			b.Fatal(err)
		}
		if _, err := net.mn.ConnectPeers(fh.ID(), net.meshes[i].ID()); err != nil {
			b.Fatal(err)
		}
	}
	joined := time.Now().Add(30 * time.Second)
	for {
		flooder.mu.Lock()
		peers := len(flooder.topics[KindHeartbeat].ListPeers())
		flooder.mu.Unlock()
		if peers >= 3 {
			break
		}
		if time.Now().After(joined) {
			b.Fatalf("flooder sees %d topic peers", peers)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, stop := context.WithCancel(context.Background())
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond) // 500 messages a second
		defer tick.Stop()
		for seq := uint64(1); ctx.Err() == nil; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			hb := benchHeartbeat()
			hb.NodeID, hb.Seq, hb.Time, hb.IntervalMS, hb.PolicyVersion = fh.ID().String(), seq, time.Now().UnixMilli(), 1000, cfg.Policy.Version
			data, err := hb.Encode()
			if err == nil && flooder.Publish(ctx, KindHeartbeat, data) == nil {
				sent.Add(1)
			}
		}
	}()
	verdicts := func(v string) float64 {
		var sum float64
		for _, m := range net.meshes {
			sum += testutil.ToFloat64(m.met.gossip.WithLabelValues(KindHeartbeat, v))
		}
		return sum
	}
	limited := func() float64 { return verdicts("rate_limited") }
	before := limited()
	flood = net.probe.measure(benchRounds*iv, benchDrain)
	stop()
	<-done
	st1 := flood.stats()
	b.Logf("verdicts: accept %.0f reject %.0f ignore %.0f", verdicts("accept"), verdicts("reject"), verdicts("ignore"))
	rate := float64(sent.Load()) / flood.window.Seconds()
	b.ReportMetric(st0.p99, "calm-p99-ms")
	b.ReportMetric(st1.p99, "flood-p99-ms")
	b.ReportMetric(100*st0.delivery, "calm-delivery-%")
	b.ReportMetric(100*st1.delivery, "flood-delivery-%")
	b.ReportMetric(rate, "flood-msgs/s")
	b.Logf("%d nodes, interval %s: calm p50 %.0f ms p99 %.0f ms delivery %.1f%%; with a flooder publishing %.0f heartbeats/s: "+
		"p50 %.0f ms p99 %.0f ms delivery %.1f%%; %.0f flood messages ignored by the rate limit",
		n, iv, st0.p50, st0.p99, 100*st0.delivery, rate, st1.p50, st1.p99, 100*st1.delivery, limited()-before)
}
