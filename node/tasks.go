package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/sandbox"
	"github.com/proofmesh/proofmesh/store"
	"github.com/proofmesh/proofmesh/tasks"
	"github.com/proofmesh/proofmesh/zk"
)

// taskBook is the in-memory side of the task lifecycle: what this node
// has started (it never runs a task twice), the valid results seen per
// task (they decide takeovers), the open tasks submitted here (for their
// deadlines), takeover timers and API watchers.
type taskBook struct {
	mu       sync.Mutex
	started  map[string]bool
	valid    map[string]map[string]string // task -> executor -> output hash
	open     map[string]time.Time         // origin tasks -> deadline
	timers   map[string]*time.Timer
	waiting  map[string]pendingStart // tasks this node will start at its turn
	watchers map[string]map[chan struct{}]bool
	closed   bool
}

func newTaskBook() *taskBook {
	return &taskBook{
		started: map[string]bool{}, valid: map[string]map[string]string{},
		open: map[string]time.Time{}, timers: map[string]*time.Timer{}, waiting: map[string]pendingStart{},
		watchers: map[string]map[chan struct{}]bool{},
	}
}

func (b *taskBook) validCount(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.valid[id])
}

// addValid records a verified result; false if it was already known.
func (b *taskBook) addValid(id, executor, outHash string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.valid[id]
	if m == nil {
		m = map[string]string{}
		b.valid[id] = m
	}
	if _, dup := m[executor]; dup {
		return false
	}
	m[executor] = outHash
	return true
}

func (b *taskBook) notify(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.watchers[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (b *taskBook) watch(id string) (<-chan struct{}, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan struct{}, 1)
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	if b.watchers[id] == nil {
		b.watchers[id] = map[chan struct{}]bool{}
	}
	b.watchers[id][ch] = true
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.watchers[id][ch] {
			delete(b.watchers[id], ch)
			close(ch)
		}
	}
}

func (b *taskBook) closeWatchers() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for id, ws := range b.watchers {
		for ch := range ws {
			close(ch)
		}
		delete(b.watchers, id)
	}
	for _, t := range b.timers {
		t.Stop()
	}
}

func (n *Node) joinTaskTopics() error {
	if err := n.mesh.Join(mesh.KindTasks, n.validateTaskMessage, n.onTaskMessage, mesh.JoinOptions{}); err != nil {
		return err
	}
	// Proof verification is the expensive check: bounded, with a timeout.
	return n.mesh.Join(mesh.KindResults, n.validateResult, n.onResult, mesh.JoinOptions{Concurrency: 4, Timeout: 30 * time.Second})
}

// ---- submission ----

