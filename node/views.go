package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/store"
)

// The read side of the API: Node implements api.Backend.
var _ api.Backend = (*Node)(nil)

// Info describes this node.
func (n *Node) Info() api.NodeInfo {
	counts := map[string]int{}
	for _, p := range n.mesh.Peers() {
		counts[string(p.Status)]++
	}
	nt, _ := n.caps[protocol.CapNodeType].(string)
	return api.NodeInfo{
		ID: n.id.String(), Network: n.network.NetworkID, Version: n.cfg.Version, Addrs: n.Addrs(),
		Capabilities: n.caps, NodeType: nt, TaskTypes: n.served(), PolicyVersion: n.network.Policy.Version,
		HeartbeatIntervalMS: n.mesh.Interval().Milliseconds(), BootstrapOnly: n.cfg.BootstrapOnly,
		Started: n.started, Peers: counts, Problems: n.Problems(), Reachability: n.mesh.Reachability(),
	}
}

func (n *Node) peerView(p mesh.PeerInfo) api.PeerView {
	v := api.PeerView{
		ID: p.ID.String(), Status: p.Status, Capabilities: p.Capabilities, FirstSeen: p.FirstSeen,
		LastSeen: p.LastSeen, IntervalMS: p.Interval.Milliseconds(), Seq: p.Seq, LeaveReason: p.LeaveReason,
	}
	if hb := p.Heartbeat; hb != nil {
		v.NodeType, v.Region, v.TaskTypes, v.Load, v.Health = hb.NodeType, hb.Region, hb.TaskTypes, hb.Load, hb.Health
		v.Version, v.ListenAddrs = hb.Version, hb.ListenAddrs
	}
	if !p.DeletedAt.IsZero() {
		d := p.DeletedAt
		v.DeletedAt = &d
	}
	v.Verified, v.Rejected = n.rep.get(p.ID)
	v.Protocol = p.Protocols.Describe()
	switch {
	case n.mesh.Relayed(p.ID):
		v.Conn = "relayed"
	case n.mesh.Connected(p.ID):
		v.Conn = "direct"
	}
	return v
}

// Peers lists the peer table, optionally one status.
func (n *Node) Peers(status protocol.PeerStatus) []api.PeerView {
	out := []api.PeerView{}
	for _, p := range n.mesh.Peers() {
		if status == "" || p.Status == status {
			out = append(out, n.peerView(p))
		}
	}
	if status == "" || status == protocol.StatusIncompatible {
		// Peers of another network or protocol major: never in the
		// table, listed so that an operator sees which versions met.
		for _, p := range n.mesh.Incompatible() {
			out = append(out, api.PeerView{ID: p.ID.String(), Status: protocol.StatusIncompatible, Protocol: p.Protocols.Describe(), Version: p.Release, LastSeen: p.Seen})
		}
	}
	return out
}

// Peer returns one peer; unknown and deleted peers are api.ErrNotFound.
func (n *Node) Peer(id string) (api.PeerView, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return api.PeerView{}, fmt.Errorf("%w: %q is not a peer id", api.ErrNotFound, id)
	}
	p, ok := n.mesh.Peer(pid)
	if !ok {
		return api.PeerView{}, fmt.Errorf("peer %s: %w", id, api.ErrNotFound)
	}
	if p.Status == protocol.StatusDeleted {
		// 404 as DESIGN.md says, but saying why (a new user's walkthrough
		// of 2026-12-07 found it listed by ?status=deleted).
		reason := ""
		if p.LeaveReason != "" {
			reason = " (" + p.LeaveReason + ")"
		}
		return api.PeerView{}, fmt.Errorf("peer %s: %w: it left the network at %s%s; GET /api/v1/peers?status=deleted lists it",
			id, api.ErrNotFound, p.DeletedAt.UTC().Format(time.RFC3339), reason)
	}
	return n.peerView(p), nil
}

// Policy returns the network's capability policy.
func (n *Node) Policy() protocol.Policy { return n.network.Policy }

