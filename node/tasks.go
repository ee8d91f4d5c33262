package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
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
	if req.ModuleHash != "" {
		if len(req.Module) > 0 {
			return "", fmt.Errorf("%w: give \"module\" or \"module_hash\", not both", protocol.ErrBadInput)
		}
		if req.Module, err = n.db.GetBlob(req.ModuleHash); err != nil {
			return "", fmt.Errorf("%w: module_hash: this node holds no module %s (send it as \"module\" once)", protocol.ErrBadInput, short(req.ModuleHash))
		}
	}
	switch {
	case tt.ModuleHash == "" && len(req.Module) == 0:
		return "", fmt.Errorf("%w: type %s runs a module you send (base64 \"module\", or --module FILE)", protocol.ErrBadInput, tt.ID)
	case tt.ModuleHash != "" && len(req.Module) > 0:
		return "", fmt.Errorf("%w: type %s runs its own built-in module; send no module (--module is for wasm.exec.v1)", protocol.ErrBadInput, tt.ID)
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
		Submitter: n.id.String(), Created: n.created(now), Replicas: replicas, LeaseMS: tt.SLO.LeaseMS,
	}
	if len(req.Args) > 0 || len(req.Env) > 0 || req.Limits != nil || len(req.Files) > 0 || len(req.Outputs) > 0 {
		t.Job = &protocol.JobSpec{Args: req.Args, Env: req.Env, Limits: req.Limits, Outputs: req.Outputs}
		// "job spec:" first: the sentinel says "invalid task input", and a
		// walkthrough read an --output path's refusal as the input's.
		if t.Job.Files, err = n.jobFiles(tt, req.Files); err != nil {
			return "", fmt.Errorf("job spec: %w", err)
		}
		if err := protocol.CheckJob(t.Job, tt); err != nil {
			return "", fmt.Errorf("job spec: %w", err)
		}
	}
	if len(input) <= protocol.MaxInlineInput {
		t.Input = input
	} else if _, err := n.db.PutBlob(input); err != nil {
		return "", fmt.Errorf("store input: %w", err)
	}
	if tt.ModuleHash == "" {
		// Structure and imports only, in linear time: compiling is the
		// executors' job, in their compile pools, never the API's. A module
		// that passes this and still fails to compile fails the task with
		// the executors' confirmed bad_module reports.
		if err := n.sb.Check(req.Module); err != nil {
			return "", fmt.Errorf("%w: module: %v", protocol.ErrBadInput, err)
		}
		if t.ModuleHash, err = n.db.PutBlob(req.Module); err != nil {
			return "", fmt.Errorf("store module: %w", err)
		}
		t.ModuleSize = len(req.Module)
	}
	cands, rankErr := protocol.Rank(tt, t.RankSeed(), n.peerViews(), replicas+3)
	if rankErr == nil && len(cands) < replicas {
		rankErr = fmt.Errorf("%w: %d eligible peers from distinct network origins, %d replicas asked", protocol.ErrNoCapablePeer, len(cands), replicas)
	}
	if n.rankHook != nil && rankErr == nil {
		cands = n.rankHook(cands)
	}
	t.Candidates = cands
	t.Deadline = protocol.MaxDeadline(t.Created, len(cands), replicas, tt.Lease())
	t.ID = t.ContentID()
	env, err := protocol.Seal(&t, n.key)
	if err != nil {
		return "", err
	}
	// Encoded before anything is recorded, so that a task that cannot be
	// published is refused, not kept as a failed task.
	data, err := (&protocol.TaskMessage{Task: env}).Encode()
	if err != nil {
		if errors.Is(err, protocol.ErrOversized) && t.Input != nil {
			// Major 1 bounds a task message at MaxInlineInput·4/3 + 16 KiB
			// but base64s an inline input twice (in the task, then the
			// task in its envelope): inputs from about 56 KiB to
			// MaxInlineInput cannot travel (docs/PROTOCOL.md).
			return "", fmt.Errorf("%w: an inline input of %d bytes does not fit a task message of protocol major %d (%v; the input is base64-encoded twice, so inputs from about 56 KiB to %d bytes do not fit, and inputs above %d bytes travel by hash)",
				protocol.ErrBadInput, len(input), protocol.ProtocolMajor, err, protocol.MaxInlineInput, protocol.MaxInlineInput)
		}
		return "", err
	}
	rec := store.TaskRecord{Task: t, Signed: env, State: protocol.StatePending, Origin: true, SubmittedBy: req.SubmittedBy,
		Timeline: []store.Event{{State: protocol.StatePending, Time: now, Detail: "submitted", Peer: n.id.String()}}}
	if rankErr != nil {
		rec.State, rec.Reason = protocol.StateFailed, rankErr.Error()
		rec.AddEvent(store.Event{State: protocol.StateFailed, Time: now, Detail: rankErr.Error()})
	}
	if err := n.db.Update(func(tx *store.Tx) error {
		if _, err := tx.CreateTask(rec); err != nil {
			return err
		}
		_, err := tx.Append(store.AuditEntry{Kind: "task.submitted", Actor: n.id.String(), Subject: t.ID, Detail: t.Type})
		return err
	}); err != nil {
		return "", fmt.Errorf("record task: %w", err)
	}
	if rankErr != nil {
		return t.ID, rankErr
	}
	var terr error
	n.lc.do(ctx, func() { terr = n.lc.track(&t, env, tt, &rec) })
	if terr != nil {
		n.lc.post(func() { n.failUntracked(t.ID, terr) })
		return t.ID, fmt.Errorf("%w: this node cannot follow another task now: %v; retry later", api.ErrUnavailable, terr)
	}
	if err := n.mesh.Publish(ctx, mesh.KindTasks, data); err != nil {
		n.lc.post(func() {
			n.lc.step(t.ID, protocol.EvAbort{Reason: "not published: " + err.Error()}, nil)
		})
		return t.ID, fmt.Errorf("publish task: %w", err)
	}
	n.log.Info("task submitted", "task", short(t.ID), "type", t.Type, "candidates", len(cands))
	return t.ID, nil
}