// Submit checks a task against the registry, ranks the peers able to run
// it and publishes it. With no capable peer online the task is recorded as
// failed at once and the error (wrapping protocol.ErrNoCapablePeer) names
// why each peer was passed over.
func (n *Node) Submit(ctx context.Context, req api.SubmitRequest) (string, error) {
	tt, err := n.reg.Lookup(req.Type)
	if err != nil {
		return "", err
	}
	input, err := decodeInput(tt, req.Input)
	if err != nil {
		return "", err
	}
	replicas := req.Replicas
	if replicas == 0 {
		replicas = tt.DefaultReplicas
	}
	if err := protocol.CheckSubmission(tt, len(input), len(req.Module), replicas); err != nil {
		return "", err
	}
	if err := protocol.CheckInput(tt.ID, input); err != nil {
		return "", err
	}
	now := time.Now()
	t := protocol.Task{
		Type: tt.ID, InputHash: protocol.HashHex(input), InputSize: len(input),
		Submitter: n.id.String(), Created: now.UnixMilli(), Replicas: replicas, LeaseMS: tt.SLO.LeaseMS,
	}
	if len(input) <= protocol.MaxInlineInput {
		t.Input = input
	} else if _, err := n.db.PutBlob(input); err != nil {
		return "", fmt.Errorf("store input: %w", err)
	}
	if tt.ModuleHash == "" {
		if len(req.Module) == 0 {
			return "", fmt.Errorf("%w: type %s needs a module (base64 \"module\")", protocol.ErrBadInput, tt.ID)
		}
		if err := n.sb.Compile(ctx, req.Module); err != nil {
			return "", fmt.Errorf("%w: module: %v", protocol.ErrBadInput, err)
		}
		if t.ModuleHash, err = n.db.PutBlob(req.Module); err != nil {
			return "", fmt.Errorf("store module: %w", err)
		}
		t.ModuleSize = len(req.Module)
	} else if len(req.Module) > 0 {
		return "", fmt.Errorf("%w: type %s has a fixed module; do not send one", protocol.ErrBadInput, tt.ID)
	}
	seed := t.InputHash + fmt.Sprint(t.Created)
	cands, rankErr := protocol.Rank(tt, seed, n.peerViews(), replicas+3)
	if rankErr == nil && len(cands) < replicas {
		rankErr = fmt.Errorf("%w: %d capable peers online, %d replicas asked", protocol.ErrNoCapablePeer, len(cands), replicas)
	}
	if n.rankHook != nil && rankErr == nil {
		cands = n.rankHook(cands)
	}
	t.Candidates = cands
	takeovers := max(len(cands)-replicas, 0)
	t.Deadline = now.Add(time.Duration(takeovers+2) * tt.Lease()).UnixMilli()
	t.ID = t.ContentID()

	rec := store.TaskRecord{Task: t, State: protocol.StatePending, Origin: true,
		Timeline: []store.Event{{State: protocol.StatePending, Time: now, Detail: "submitted", Peer: n.id.String()}}}
	if err := n.db.CreateTask(rec); err != nil {
		return "", fmt.Errorf("record task: %w", err)
	}
	n.audit(store.AuditEntry{Kind: "task.submitted", Actor: n.id.String(), Subject: t.ID, Detail: t.Type})
	if rankErr != nil {
		n.advance(t.ID, protocol.StateFailed, store.Event{Detail: rankErr.Error()})
		return t.ID, rankErr
	}
	msg := protocol.TaskMessage{Task: &t}
	data, err := msg.Encode()
	if err != nil {
		n.advance(t.ID, protocol.StateFailed, store.Event{Detail: err.Error()})
		return t.ID, err
	}
	n.tasks.mu.Lock()
	n.tasks.open[t.ID] = time.UnixMilli(t.Deadline)
	n.tasks.mu.Unlock()
	n.advance(t.ID, protocol.StateAssigned, store.Event{Detail: "candidates: " + strings.Join(shortIDs(cands), ", ")})
	if err := n.mesh.Publish(ctx, mesh.KindTasks, data); err != nil {
		n.advance(t.ID, protocol.StateFailed, store.Event{Detail: "publish: " + err.Error()})
		return t.ID, err
	}
	n.log.Info("task submitted", "task", short(t.ID), "type", t.Type, "candidates", len(cands))
	return t.ID, nil
}

// decodeInput turns the API's input into task bytes: compact JSON for
// typed tasks, base64-decoded bytes for wasm.exec.v1.
func decodeInput(tt protocol.TaskType, raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: \"input\" is required", protocol.ErrBadInput)
	}
	if tt.ModuleHash == "" {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%w: type %s takes \"input\" as a base64 string", protocol.ErrBadInput, tt.ID)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: \"input\" is not base64: %v", protocol.ErrBadInput, err)
		}
		return b, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("%w: \"input\" is not JSON: %v", protocol.ErrBadInput, err)
	}
	return buf.Bytes(), nil
}

