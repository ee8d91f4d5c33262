package node

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// reputation counts, per executor, the results this node verified and the
// ones it rejected. It feeds ranking, the API and gossip scoring.
type reputation struct {
	mu sync.Mutex
	m  map[peer.ID]*[2]int // verified, rejected
	// keep reports whether a peer's row must stay (the peer table lists
	// it, or it is connected); nil keeps every row.
	keep func(peer.ID) bool
}

// maxReputationRows bounds the rows kept. Anyone can sign a task naming
// made-up candidates, and each such candidate's rejected result made a
// row, never removed (a review found this): the rows beyond the bound
// that the peer table does not list and no connection holds are dropped.
// Those are not persisted either (only the peer table's rows are), so a
// restart forgot them already.
const maxReputationRows = 4096

// creditable reports whether a verified result may raise its executor's
// reputation here: the task's submitter is another peer, of a network
// origin this node knows and that differs from the executor's. A peer
// that submits tasks to itself, or to a peer beside it, earns nothing.
func (n *Node) creditable(submitter, executor string) bool {
	if submitter == executor {
		return false
	}
	so, ok1 := n.originOf(submitter)
	eo, ok2 := n.originOf(executor)
	return ok1 && ok2 && so != eo
}

// originOf is a peer's network origin as this node knows it: that of its
// direct connection under the replica diversity rule.
func (n *Node) originOf(id string) (string, bool) {
	if id == n.id.String() {
		return "self", true
	}
	pid, err := peer.Decode(id)
	if err != nil {
		return "", false
	}
	addr, ok := n.mesh.DirectAddr(pid)
	if !ok {
		return "", false
	}
	return n.network.Diversity().Origin(addr), true
}

// peerID parses a peer id from a message field.
func peerID(s string) (peer.ID, error) { return peer.Decode(s) }

func newReputation() *reputation { return &reputation{m: map[peer.ID]*[2]int{}} }

func (r *reputation) entry(p peer.ID) *[2]int {
	e := r.m[p]
	if e == nil {
		if len(r.m) >= maxReputationRows && r.keep != nil {
			for id := range r.m {
				if !r.keep(id) {
					delete(r.m, id)
				}
			}
		}
		e = new([2]int)
		r.m[p] = e
	}
	return e
}

func (r *reputation) verified(p peer.ID) { r.mu.Lock(); r.entry(p)[0]++; r.mu.Unlock() }
func (r *reputation) rejected(p peer.ID) { r.mu.Lock(); r.entry(p)[1]++; r.mu.Unlock() }

func (r *reputation) set(p peer.ID, verified, rejected int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entry(p)
	e[0], e[1] = max(e[0], verified), max(e[1], rejected)
}

// setKeep installs the rule of the rows kept beyond the bound.
func (r *reputation) setKeep(keep func(peer.ID) bool) {
	r.mu.Lock()
	r.keep = keep
	r.mu.Unlock()
}

func (r *reputation) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

func (r *reputation) get(p peer.ID) (verified, rejected int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.m[p]; e != nil {
		return e[0], e[1]
	}
	return 0, 0
}

// appScore is the application-specific gossip score: each rejected result
// costs 20 points (a few push a peer past the gossip threshold), verified
// results earn a little, capped.
func (r *reputation) appScore(p peer.ID) float64 {
	v, x := r.get(p)
	return min(float64(v), 10) - 20*float64(x)
}

type nodeMetrics struct {
	tasks       *prometheus.CounterVec   // state
	exec        prometheus.Histogram     // seconds
	prove       prometheus.Histogram     // seconds
	verify      *prometheus.HistogramVec // outcome
	results     *prometheus.CounterVec   // verdict
	synced      *prometheus.CounterVec   // outcome
	execFailed  *prometheus.CounterVec   // reason
	submitTo    prometheus.Histogram     // seconds from submit to accepted
	pruned      prometheus.Counter       // finished tasks deleted after the retention
	notFollowed prometheus.Counter       // tasks seen but beyond the bounds of live lifecycles
}

func newNodeMetrics(reg prometheus.Registerer) *nodeMetrics {
	b := prometheus.ExponentialBuckets(0.001, 2.5, 14)
	m := &nodeMetrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proofmesh_task_transitions_total", Help: "Task state transitions recorded by this node, by new state.",
		}, []string{"state"}),
		exec: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "proofmesh_execution_seconds", Help: "WASM execution time of tasks run here.", Buckets: b,
		}),
		prove: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "proofmesh_proving_seconds", Help: "Groth16 proving time of tasks run here.", Buckets: b,
		}),
		verify: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "proofmesh_verification_seconds", Help: "Proof verification time of results seen, by outcome.", Buckets: b,
		}, []string{"outcome"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proofmesh_results_total", Help: "Results validated, by verdict and reason.",
		}, []string{"verdict", "reason"}),
		synced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proofmesh_results_synced_total", Help: "Results asked of peers before acting on a candidate's silence, by outcome (recovered: a result gossip had not delivered here; none: no peer had one; error: no peer answered).",
		}, []string{"outcome"}),
		execFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proofmesh_executions_failed_total", Help: "Tasks this node could not execute, by reason.",
		}, []string{"reason"}),
		submitTo: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "proofmesh_task_latency_seconds", Help: "Time from submission to acceptance of tasks submitted here.", Buckets: b,
		}),
	}
	m.pruned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "proofmesh_tasks_pruned_total", Help: "Finished tasks deleted with their results after the retention period.",
	})
	m.notFollowed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "proofmesh_tasks_not_followed_total", Help: "Tasks seen but not followed: beyond the bounds of live lifecycles (all, observed, per submitter).",
	})
	reg.MustRegister(m.tasks, m.exec, m.prove, m.verify, m.results, m.synced, m.execFailed, m.submitTo, m.pruned, m.notFollowed)
	return m
}