// TaskTypes returns the registry, sorted by id.
func (n *Node) TaskTypes() []protocol.TaskType {
	var out []protocol.TaskType
	for _, id := range n.reg.IDs() {
		out = append(out, n.reg[id])
	}
	return out
}

func (n *Node) taskView(rec store.TaskRecord) api.TaskView {
	t := rec.Task
	v := api.TaskView{
		TaskID: t.ID, Type: t.Type, ModuleHash: t.ModuleHash, Job: t.Job, State: rec.State, Reason: rec.Reason, Origin: rec.Origin, Submitter: t.Submitter,
		Created: msTime(t.Created), Deadline: msTime(t.Deadline), Replicas: t.Replicas, Candidates: t.Candidates,
		Executors: rec.Executors, Updated: rec.Updated, Timeline: []api.Event{},
		Settled: rec.Settled, Failure: rec.Failure,
	}
	for _, e := range rec.Timeline {
		v.Timeline = append(v.Timeline, api.Event{State: e.State, Time: e.Time, Detail: e.Detail, Peer: e.Peer})
	}
	if rec.State == protocol.StateAccepted {
		tt := n.reg[t.Type]
		if tt.Verification.Kind == protocol.VerifyGroth16 && json.Valid(rec.Output) {
			v.Output = json.RawMessage(rec.Output)
			v.Verification = "groth16 proof of " + tt.Verification.Circuit + " verified"
		} else {
			v.Output, _ = json.Marshal(base64.StdEncoding.EncodeToString(rec.Output))
			v.Verification = fmt.Sprintf("%d replicas agree (candidates chosen by node %s)", len(rec.Settled), protocol.ShortPeer(t.Submitter))
		}
	}
	return v
}

// Tasks lists tasks, newest first.
func (n *Node) Tasks(q api.TaskQuery) ([]api.TaskView, error) {
	if q.Type != "" {
		if _, err := n.reg.Lookup(q.Type); err != nil {
			return nil, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
		}
	}
	after := ""
	if q.After != "" {
		rec, err := n.record(q.After)
		if err != nil {
			return nil, fmt.Errorf("after: %w", err)
		}
		after = rec.Task.ID
	}
	recs, err := n.db.ListTasks(store.TaskFilter{State: q.State, Type: q.Type, Limit: q.Limit, After: after})
	if err != nil {
		return nil, err
	}
	out := make([]api.TaskView, 0, len(recs))
	for _, r := range recs {
		out = append(out, n.taskView(r))
	}
	return out, nil
}

// record returns the task whose id is id or starts with id (8+ hex
// characters), with the API's errors: not found, or ambiguous (400).
func (n *Node) record(id string) (store.TaskRecord, error) {
	rec, err := n.db.GetTaskByPrefix(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rec, fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, store.ErrAmbiguous):
		return rec, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	return rec, err
}

// Task returns one task, with what each executor reported.
func (n *Node) Task(id string) (api.TaskView, error) {
	rec, err := n.record(id)
	if err != nil {
		return api.TaskView{}, err
	}
	v := n.taskView(rec)
	results, err := n.db.Results(rec.Task.ID)
	if err != nil {
		return api.TaskView{}, err
	}
	if rec.State == protocol.StateAccepted && len(rec.Settled) > 0 {
		if _, r := settledResult(results, rec.Settled[0], rec.Outcome); r != nil {
			v.Files = r.Files
		}
	}
	for _, r := range openResults(results) {
		rv := api.ResultView{Executor: r.Executor, Outcome: r.Outcome(), WallMS: r.Stats.WallMS, FuelUsed: r.Stats.FuelUsed,
			Settled: slices.Contains(rec.Settled, r.Executor), ReportedAt: msTime(r.Time)}
		if f := r.Failure; f != nil {
			rv.ExitCode, rv.Trap, rv.Stderr = f.ExitCode, f.Trap, f.Stderr
		} else {
			rv.Stderr = r.Stderr
		}
		v.Results = append(v.Results, rv)
	}
	if !rec.State.Terminal() {
		v.Waiting = n.waiting(rec, results, time.Now())
	}
	return v, nil
}