// peerViews are the peers (and this node itself) as ranking sees them.
func (n *Node) peerViews() []protocol.PeerView {
	var out []protocol.PeerView
	for _, p := range n.mesh.Peers() {
		v := protocol.PeerView{ID: p.ID.String(), Status: p.Status, Capabilities: p.Capabilities}
		if p.Heartbeat != nil {
			v.TaskTypes, v.Load, v.Health = p.Heartbeat.TaskTypes, p.Heartbeat.Load, p.Heartbeat.Health
		}
		v.Verified, v.Rejected = n.rep.get(p.ID)
		out = append(out, v)
	}
	if !n.cfg.BootstrapOnly {
		hb := n.heartbeat()
		v := protocol.PeerView{ID: n.id.String(), Status: protocol.StatusOnline, Capabilities: n.caps,
			TaskTypes: hb.TaskTypes, Load: hb.Load, Health: hb.Health}
		v.Verified, v.Rejected = n.rep.get(n.id)
		out = append(out, v)
	}
	return out
}

// advance moves a task to a new state, records the event and tells the
// watchers. Illegal transitions (gossip out of order) are dropped quietly.
func (n *Node) advance(id string, to protocol.TaskState, ev store.Event) bool {
	ev.State = to
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if _, err := n.db.Advance(id, to, ev); err != nil {
		if !errors.Is(err, protocol.ErrBadTransition) {
			n.log.Warn("task state not recorded", "task", short(id), "state", to, "err", err)
		}
		return false
	}
	n.met.tasks.WithLabelValues(string(to)).Inc()
	if to.Terminal() {
		n.tasks.mu.Lock()
		delete(n.tasks.open, id)
		n.tasks.mu.Unlock()
		n.audit(store.AuditEntry{Kind: "task." + string(to), Actor: ev.Peer, Subject: id, Detail: ev.Detail})
	}
	n.tasks.notify(id)
	return true
}

// ---- the tasks topic ----

func (n *Node) validateTaskMessage(_ context.Context, from peer.ID, data []byte) error {
	msg, err := protocol.DecodeTaskMessage(data)
	if err != nil {
		return err
	}
	now := time.Now()
	if msg.Task != nil {
		_, err := protocol.CheckTask(msg.Task, n.reg, from, now, protocol.DefaultClockSkew)
		return err
	}
	p := msg.Progress
	if p.Executor != from.String() {
		return fmt.Errorf("%w: progress for %s sent by %s", protocol.ErrForged, p.Executor, from)
	}
	rec, err := n.db.GetTask(p.TaskID)
	if err != nil {
		return fmt.Errorf("%w: progress of a task not seen", protocol.ErrNotYet)
	}
	if rec.Task.CandidateIndex(p.Executor) < 0 {
		return fmt.Errorf("%w: %s", protocol.ErrExecutorNotAllowed, p.Executor)
	}
	return nil
}

func (n *Node) onTaskMessage(m mesh.Message) {
	msg, err := protocol.DecodeTaskMessage(m.Data)
	if err != nil {
		return
	}
	if msg.Progress != nil {
		n.onProgress(msg.Progress)
		return
	}
	t := msg.Task
	if !m.Local {
		err := n.db.CreateTask(store.TaskRecord{Task: *t, State: protocol.StateAssigned,
			Timeline: []store.Event{{State: protocol.StateAssigned, Time: time.Now(), Detail: "seen on the mesh", Peer: t.Submitter}}})
		if err != nil && !errors.Is(err, store.ErrExists) {
			n.log.Warn("task not recorded", "task", short(t.ID), "err", err)
			return
		}
	}
	n.schedule(t)
}