// failUntracked marks a task submitted here that the driver could not
// follow as failed, with the reason (loop goroutine).
func (n *Node) failUntracked(id string, why error) {
	_, err := n.db.UpdateTask(id, func(r *store.TaskRecord) error {
		if r.State.Terminal() {
			return nil
		}
		reason := "not published: " + why.Error()
		r.State, r.Reason = protocol.StateFailed, reason
		r.AddEvent(store.Event{State: protocol.StateFailed, Time: time.Now(), Detail: reason})
		return nil
	})
	if err != nil {
		n.log.Warn("task state not recorded", "task", short(id), "err", err)
	}
	n.lc.notify(id)
}

// Cancel publishes the submitter's signed cancel of a task submitted
// here; by is the credential asking (api key prefix or "admin"): only the
// admin or the credential that submitted it may.
func (n *Node) Cancel(ctx context.Context, id, by, reason string) error {
	rec, err := n.record(id)
	if err != nil {
		return err
	}
	id = rec.Task.ID
	if !rec.Origin {
		return fmt.Errorf("task %s was submitted through node %s: %w: only its submitting node can sign a cancel", short(id), rec.Task.Submitter, api.ErrConflict)
	}
	if by != api.ScopeAdmin && by != rec.SubmittedBy {
		return fmt.Errorf("task %s: %w: only the admin or the key that submitted it may cancel", short(id), api.ErrForbidden)
	}
	if rec.State.Terminal() {
		return fmt.Errorf("task %s is already %s: %w", short(id), rec.State, api.ErrConflict)
	}
	env, err := protocol.Seal(&protocol.Cancel{TaskID: id, Submitter: n.id.String(), Time: time.Now().UnixMilli(), Reason: clipReason(reason)}, n.key)
	if err != nil {
		return err
	}
	data, err := (&protocol.TaskMessage{Cancel: env}).Encode()
	if err != nil {
		return err
	}
	if err := n.mesh.Publish(ctx, mesh.KindTasks, data); err != nil {
		return fmt.Errorf("publish cancel: %w", err)
	}
	n.audit(store.AuditEntry{Kind: "task.cancel", Actor: by, Subject: id, Detail: reason})
	return nil
}