// waiting says, while a task is open and every candidate whose turn came
// and that has not delivered is listed offline here (this node's failure
// detector's verdict, or heartbeats long missing), which they are, and
// when the next candidate's turn comes: the lease, not this node's view,
// moves turns, the same on every node, so a submitter whose executor died
// learns why it waits and for how long (an operator's walkthrough of
// 2026-12-07 heard nothing for the 30 s of a lease). Empty while any of
// them is up, or this node is one.
func (n *Node) waiting(rec store.TaskRecord, results map[string][]byte, now time.Time) string {
	t := rec.Task
	// A candidate's turn came: at the start, by its schedule, or early (a
	// Leave before it: its takeover is in the timeline, or it ran).
	came := func(i int) bool {
		c := t.Candidates[i]
		return i < t.Replicas || !now.Before(t.StartAt(i)) || slices.Contains(rec.Executors, c) ||
			slices.ContainsFunc(rec.Timeline, func(e store.Event) bool { return protocol.IsTakeover(e.State, e.Peer, e.Detail) && e.Peer == c })
	}
	left := func(c string) bool {
		pid, err := peer.Decode(c)
		if err != nil {
			return false
		}
		p, ok := n.mesh.Peer(pid)
		return ok && p.Status == protocol.StatusDeleted
	}
	var down []string
	for i, c := range t.Candidates {
		if _, delivered := results[c]; !came(i) || delivered {
			continue
		}
		if c == n.id.String() {
			return ""
		}
		pid, err := peer.Decode(c)
		if err != nil {
			continue
		}
		p, ok := n.mesh.Peer(pid)
		switch {
		case !ok || p.Status == protocol.StatusDeleted:
			continue // a Leave moved its turn on already
		case p.Status != protocol.StatusOffline:
			return "" // one at work is up
		}
		what := fmt.Sprintf("candidate %d (%s) is listed offline here", i, protocol.ShortPeer(c))
		switch {
		case !p.DownAt.IsZero():
			what += ", declared down by this node's failure detector at " + clock(p.DownAt)
		case !p.LastSeen.IsZero():
			what += ", last heard at " + clock(p.LastSeen)
		}
		down = append(down, what)
	}
	if len(down) == 0 {
		return ""
	}
	next := fmt.Sprintf("no candidate is left to take over: without a result the task fails at its deadline, %s", clock(time.UnixMilli(t.Deadline)))
	for i := t.Replicas; i < len(t.Candidates); i++ {
		// The next whose turn is to come: not one that came early, nor
		// one that left (the lifecycle starts neither).
		if came(i) || left(t.Candidates[i]) {
			continue
		}
		if at := t.StartAt(i); at.After(now) {
			next = fmt.Sprintf("without its result, candidate %d (%s) takes over at %s, when the lease runs out", i, protocol.ShortPeer(t.Candidates[i]), clock(at))
			break
		}
	}
	return strings.Join(down, "; ") + "; " + next
}

// clock is a time of day as task views show it.
func clock(t time.Time) string { return t.UTC().Format("15:04:05 UTC") }

// Watch signals every change of a task.
func (n *Node) Watch(id string) (<-chan struct{}, func(), error) {
	rec, err := n.record(id)
	if err != nil {
		return nil, nil, err
	}
	ch, stop := n.lc.watch(rec.Task.ID)
	return ch, stop, nil
}