func (n *Node) onProgress(p *protocol.Progress) {
	rec, err := n.db.GetTask(p.TaskID)
	if err != nil || !rec.Origin {
		return
	}
	state := p.State
	if state != protocol.StateRunning && state != protocol.StateProving {
		return
	}
	if state == protocol.StateRunning && rec.Task.CandidateIndex(p.Executor) >= rec.Task.Replicas &&
		rec.State != protocol.StateAssigned && rec.State != protocol.StatePending {
		// A takeover: the task goes back to assigned on the timeline first.
		n.advance(p.TaskID, protocol.StateAssigned, store.Event{Detail: "taken over by " + short(p.Executor), Peer: p.Executor})
	}
	_, _ = n.db.UpdateTask(p.TaskID, func(r *store.TaskRecord) error {
		if !slices.Contains(r.Executors, p.Executor) {
			r.Executors = append(r.Executors, p.Executor)
		}
		return nil
	})
	n.advance(p.TaskID, state, store.Event{Detail: string(state) + " on " + shortIDs([]string{p.Executor})[0], Peer: p.Executor})
}

// schedule arranges for this node to run a task when its turn comes, if it
// is a candidate: the first replicas at once, a later one a lease after
// the one before it, and only while valid results are missing.
func (n *Node) schedule(t *protocol.Task) {
	if n.cfg.BootstrapOnly {
		return
	}
	i := t.CandidateIndex(n.id.String())
	if i < 0 {
		return
	}
	wait := time.Until(t.StartAt(i))
	n.tasks.mu.Lock()
	defer n.tasks.mu.Unlock()
	if n.tasks.started[t.ID] || n.tasks.timers[t.ID] != nil || n.tasks.closed {
		return
	}
	n.tasks.timers[t.ID] = time.AfterFunc(max(wait, 0), func() { n.maybeStart(t, i, false) })
	if wait > 0 {
		n.tasks.waiting[t.ID] = pendingStart{t: t, i: i}
	}
}

func (n *Node) need(t *protocol.Task) int {
	if n.reg[t.Type].Verification.Kind == protocol.VerifyReplicated {
		return t.Replicas
	}
	return 1
}

// pendingStart is a later candidate's scheduled takeover.
type pendingStart struct {
	t *protocol.Task
	i int
}

// onPeerLeft lets this node take over at once the tasks whose candidate
// just before it has left the network with a signed Leave: that
// candidate will not deliver, so waiting out its lease helps nobody.
func (n *Node) onPeerLeft(p peer.ID) {
	n.tasks.mu.Lock()
	var now []pendingStart
	for id, ps := range n.tasks.waiting {
		if ps.i >= ps.t.Replicas && ps.t.CandidateIndex(p.String()) == ps.i-1 {
			now = append(now, ps)
			delete(n.tasks.waiting, id)
		}
	}
	n.tasks.mu.Unlock()
	for _, ps := range now {
		n.log.Info("taking over from a candidate that left", "task", short(ps.t.ID), "left", p)
		n.maybeStart(ps.t, ps.i, true)
	}
}

// maybeStart starts candidate i's run of t if its turn has come (or, with
// early, because the candidate before it left) and valid results are still
// missing.
func (n *Node) maybeStart(t *protocol.Task, i int, early bool) {
	if n.ctx.Err() != nil {
		return
	}
	n.tasks.mu.Lock()
	delete(n.tasks.waiting, t.ID)
	n.tasks.mu.Unlock()
	at := time.Now()
	if early && time.Now().Before(time.UnixMilli(t.Deadline)) {
		at = t.StartAt(i) // the turn counts as come
	}
	if !t.ShouldStart(i, at, n.tasks.validCount(t.ID), n.need(t)) {
		n.log.Debug("not starting task", "task", short(t.ID), "candidate", i)
		return
	}
	n.tasks.mu.Lock()
	if n.tasks.started[t.ID] || n.tasks.closed {
		n.tasks.mu.Unlock()
		return
	}
	n.tasks.started[t.ID] = true
	n.wg.Add(1)
	n.tasks.mu.Unlock()
	go func() {
		defer n.wg.Done()
		if err := n.execute(t); err != nil && n.ctx.Err() == nil {
			n.met.execFailed.WithLabelValues(execFailReason(err)).Inc()
			n.log.Warn("task execution failed", "task", short(t.ID), "type", t.Type, "err", err)
		}
	}()
}

// ---- execution ----