func clipReason(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

// jobFiles stores a submission's /in files as blobs and names them by
// hash: each is a base64 string, or {"hash": …} of a blob held here.
func (n *Node) jobFiles(tt protocol.TaskType, files map[string]json.RawMessage) (map[string]protocol.FileRef, error) {
	if len(files) == 0 {
		return nil, nil
	}
	if len(files) > protocol.MaxJobFiles {
		return nil, fmt.Errorf("%w: %d files, at most %d", protocol.ErrBadInput, len(files), protocol.MaxJobFiles)
	}
	out := make(map[string]protocol.FileRef, len(files))
	for p, raw := range files {
		if err := protocol.CheckJobPath(protocol.JobInDir, p); err != nil {
			return nil, err
		}
		var b64 string
		var ref struct {
			Hash string `json:"hash"`
		}
		switch {
		case json.Unmarshal(raw, &b64) == nil:
			b, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				return nil, fmt.Errorf("%w: file %s is not base64: %v", protocol.ErrBadInput, p, err)
			}
			if len(b) > tt.Profile.MaxInputBytes {
				return nil, fmt.Errorf("%w: file %s: %d bytes, type %s allows %d", protocol.ErrInputTooLarge, p, len(b), tt.ID, tt.Profile.MaxInputBytes)
			}
			h, err := n.db.PutBlob(b)
			if err != nil {
				return nil, fmt.Errorf("store file %s: %w", p, err)
			}
			out[p] = protocol.FileRef{Hash: h, Size: int64(len(b))}
		case json.Unmarshal(raw, &ref) == nil && ref.Hash != "":
			b, err := n.db.GetBlob(ref.Hash)
			if err != nil {
				return nil, fmt.Errorf("%w: file %s: this node holds no blob %s", protocol.ErrBadInput, p, short(ref.Hash))
			}
			out[p] = protocol.FileRef{Hash: ref.Hash, Size: int64(len(b))}
		default:
			return nil, fmt.Errorf("%w: file %s: want a base64 string or {\"hash\": \"<sha256>\"}", protocol.ErrBadInput, p)
		}
	}
	return out, nil
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

// peerViews are the peers (and this node itself) as ranking sees them: a
// peer is present only while this node holds a direct connection to it,
// and its origin is that connection's address under the network's
// replica diversity rule.
func (n *Node) peerViews() []protocol.PeerView {
	var out []protocol.PeerView
	for _, p := range n.mesh.Peers() {
		v := protocol.PeerView{ID: p.ID.String(), Status: p.Status, Capabilities: p.Capabilities}
		if p.Heartbeat != nil {
			v.TaskTypes = p.Heartbeat.TaskTypes
		}
		v.Origin, v.Present = n.originOf(p.ID.String())
		v.Verified, v.Rejected = n.rep.get(p.ID)
		out = append(out, v)
	}
	if !n.cfg.BootstrapOnly {
		hb := n.heartbeat()
		v := protocol.PeerView{ID: n.id.String(), Status: protocol.StatusOnline, Capabilities: n.caps,
			TaskTypes: hb.TaskTypes}
		v.Origin, v.Present = n.originOf(n.id.String())
		v.Verified, v.Rejected = n.rep.get(n.id)
		out = append(out, v)
	}
	return out
}

// ---- the tasks topic ----

func (n *Node) joinTaskTopics() error {
	if err := n.mesh.JoinDecoded(mesh.KindTasks, n.validateTaskMessage, n.onTaskMessage, mesh.JoinOptions{}); err != nil {
		return err
	}
	// Proof verification is the expensive check: bounded, with a timeout.
	return n.mesh.JoinDecoded(mesh.KindResults, n.validateResult, n.onResult, mesh.JoinOptions{Concurrency: 4, Timeout: 30 * time.Second})
}

// taskSeen is a checked task as the tasks topic's handler gets it.
type taskSeen struct {
	t   *protocol.Task
	env []byte
	tt  protocol.TaskType
}

// validateTaskMessage decodes a tasks-topic message once and checks it:
// a task against the registry (signed by its submitter); a progress
// against its task and the executor's turn; a cancel against its task's
// submitter. Progress and cancels of tasks not seen yet are kept for a
// second look when the task comes.
func (n *Node) validateTaskMessage(ctx context.Context, from peer.ID, data []byte) (any, error) {
	return n.checkTaskMessage(ctx, from, data, time.Now())
}

// checkTaskMessage is validateTaskMessage of a message that arrived at
// arrived (now, or when an early message was kept). A progress or cancel
// must have been sent within the clock skew of its arrival: gossipsub
// forgets a message id after 2 to 3 minutes, a task with takeovers lives
// longer, and a replayed copy of an old progress was accepted, forwarded,
// and moved a task's state back (a takeover's successor's task to
// "running on" the candidate it replaced) on every node.
func (n *Node) checkTaskMessage(ctx context.Context, from peer.ID, data []byte, arrived time.Time) (any, error) {
	msg, err := protocol.DecodeTaskMessage(data)
	if err != nil {
		return nil, err
	}
	now, skew := time.Now(), n.mesh.ClockSkew()
	kept := earlyMessage{kind: mesh.KindTasks, from: from, via: mesh.Forwarder(ctx, from), data: data, at: arrived}
	switch {
	case msg.Task != nil:
		tt, err := protocol.CheckTask(msg.Task, n.reg, now, skew)
		if err != nil {
			return nil, err
		}
		return taskSeen{msg.Task, msg.TaskEnv, tt}, nil
	case msg.Cancel != nil:
		c := msg.Cancel
		if err := protocol.CheckTime("cancel", c.Time, arrived, skew); err != nil {
			return nil, err
		}
		_, err := n.lc.admit(ctx, c.TaskID, kept, func(lc *protocol.Lifecycle) error {
			if lc.Task().Submitter != c.Submitter {
				return fmt.Errorf("%w: cancel of %s signed by %s, not its submitter", protocol.ErrForged, short(c.TaskID), c.Submitter)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	p := msg.Progress
	if p.Executor != from.String() {
		return nil, fmt.Errorf("%w: progress for %s sent by %s", protocol.ErrForged, p.Executor, from)
	}
	if err := protocol.CheckTime("progress", p.Time, arrived, skew); err != nil {
		return nil, err
	}
	_, err = n.lc.admit(ctx, p.TaskID, kept, func(lc *protocol.Lifecycle) error {
		return lc.CheckTurn(p.Executor, now, protocol.TurnSkew)
	})
	if errors.Is(err, protocol.ErrNotYourTurn) {
		// Progress is only news: an early one is not worth a penalty (it is
		// kept, and counted once this node sees the turn come).
		return nil, fmt.Errorf("%w: %v", protocol.ErrNotYet, err)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (n *Node) onTaskMessage(m mesh.Message) {
	switch v := m.Value.(type) {
	case taskSeen:
		n.lc.post(func() { _ = n.lc.track(v.t, v.env, v.tt, nil) })
	case *protocol.Cancel:
		n.lc.post(func() { n.lc.step(v.TaskID, protocol.EvCancel{Reason: v.Reason}, nil) })
	case *protocol.Progress:
		n.lc.post(func() {
			n.lc.step(v.TaskID, protocol.EvProgress{Executor: v.Executor, State: v.State}, nil)
		})
	}
}

// onPeerLeft tells every live task that a peer left with a signed Leave:
// a candidate that left will not deliver, so its successor starts at once.
func (n *Node) onPeerLeft(p peer.ID) {
	n.lc.post(func() {
		for id := range n.lc.live {
			n.lc.step(id, protocol.EvPeerLeft{Peer: p.String()}, nil)
		}
	})
}

// wakeTasksOf wakes the watchers of every live task that names p as a
// candidate, when p goes down or comes back: a task view says when an
// executor it waits for is listed offline here (TaskView.Waiting). Turns
// do not move: only a signed Leave or the lease moves them, the same on
// every node.
func (n *Node) wakeTasksOf(p peer.ID) {
	n.lc.post(func() {
		for id, lt := range n.lc.live {
			if lt.lc.Task().CandidateIndex(p.String()) >= 0 {
				n.lc.notify(id)
			}
		}
	})
}

// replayEarly gives the messages kept for a task a second look, off the
// loop goroutine (a result's proof is verified again).
func (d *driver) replayEarly(id string) {
	ms := d.early.take(id)
	if len(ms) == 0 {
		return
	}
	d.n.wg.Add(1)
	go func() {
		defer d.n.wg.Done()
		for _, m := range ms {
			var (
				v   any
				err error
			)
			ctx := mesh.WithForwarder(d.n.ctx, m.via)
			if m.kind == mesh.KindResults {
				v, err = d.n.checkResultMessage(ctx, m.from, m.data, arrival{at: m.at, synced: m.synced})
			} else {
				v, err = d.n.checkTaskMessage(ctx, m.from, m.data, m.at)
			}
			if err == nil {
				msg := mesh.Message{From: m.from, Data: m.data, Value: v}
				if m.kind == mesh.KindResults {
					d.n.onResult(msg)
				} else {
					d.n.onTaskMessage(msg)
				}
			}
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

// execute runs a task this node is a candidate for (the lifecycle said
// Run, and its claim is persisted): fetch the module and input, run them
// in the sandbox under the type's profile, prove (groth16 types), and
// publish the signed result, or a signed failure report when the module
// failed. ctx ends at the task's deadline, on a cancel, or when the task
// settles without this node.
func (n *Node) execute(ctx context.Context, t *protocol.Task) error {
	tt, err := n.reg.Lookup(t.Type)
	if err != nil {
		return err
	}
	n.publishProgress(t, protocol.StateRunning)
	r := &protocol.Result{TaskID: t.ID, Type: t.Type, Executor: n.id.String(), InputHash: t.InputHash}
	module, err := n.module(ctx, t, tt)
	if err != nil {
		return err
	}
	input := t.Input
	if !protocol.InlineInput(t.InputSize) {
		if input, err = n.fetchBlob(ctx, t, t.InputHash, int64(tt.Profile.MaxInputBytes)); err != nil {
			return fmt.Errorf("input: %w", err)
		}
	}
	prof := t.Job.Profile(tt.Profile)
	lim := sandbox.Limits{
		MaxMemoryPages: prof.MaxMemoryPages, Timeout: prof.MaxRuntime(), Fuel: prof.Fuel,
		MaxInputBytes: prof.MaxInputBytes, MaxOutputBytes: prof.MaxOutputBytes, MaxModuleBytes: prof.MaxModuleBytes,
	}
	var job sandbox.Job
	if j := t.Job; j != nil {
		job.Args, job.Env, job.Outputs = j.Args, j.Env, j.Outputs
		if len(j.Outputs) > 0 {
			job.MaxOutBytes = prof.ResultBytes()
		}
		for p, f := range j.Files {
			b, err := n.fetchBlob(ctx, t, f.Hash, f.Size)
			if err != nil {
				return fmt.Errorf("file %s: %w", p, err)
			}
			if job.Files == nil {
				job.Files = map[string][]byte{}
			}
			job.Files[p] = b
		}
	}
	if tt.Verification.Kind == protocol.VerifyGroth16 {
		// Fetched before a run slot is taken, as the module, input and
		// files are: a stalled fetch holds no slot (runGate).
		if err := n.ensureProvingKey(ctx, t, tt.Verification.Circuit); err != nil {
			return err
		}
	}
	release, err := n.runs.acquire(ctx, t.Submitter, n.knownSubmitter(t.Submitter))
	if err != nil {
		return fmt.Errorf("waiting for a run slot: %w", err)
	}
	defer release()
	defer n.claimCores()() // the guest run and its proof want every core
	out, files, st, err := n.sb.RunJob(ctx, module, input, lim, job)
	n.met.exec.Observe(st.Wall.Seconds())
	r.Stats = protocol.ExecStats{WallMS: st.Wall.Milliseconds(), FuelUsed: st.FuelUsed, MemoryPages: st.PeakMemoryPages, OutputBytes: st.OutputBytes}
	if err != nil {
		f := failureReport(err)
		if f == nil || ctx.Err() != nil {
			return fmt.Errorf("run: %w", err) // stopped, not the module's fault: no report
		}
		r.Failure = f
		r.OutputHash = protocol.HashHex(nil)
		n.log.Info("module failed; publishing a failure report", "task", short(t.ID), "type", t.Type, "failure", f.Summary())
		return n.publishResult(ctx, r)
	}
	r.Output, r.OutputHash = out, protocol.HashHex(out)
	if tt.Verification.Kind == protocol.VerifyReplicated && len(st.Stderr) > 0 {
		r.Stderr = st.Stderr[max(len(st.Stderr)-protocol.MaxStderrTail, 0):]
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		h, err := n.db.PutBlob(files[p]) // served to whoever asks by hash
		if err != nil {
			return fmt.Errorf("store output %s: %w", p, err)
		}
		f := protocol.OutputFile{Path: p, Hash: h, Size: int64(len(files[p]))}
		if len(files[p]) <= protocol.MaxInlineOutputFile {
			f.Inline = files[p]
		}
		r.Files = append(r.Files, f)
	}
	if tt.Verification.Kind == protocol.VerifyGroth16 {
		n.publishProgress(t, protocol.StateProving)
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
	return n.publishResult(ctx, r)
}

// knownSubmitter reports whether this node knows a task's submitter: it
// is this node, or a peer its table lists online (an admitted,
// heartbeating node). Known submitters' runs go first (runGate).
func (n *Node) knownSubmitter(submitter string) bool {
	if submitter == n.id.String() {
		return true
	}
	id, err := peer.Decode(submitter)
	if err != nil {
		return false
	}
	p, ok := n.mesh.Peer(id)
	return ok && p.Status == protocol.StatusOnline
}

// claimCores tells the configured CoreClaimer that work wanting every
// core starts; the release it returns says it ended.
func (n *Node) claimCores() (release func()) {
	if n.cfg.Cores == nil {
		return func() {}
	}
	return n.cfg.Cores.Claim()
}

// publishResult signs and publishes this node's result.
func (n *Node) publishResult(ctx context.Context, r *protocol.Result) error {
	if n.tamper != nil {
		n.tamper(r)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not publishing: %w", err) // shutting down, canceled or past the deadline
	}
	r.Time = time.Now().UnixMilli()
	env, err := protocol.Seal(r, n.key)
	if err != nil {
		return err
	}
	if err := n.mesh.Publish(ctx, mesh.KindResults, env); err != nil {
		return fmt.Errorf("publish result: %w", err)
	}
	n.log.Info("result published", "task", short(r.TaskID), "type", r.Type, "wall_ms", r.Stats.WallMS, "prove_ms", r.Stats.ProveMS, "failure", r.Failure != nil)
	return nil
}

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
//
// The submitter is asked first, then the other candidates (which fetched
// it for their own runs), so a task outlives its submitting node.
func (n *Node) fetchBlob(ctx context.Context, t *protocol.Task, hash string, limit int64) ([]byte, error) {
	if b, err := n.db.GetBlob(hash); err == nil {
		return b, nil
	}
	var errs []error
	for _, src := range append([]string{t.Submitter}, t.Candidates...) {
		p, err := peer.Decode(src)
		if err != nil || p == n.id {
			continue
		}
		b, err := n.mesh.FetchBlob(ctx, p, hash, limit)
		if err != nil {
			errs = append(errs, fmt.Errorf("from %s: %w", protocol.ShortPeer(src), err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if _, err := n.db.PutBlob(b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("blob %s: %w", short(hash), errors.Join(errs...))
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

// resultSeen is a checked result as the results topic's handler gets it.
type resultSeen struct {
	r   *protocol.Result
	env []byte
}

// validateResult is the results topic's validator: every node checks a
// result against its task and the executor's turn, and verifies its proof,
// before it is delivered or forwarded; an invalid one is REJECTED and
// counts against its executor.
func (n *Node) validateResult(ctx context.Context, from peer.ID, data []byte) (any, error) {
	return n.checkResultMessage(ctx, from, data, gossiped(time.Now()))
}

// arrival is how a result reached this node, and when.
type arrival struct {
	at time.Time
	// synced: fetched from a peer's results stream (syncResults), old by
	// design, so not held to the time rule of gossip.
	synced bool
}

func gossiped(at time.Time) arrival { return arrival{at: at} }

// checkResultMessage is validateResult of a result that arrived as a (on
// gossip now, or kept early: then as it first arrived). A gossiped result
// must have been published within the clock skew of its arrival: gossip
// carries a result within seconds, and a copy replayed once gossipsub has
// forgotten its id is refused by its time (IGNORE) before anything else is
// looked at, an invalid one's proof included. One kept early keeps its
// first arrival however often it is looked at again, and one fetched from
// a peer (synced) is not held to the rule.
func (n *Node) checkResultMessage(ctx context.Context, from peer.ID, data []byte, a arrival) (any, error) {
	r, err := protocol.OpenResult(data)
	if err == nil && n.dropResult != nil && n.dropResult(r) {
		return nil, fmt.Errorf("%w: dropped by the test", protocol.ErrNotYet)
	}
	if err == nil && !a.synced {
		err = protocol.CheckTime("result", r.Time, a.at, n.mesh.ClockSkew())
	}
	if err == nil && !(from == n.id && n.skipSelfCheck) {
		err = n.checkResult(ctx, from, r, data, a)
	}
	n.countResult(err)
	if err != nil {
		return nil, err
	}
	return resultSeen{r, data}, nil
}

// countResult counts a result's verdict.
func (n *Node) countResult(err error) {
	verdict := "accept"
	if err != nil {
		verdict = "reject"
		if protocol.Ignorable(err) {
			verdict = "ignore"
		}
	}
	n.met.results.WithLabelValues(verdict, protocol.Reason(err)).Inc()
}

// checkResult checks an opened result r (its envelope data) that from
// published and that arrived as a: from must be its executor, its
// executor's turn must have come, it must fit its task, and its proof must
// verify.
func (n *Node) checkResult(ctx context.Context, from peer.ID, r *protocol.Result, data []byte, a arrival) error {
	if r.Executor != from.String() {
		return fmt.Errorf("%w: result of %s published by %s", protocol.ErrForged, r.Executor, from)
	}
	if t, ok := n.lc.followed(r.TaskID); ok && t.CandidateIndex(r.Executor) < 0 {
		return fmt.Errorf("%w: %s", protocol.ErrExecutorNotAllowed, r.Executor)
	}
	now := time.Now()
	// REJECTED if early, and kept: if this node later learns of the event
	// that moved the turn forward (a leave, a split), it looks again.
	task, err := n.lc.admit(ctx, r.TaskID, earlyMessage{kind: mesh.KindResults, from: from, via: mesh.Forwarder(ctx, from), data: data, at: a.at, synced: a.synced}, func(lc *protocol.Lifecycle) error {
		if lc.Counted(r.Executor, r.Outcome()) {
			return fmt.Errorf("%w: result of %s for %s already counted", protocol.ErrDuplicate, protocol.ShortPeer(r.Executor), short(r.TaskID))
		}
		// A second, different result of one executor is evidence of
		// equivocation: checked like any other and forwarded, so that
		// every node counts both and ends the same way.
		return lc.CheckTurn(r.Executor, now, protocol.TurnSkew)
	})
	if err != nil {
		return err
	}
	tt := n.reg[task.Type]
	if err := checkResultAgainstTask(r, task, tt); err != nil {
		return err
	}
	if tt.Verification.Kind == protocol.VerifyGroth16 && r.Failure == nil {
		start := time.Now()
		err := verifyProof(n.keys, tt, r)
		outcome := "valid"
		if err != nil {
			outcome = "invalid"
		}
		n.met.verify.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
		if err != nil {
			n.rep.rejected(from)
			n.mesh.MarkChanged(from)
			n.audit(store.AuditEntry{Kind: "result.rejected", Actor: r.Executor, Subject: r.TaskID, Detail: err.Error()})
			return err
		}
		if n.creditable(task.Submitter, r.Executor) {
			n.rep.verified(from)
			n.mesh.MarkChanged(from)
		}
	}
	return nil
}

// synced checks a result envelope of task id that peer from handed over
// on the results protocol as if its executor had published it on gossip,
// and steps it; nil if it does not pass (another task's, a denied
// executor's, counted, early, forged, not a candidate's: the validator's
// verdicts).
func (n *Node) synced(ctx context.Context, id string, from peer.ID, env []byte) *protocol.Result {
	r, err := protocol.OpenResult(env)
	if err == nil && r.TaskID != id {
		err = fmt.Errorf("%w: asked for results of %s, got one of %s", protocol.ErrMalformed, short(id), short(r.TaskID))
	}
	if err != nil {
		n.countResult(err)
		return nil
	}
	exec, err := peer.Decode(r.Executor)
	switch {
	case err == nil && n.mesh.Denied(exec):
		err = fmt.Errorf("executor %s is denied by this node's operator", protocol.ShortPeer(r.Executor))
	case err == nil:
		err = n.checkResult(mesh.WithForwarder(ctx, from), exec, r, env, arrival{at: time.Now(), synced: true})
	}
	n.countResult(err)
	if err != nil {
		n.log.Debug("synced result refused", "task", short(r.TaskID), "executor", protocol.ShortPeer(r.Executor), "from", from, "err", err)
		return nil
	}
	n.onResult(mesh.Message{From: exec, Data: env, Value: resultSeen{r, env}})
	return r
}

func (n *Node) onResult(m mesh.Message) {
	v, ok := m.Value.(resultSeen)
	if !ok {
		return
	}
	n.lc.post(func() { n.lc.step(v.r.TaskID, protocol.EvResult{Delivery: delivery(v.r)}, v.env) })
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// created returns a new task's creation time: now in unix milliseconds,
// but above every earlier one of this node's run. A task's id is the hash
// of its content, Created included, so two identical submissions within
// one millisecond (a script submitting one job five times) were one id,
// and the second failed with "already exists".
func (n *Node) created(now time.Time) int64 {
	for {
		last := n.lastCreated.Load()
		c := max(now.UnixMilli(), last+1)
		if n.lastCreated.CompareAndSwap(last, c) {
			return c
		}
	}
}