// Bundle returns the accepted result of a task as a bundle for offline
// audit; api.ErrConflict while the task is not accepted.
func (n *Node) Bundle(id string) ([]byte, error) {
	rec, err := n.record(id)
	if err != nil {
		return nil, err
	}
	id = rec.Task.ID
	switch {
	case rec.State == protocol.StateAccepted:
	case rec.State == protocol.StateFailed && rec.Failure != nil && len(rec.Settled) > 0:
		// A failure its executors confirmed: their equal signed reports
		// are the bundle (an operator's walkthrough of 2026-12-07 could
		// not audit a confirmed failure offline).
	case rec.State == protocol.StateFailed:
		return nil, fmt.Errorf("task %s failed (%s) with no failure report its executors confirmed: there is nothing signed to audit: %w", id, rec.Reason, api.ErrConflict)
	default:
		return nil, fmt.Errorf("task %s is %s, not accepted: %w", id, rec.State, api.ErrConflict)
	}
	results, err := n.db.Results(id)
	if err != nil {
		return nil, err
	}
	b := Bundle{Format: BundleFormat, Task: rec.Signed}
	// Sorted: every node serves the same bytes, whatever order the
	// results reached it in.
	for _, e := range slices.Sorted(slices.Values(rec.Settled)) {
		env, _ := settledResult(results, e, rec.Outcome)
		if env == nil {
			return nil, fmt.Errorf("task %s: the result of %s that settled it is not stored", id, protocol.ShortPeer(e))
		}
		b.Results = append(b.Results, env)
	}
	return json.MarshalIndent(b, "", "  ")
}

// TaskFile returns an output file of an accepted task: from this node's
// store, or fetched by hash (and checked) from an executor whose result
// settled the task.
func (n *Node) TaskFile(ctx context.Context, id, path string) ([]byte, error) {
	rec, err := n.record(id)
	if err != nil {
		return nil, err
	}
	if rec.State != protocol.StateAccepted {
		return nil, fmt.Errorf("task %s is %s, not accepted: %w", short(rec.Task.ID), rec.State, api.ErrConflict)
	}
	results, err := n.db.Results(rec.Task.ID)
	if err != nil {
		return nil, err
	}
	var (
		file  *protocol.OutputFile
		names []string
	)
	for _, e := range rec.Settled {
		_, r := settledResult(results, e, rec.Outcome)
		if r == nil {
			continue
		}
		for i := range r.Files {
			if r.Files[i].Path == path {
				file = &r.Files[i]
			}
			if !slices.Contains(names, r.Files[i].Path) {
				names = append(names, r.Files[i].Path)
			}
		}
	}
	if file == nil {
		return nil, fmt.Errorf("task %s has no output file %q (it has %s): %w", short(rec.Task.ID), path, strings.Join(names, ", "), api.ErrNotFound)
	}
	if file.Inline != nil { // checked against its hash when the result was opened
		return file.Inline, nil
	}
	if b, err := n.db.GetBlob(file.Hash); err == nil {
		return b, nil
	}
	var errs []error
	for _, e := range rec.Settled {
		pid, err := peer.Decode(e)
		if err != nil || pid == n.id {
			continue
		}
		b, err := n.mesh.FetchBlob(ctx, pid, file.Hash, file.Size)
		if err != nil {
			errs = append(errs, fmt.Errorf("from %s: %w", protocol.ShortPeer(e), err))
			continue
		}
		if _, err := n.db.PutBlob(b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: output file %s of task %s: no executor could provide it: %v", api.ErrUnavailable, path, short(rec.Task.ID), errors.Join(errs...))
}

// VerifyBundle verifies a bundle with this node's registry and keys.
func (n *Node) VerifyBundle(data []byte) (api.VerifyReport, error) {
	defer n.claimCores()() // its proofs are checked in one batch, on every core
	return VerifyBundle(data, n.reg, n.keys)
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// Audit returns audit entries from a sequence number on.
func (n *Node) Audit(from uint64, limit int) ([]api.AuditEntry, error) {
	es, err := n.db.AuditEntries(from, limit)
	if err != nil {
		return nil, err
	}
	out := make([]api.AuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, api.AuditEntry{Seq: e.Seq, Time: e.Time, Kind: e.Kind, Actor: e.Actor, Subject: e.Subject, Detail: e.Detail, Prev: e.Prev, Hash: e.Hash})
	}
	return out, nil
}

// VerifyAudit checks the audit chain of the running node.
func (n *Node) VerifyAudit() (int, error) { return n.db.VerifyAudit() }