func (n *Node) publishProgress(t *protocol.Task, state protocol.TaskState) {
	msg := protocol.TaskMessage{Progress: &protocol.Progress{TaskID: t.ID, Executor: n.id.String(), State: state, Time: time.Now().UnixMilli()}}
	data, err := msg.Encode()
	if err == nil {
		err = n.mesh.Publish(n.ctx, mesh.KindTasks, data)
	}
	if err != nil {
		n.log.Debug("progress not published", "task", short(t.ID), "err", err)
	}
}

// execute runs a task this node is a candidate for: fetch the module and
// input, run them in the sandbox under the type's profile, prove (groth16
// types), and publish the signed result.
func (n *Node) execute(t *protocol.Task) error {
	tt, err := n.reg.Lookup(t.Type)
	if err != nil {
		return err
	}
	// Persist the claim first: a restarted node does not run it again.
	if _, err := n.db.UpdateTask(t.ID, func(r *store.TaskRecord) error {
		if slices.Contains(r.Executors, n.id.String()) && !r.Origin {
			return errAlreadyRan
		}
		if !slices.Contains(r.Executors, n.id.String()) {
			r.Executors = append(r.Executors, n.id.String())
		}
		return nil
	}); err != nil {
		return err
	}
	n.publishProgress(t, protocol.StateRunning)
	ctx, cancel := context.WithDeadline(n.ctx, time.UnixMilli(t.Deadline))
	defer cancel()
	module, err := n.module(ctx, t, tt)
	if err != nil {
		return err
	}
	input := t.Input
	if input == nil {
		if input, err = n.fetchBlob(ctx, t, t.InputHash, int64(tt.Profile.MaxInputBytes)); err != nil {
			return fmt.Errorf("input: %w", err)
		}
	}
	lim := sandbox.Limits{
		MaxMemoryPages: tt.Profile.MaxMemoryPages, Timeout: tt.Profile.MaxRuntime(), Fuel: tt.Profile.Fuel,
		MaxInputBytes: tt.Profile.MaxInputBytes, MaxOutputBytes: tt.Profile.MaxOutputBytes, MaxModuleBytes: tt.Profile.MaxModuleBytes,
	}
	out, st, err := n.sb.Run(ctx, module, input, lim)
	n.met.exec.Observe(st.Wall.Seconds())
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	r := &protocol.Result{
		TaskID: t.ID, Type: t.Type, Executor: n.id.String(), InputHash: t.InputHash,
		Output: out, OutputHash: protocol.HashHex(out),
		Stats: protocol.ExecStats{WallMS: st.Wall.Milliseconds(), FuelUsed: st.FuelUsed, MemoryPages: st.PeakMemoryPages, OutputBytes: st.OutputBytes},
	}
	if tt.Verification.Kind == protocol.VerifyGroth16 {
		n.publishProgress(t, protocol.StateProving)
		if err := n.ensureProvingKey(ctx, t, tt.Verification.Circuit); err != nil {
			return err
		}
		binding := zk.Binding([]byte(t.ID), []byte(n.id.String()))
		start := time.Now()
		proof, err := n.prover.Prove(ctx, tt.Verification.Circuit, input, out, binding)
		if err != nil {
			return fmt.Errorf("prove: %w", err)
		}
		r.Stats.ProveMS = time.Since(start).Milliseconds()
		n.met.prove.Observe(time.Since(start).Seconds())
		r.Input, r.Proof = input, proof
		if r.PublicInputs, err = zk.PublicInputs(tt.Verification.Circuit, input, out, binding); err != nil {
			return err
		}
	}
	if n.tamper != nil {
		n.tamper(r)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not publishing: %w", err) // shutting down or past the deadline
	}
	r.Time = time.Now().UnixMilli()
	env, err := protocol.Seal(r, n.key)
	if err != nil {
		return err
	}
	if err := n.mesh.Publish(ctx, mesh.KindResults, env); err != nil {
		return fmt.Errorf("publish result: %w", err)
	}
	n.log.Info("result published", "task", short(t.ID), "type", t.Type, "wall_ms", r.Stats.WallMS, "prove_ms", r.Stats.ProveMS)
	return nil
}

var errAlreadyRan = errors.New("this node already ran the task")

// execFailReason is a metric label for an execution failure.
func execFailReason(err error) string {
	switch {
	case errors.Is(err, mesh.ErrBlobHashMismatch):
		return "blob_hash_mismatch"
	case errors.Is(err, mesh.ErrBlobNotFound), errors.Is(err, mesh.ErrBlobTooLarge), errors.Is(err, mesh.ErrBlobBusy):
		return "blob_unavailable"
	case errors.Is(err, sandbox.ErrTimeout):
		return "timeout"
	case errors.Is(err, sandbox.ErrFuelExhausted):
		return "fuel"
	case errors.Is(err, sandbox.ErrMemoryLimit):
		return "memory"
	case errors.Is(err, sandbox.ErrExit), errors.Is(err, sandbox.ErrTrap):
		return "guest_error"
	case errors.Is(err, sandbox.ErrInvalidModule):
		return "invalid_module"
	case errors.Is(err, errAlreadyRan):
		return "already_ran"
	}
	return "other"
}

// module returns the task's WASM: the built-in module of a typed task
// (checked against the pinned hash), or the submitter's module fetched by
// hash.
func (n *Node) module(ctx context.Context, t *protocol.Task, tt protocol.TaskType) ([]byte, error) {
	if tt.ModuleHash != "" {
		m, ok := tasks.Module(tt.ID)
		if !ok || protocol.HashHex(m) != tt.ModuleHash {
			return nil, fmt.Errorf("module of %s: this binary's module does not match the network's pinned hash %s", tt.ID, tt.ModuleHash)
		}
		return m, nil
	}
	m, err := n.fetchBlob(ctx, t, t.ModuleHash, int64(tt.Profile.MaxModuleBytes))
	if err != nil {
		return nil, fmt.Errorf("module: %w", err)
	}
	if len(m) != t.ModuleSize {
		return nil, fmt.Errorf("module: %d bytes, task says %d", len(m), t.ModuleSize)
	}
	return m, nil
}

// fetchBlob returns a blob from the store or from the task's submitter;
// the mesh checks the hash, so a peer cannot substitute other bytes.
func (n *Node) fetchBlob(ctx context.Context, t *protocol.Task, hash string, limit int64) ([]byte, error) {
	if b, err := n.db.GetBlob(hash); err == nil {
		return b, nil
	}
	sub, err := peer.Decode(t.Submitter)
	if err != nil {
		return nil, err
	}
	b, err := n.mesh.FetchBlob(ctx, sub, hash, limit)
	if err != nil {
		return nil, err
	}
	if _, err := n.db.PutBlob(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ensureProvingKey fetches a missing proving key from peers by the hash of
// the ceremony manifest.
func (n *Node) ensureProvingKey(ctx context.Context, t *protocol.Task, circuit string) error {
	if n.keys.HasProvingKey(circuit) {
		return nil
	}
	hash, err := n.keys.ProvingKeyHash(circuit)
	if err != nil {
		return err
	}
	var errs []error
	srcs := []string{t.Submitter}
	for _, p := range n.mesh.Peers() {
		if p.Status == protocol.StatusOnline {
			srcs = append(srcs, p.ID.String())
		}
	}
	for _, s := range srcs {
		id, err := peer.Decode(s)
		if err != nil || id == n.id {
			continue
		}
		pk, err := n.mesh.FetchBlob(ctx, id, hash, zk.MaxProvingKeyBytes)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := n.keys.AddProvingKey(circuit, pk); err != nil {
			errs = append(errs, err)
			continue
		}
		n.log.Info("proving key fetched", "circuit", circuit, "from", id)
		return nil
	}
	return fmt.Errorf("proving key of %s: %w: no peer could provide it: %w", circuit, zk.ErrMissingProvingKey, errors.Join(errs...))
}

// ---- the results topic ----

// validateResult is the results topic's validator: every node verifies a
// result's proof before it is delivered or forwarded; an invalid one is
// REJECTED and counts against its executor.
func (n *Node) validateResult(_ context.Context, from peer.ID, data []byte) error {
	if from == n.id && n.skipSelfCheck {
		return nil
	}
	err := n.checkResult(from, data)
	verdict := "accept"
	if err != nil {
		verdict = "reject"
		if protocol.Ignorable(err) {
			verdict = "ignore"
		}
	}
	n.met.results.WithLabelValues(verdict, protocol.Reason(err)).Inc()
	return err
}

func (n *Node) checkResult(from peer.ID, data []byte) error {
	r, err := protocol.OpenResult(data)
	if err != nil {
		return err
	}
	if r.Executor != from.String() {
		return fmt.Errorf("%w: result of %s published by %s", protocol.ErrForged, r.Executor, from)
	}
	rec, err := n.db.GetTask(r.TaskID)
	if err != nil {
		return fmt.Errorf("%w: result of a task not seen", protocol.ErrNotYet)
	}
	n.tasks.mu.Lock()
	_, dup := n.tasks.valid[r.TaskID][r.Executor]
	n.tasks.mu.Unlock()
	if dup {
		return fmt.Errorf("%w: result of %s for %s already verified", protocol.ErrDuplicate, short(r.Executor), short(r.TaskID))
	}
	tt := n.reg[rec.Task.Type]
	if err := checkResultAgainstTask(r, &rec.Task, tt); err != nil {
		return err
	}
	if tt.Verification.Kind == protocol.VerifyGroth16 {
		start := time.Now()
		err := verifyProof(n.keys, tt, r)
		outcome := "valid"
		if err != nil {
			outcome = "invalid"
		}
		n.met.verify.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
		if err != nil {
			n.rep.rejected(from)
			n.audit(store.AuditEntry{Kind: "result.rejected", Actor: r.Executor, Subject: r.TaskID, Detail: err.Error()})
			return err
		}
	}
	if n.tasks.addValid(r.TaskID, r.Executor, r.OutputHash) && tt.Verification.Kind == protocol.VerifyGroth16 {
		n.rep.verified(from)
	}
	return nil
}

func (n *Node) onResult(m mesh.Message) {
	r, err := protocol.OpenResult(m.Data)
	if err != nil {
		return
	}
	if err := n.db.PutResult(r.TaskID, r.Executor, m.Data); err != nil && !errors.Is(err, store.ErrExists) {
		n.log.Warn("result not stored", "task", short(r.TaskID), "err", err)
	}
	rec, err := n.db.GetTask(r.TaskID)
	if err != nil || !rec.Origin || rec.State.Terminal() {
		return
	}
	tt := n.reg[rec.Task.Type]
	if tt.Verification.Kind == protocol.VerifyGroth16 {
		n.accept(rec, shortIDs([]string{r.Executor})[0], r.Output, m.Data, "proof verified")
		return
	}
	n.tallyReplicas(rec)
}

// accept records the accepted output with its result envelope(s) and
// moves the task through verifying to accepted.
func (n *Node) accept(rec store.TaskRecord, executor string, output []byte, envelope []byte, detail string) {
	id := rec.Task.ID
	n.advance(id, protocol.StateVerifying, store.Event{Detail: "result from " + executor, Peer: executor})
	if _, err := n.db.UpdateTask(id, func(r *store.TaskRecord) error {
		r.Output, r.Result = output, envelope
		return nil
	}); err != nil {
		n.log.Warn("accepted output not stored", "task", short(id), "err", err)
		return
	}
	if n.advance(id, protocol.StateAccepted, store.Event{Detail: detail, Peer: executor}) {
		n.met.submitTo.Observe(time.Since(time.UnixMilli(rec.Task.Created)).Seconds())
		n.log.Info("task accepted", "task", short(id), "type", rec.Task.Type, "executor", short(executor))
	}
}

// tallyReplicas decides a replicated task once `replicas` results are in:
// accepted when they agree, failed naming the differing output hashes.
func (n *Node) tallyReplicas(rec store.TaskRecord) {
	results, err := n.db.Results(rec.Task.ID)
	if err != nil || len(results) < rec.Task.Replicas {
		return
	}
	byHash := map[string][]string{}
	var envs [][]byte
	execs := make([]string, 0, len(results))
	for e := range results {
		execs = append(execs, e)
	}
	sort.Strings(execs)
	var output []byte
	for _, e := range execs {
		r, err := protocol.OpenResult(results[e])
		if err != nil {
			continue
		}
		byHash[r.OutputHash] = append(byHash[r.OutputHash], e)
		envs = append(envs, results[e])
		output = r.Output
	}
	if len(byHash) == 1 {
		bundle, _ := json.Marshal(envs)
		n.accept(rec, strings.Join(shortIDs(execs), ", "), output, bundle, fmt.Sprintf("%d replicas agree on output sha256 %s", len(execs), protocol.HashHex(output)))
		return
	}
	var parts []string
	for h, es := range byHash {
		parts = append(parts, fmt.Sprintf("%s from %s", h, strings.Join(shortIDs(es), ",")))
	}
	sort.Strings(parts)
	n.advance(rec.Task.ID, protocol.StateFailed, store.Event{Detail: "replicas disagree: output sha256 " + strings.Join(parts, " vs ")})
}

// ---- deadlines and restarts ----

// deadlineLoop fails tasks submitted here whose deadline passed without
// an accepted result.
func (n *Node) deadlineLoop() {
	defer n.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.tasks.mu.Lock()
			var due []string
			for id, d := range n.tasks.open {
				if now.After(d) {
					due = append(due, id)
				}
			}
			n.tasks.mu.Unlock()
			for _, id := range due {
				rec, err := n.db.GetTask(id)
				if err != nil {
					continue
				}
				n.advance(id, protocol.StateFailed, store.Event{Detail: fmt.Sprintf(
					"deadline passed: no valid result from %d candidate(s) (%d result(s) seen)", len(rec.Task.Candidates), n.tasks.validCount(id))})
			}
		}
	}
}

// recoverTasks picks up after a restart: tasks submitted here and still
// open get their deadlines watched again; tasks this node is a candidate
// for and has not run get scheduled; tasks it had started are not run
// again.
func (n *Node) recoverTasks() error {
	recs, err := n.db.ListTasks(store.TaskFilter{})
	if err != nil {
		return fmt.Errorf("recover tasks: %w", err)
	}
	for _, rec := range recs {
		if rec.State.Terminal() {
			continue
		}
		t := rec.Task
		if rec.Origin {
			n.tasks.open[t.ID] = time.UnixMilli(t.Deadline)
		}
		if slices.Contains(rec.Executors, n.id.String()) {
			n.tasks.started[t.ID] = true
			continue
		}
		// Results stored before the restart passed the results validator:
		// they count, so a backup candidate does not take over a task
		// that already has its answer.
		results, err := n.db.Results(t.ID)
		if err != nil {
			return fmt.Errorf("recover results of %s: %w", short(t.ID), err)
		}
		for exec, env := range results {
			if r, err := protocol.OpenResult(env); err == nil {
				n.tasks.addValid(t.ID, exec, r.OutputHash)
			}
		}
		if time.Now().Before(time.UnixMilli(t.Deadline)) {
			n.schedule(&t)
		}
	}
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func shortIDs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if len(id) > 8 {
			out[i] = id[len(id)-8:]
		} else {
			out[i] = id
		}
	}
	return out
}
