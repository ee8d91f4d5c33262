package protocol

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// ErrNotYourTurn is a result or progress from a candidate whose turn has
// not come: neither its scheduled start (within the clock skew) nor an
// event that moved it forward (a leave, a split, a failure to confirm).
var ErrNotYourTurn = errors.New("candidate's turn has not come")

// The task lifecycle is a pure state machine: every node that has seen a
// task runs one Lifecycle for it, feeds it what the mesh delivers (Event)
// with the time it was delivered, and carries out what Step returns
// (Action). It reads no clock, does no I/O and starts no goroutine, so
// every node that is fed the same events reaches the same final state,
// and its tests are tables (see docs/LIFECYCLE.md for the rules).
type Lifecycle struct {
	self  string // this node's peer id
	task  *Task
	tt    TaskType
	state TaskState

	// activated[i] is when candidate i's turn came (zero: not yet) and
	// why; once set it never changes.
	activated []time.Time
	why       []string
	gone      map[string]bool // candidates that left the network

	// delivered are each executor's results: one, or two different
	// ones from an executor that equivocated (it counts for both
	// outcomes and is penalized; a third is not kept).
	delivered map[string][]*Delivery
	order     []*Delivery // every result in delivery order
	answered  int         // executors that delivered
	wanted    int         // results wanted before the next candidate starts
	ran       bool        // this node started its own run
	// synced is the silence (a lease's end, or the deadline) before
	// which this node last asked for the results it lacks.
	synced time.Time
	// firstAt is when the first result came here (zero: none yet, or
	// restored); earlySynced that the early ask it allows was made.
	firstAt     time.Time
	earlySynced bool
	// restoredAsk (zero: none) is when a lifecycle restored after a
	// restart asks for the results it missed while down.
	restoredAsk time.Time
}

// Delivery is one verified result as the lifecycle sees it.
type Delivery struct {
	Executor string
	Outcome  string   // Result.Outcome
	Failure  *Failure // nil for an output
}

// Event is something that happened to a task.
type Event interface{ isEvent() }

// EvSeen is the first event of a lifecycle: the task was seen (on the
// mesh, or submitted here).
type EvSeen struct{}

// EvRestored replaces EvSeen after a restart: the stored state, whether
// this node had started its own run, and the stored results in order.
type EvRestored struct {
	State   TaskState
	Ran     bool
	Results []Delivery
}

// EvProgress is an executor's announcement that it runs or proves.
type EvProgress struct {
	Executor string
	State    TaskState
}

// EvResult is a result that passed the results validator (its proof
// verified, for groth16 types).
type EvResult struct{ Delivery }

// EvPeerLeft is a peer's signed leave.
type EvPeerLeft struct{ Peer string }

// EvCancel is the submitter's signed cancel.
type EvCancel struct{ Reason string }

// EvAbort ends a task that cannot go on here (its submitting node could
// not publish it).
type EvAbort struct{ Reason string }

// EvTick is the passing of time (the driver's wake-up).
type EvTick struct{}

func (EvSeen) isEvent()     {}
func (EvRestored) isEvent() {}
func (EvProgress) isEvent() {}
func (EvResult) isEvent()   {}
func (EvPeerLeft) isEvent() {}
func (EvCancel) isEvent()   {}
func (EvTick) isEvent()     {}
func (EvAbort) isEvent()    {}

// Action is something the driver must do after a step.
type Action interface{ isAction() }

// Persist records a state (which may equal the current one) with a
// timeline entry. Settlement is set when the task ends accepted or failed
// by a quorum.
type Persist struct {
	State  TaskState
	Detail string
	Peer   string // who caused it, if anyone
	Reason string // failed or canceled: why
	// Ran: Peer ran the task (its progress or its result was taken),
	// whatever the task's state: every node lists the same executors.
	Ran        bool
	Settlement *Settlement
}

// Settlement is how a task ended: the outcome agreed, who agreed, and who
// dissented.
type Settlement struct {
	Outcome    string
	Executors  []string // agreeing, in delivery order
	Failure    *Failure // the agreed failure, if the outcome is one
	Dissenters []string
}

// Run tells the driver to start this node's run of the task.
type Run struct{}

// Stop tells the driver to stop this node's run, if one is going.
type Stop struct{ Reason string }

// WakeAt asks for an EvTick at At (the latest request replaces earlier
// ones; a zero At means no wake-up is needed).
type WakeAt struct{ At time.Time }

// Sync tells the driver to ask peers for the results of Executors (active
// candidates that have not delivered here): gossip may have lost them,
// and the lifecycle is about to act on their silence (start the next
// candidate, or fail at the deadline). Results fetched come back as
// EvResult, checked like any other. Before is the silence the sync
// precedes.
type Sync struct {
	Executors []string
	Before    time.Time
}

// SyncLead is how long before it acts on a candidate's silence a
// lifecycle asks for the results it lacks (at most a quarter of the
// lease): time for a round trip, and no request at all while results
// arrive.
const SyncLead = 2 * time.Second

// Penalize records that an executor delivered an outcome the quorum
// refuted.
type Penalize struct {
	Executor string
	Detail   string
}

func (Persist) isAction()  {}
func (Run) isAction()      {}
func (Stop) isAction()     {}
func (WakeAt) isAction()   {}
func (Penalize) isAction() {}
func (Sync) isAction()     {}

// NewLifecycle returns the lifecycle of a checked task as seen by node
// self. Its first event must be EvSeen or EvRestored.
func NewLifecycle(self string, t *Task, tt TaskType) *Lifecycle {
	return &Lifecycle{
		self: self, task: t, tt: tt, state: StatePending,
		activated: make([]time.Time, len(t.Candidates)), why: make([]string, len(t.Candidates)),
		gone: map[string]bool{}, delivered: map[string][]*Delivery{},
		wanted: t.Replicas,
	}
}

// Task returns the task.
func (l *Lifecycle) Task() *Task { return l.task }

// State returns the current state.
func (l *Lifecycle) State() TaskState { return l.state }

// Ran reports whether this node started its own run.
func (l *Lifecycle) Ran() bool { return l.ran }

// replicated reports whether the type is verified by agreeing replicas.
func (l *Lifecycle) replicated() bool { return l.tt.Verification.Kind == VerifyReplicated }

// maxResults is how many results the task may collect before it fails for
// want of agreement.
func (l *Lifecycle) maxResults() int {
	return min(max(l.tt.MaxReplicas, l.task.Replicas), len(l.task.Candidates))
}

// quorum is how many equal outcomes settle the task: the type's quorum
// for replicated types; for groth16 types one verified output, or two
// equal failure reports (one lying report cannot fail a task).
func (l *Lifecycle) quorum(failure bool) int {
	switch {
	case l.replicated():
		return l.tt.Verification.Quorum
	case failure:
		return 2
	}
	return 1
}

// TurnSkew is how far before its scheduled start a candidate's result is
// still taken as on its turn: the clock difference between honest nodes
// that turns tolerate. It is much smaller than the skew allowed for a
// message's own time (DefaultClockSkew), which would let a backup deliver
// a whole lease early. A result refused as early is kept and looked at
// again when the receiver's lifecycle reaches that turn.
const TurnSkew = 2 * time.Second

// CheckTurn decides whether executor may deliver now: it must be a
// candidate, and its turn must have come (activated by an event, or its
// scheduled start within skew of now; see TurnSkew).
func (l *Lifecycle) CheckTurn(executor string, now time.Time, skew time.Duration) error {
	i := l.task.CandidateIndex(executor)
	if i < 0 {
		return fmt.Errorf("%w: %s", ErrExecutorNotAllowed, executor)
	}
	if !l.activated[i].IsZero() || !now.Add(skew).Before(l.task.StartAt(i)) {
		return nil
	}
	return fmt.Errorf("%w: candidate %d (%s) starts at %s, %s from now", ErrNotYourTurn, i, ShortPeer(executor),
		l.task.StartAt(i).UTC().Format(time.RFC3339), l.task.StartAt(i).Sub(now).Round(time.Millisecond))
}

// HasDelivered reports whether executor has delivered a result.
func (l *Lifecycle) HasDelivered(executor string) bool { return len(l.delivered[executor]) > 0 }

// Counted reports whether a result of executor with this outcome needs no
// second look: it is counted already, or the executor has equivocated
// (two different results are kept as evidence; more add nothing).
func (l *Lifecycle) Counted(executor, outcome string) bool {
	ds := l.delivered[executor]
	if len(ds) >= 2 {
		return true
	}
	for _, d := range ds {
		if d.Outcome == outcome {
			return true
		}
	}
	return false
}

// Step applies one event at time now and returns what to do.
func (l *Lifecycle) Step(now time.Time, ev Event) []Action {
	var out []Action
	if l.state.Terminal() {
		return nil
	}
	switch e := ev.(type) {
	case EvSeen:
		l.state = StateAssigned
		out = append(out, Persist{State: StateAssigned, Peer: l.task.Submitter,
			Detail: "candidates: " + strings.Join(shortList(l.task.Candidates), ", ")})
	case EvRestored:
		l.state, l.ran = e.State, e.Ran
		if !l.state.Valid() || l.state == StatePending {
			l.state = StateAssigned
		}
		for i := range e.Results {
			l.record(&e.Results[i])
		}
		// SyncLead on, the node has had time to reach its peers again.
		l.restoredAsk = now.Add(SyncLead)
	case EvProgress:
		out = append(out, l.progress(now, e)...)
	case EvResult:
		if l.Counted(e.Executor, e.Outcome) || l.task.CandidateIndex(e.Executor) < 0 {
			return nil
		}
		d := e.Delivery
		if l.firstAt.IsZero() && len(l.order) == 0 {
			l.firstAt = now
		}
		if l.record(&d) {
			out = append(out, Penalize{Executor: d.Executor, Detail: "signed two different results for one task (equivocation)"})
		}
		detail := "output sha256 " + shortHash(d.Outcome)
		if d.Failure != nil {
			detail = "failure: " + d.Failure.Summary()
		}
		if l.state != StateVerifying {
			l.state = StateVerifying
		}
		out = append(out, Persist{State: StateVerifying, Peer: d.Executor, Ran: true, Detail: "result from " + ShortPeer(d.Executor) + ": " + detail})
	case EvPeerLeft:
		i := l.task.CandidateIndex(e.Peer)
		if i < 0 || l.gone[e.Peer] {
			break
		}
		l.gone[e.Peer] = true
		if !l.activated[i].IsZero() && !l.HasDelivered(e.Peer) {
			// It will not deliver: its successor need not wait out a lease.
			if j := l.activate(now, "candidate "+ShortPeer(e.Peer)+" left"); j >= 0 {
				out = append(out, l.takeover(j))
			}
		}
	case EvCancel:
		l.state = StateCanceled
		reason := "canceled by the submitter"
		if e.Reason != "" {
			reason += ": " + e.Reason
		}
		out = append(out, Persist{State: StateCanceled, Peer: l.task.Submitter, Detail: reason, Reason: reason})
		if l.ran {
			out = append(out, Stop{Reason: reason})
		}
		return append(out, WakeAt{})
	case EvAbort:
		return append(out, l.fail(e.Reason, nil)...)
	case EvTick:
	}
	return append(out, l.advance(now)...)
}

// record counts a result; true when it shows its executor equivocating.
func (l *Lifecycle) record(d *Delivery) bool {
	if l.Counted(d.Executor, d.Outcome) || l.task.CandidateIndex(d.Executor) < 0 {
		return false
	}
	c := *d
	if len(l.delivered[d.Executor]) == 0 {
		l.answered++
	}
	l.delivered[d.Executor] = append(l.delivered[d.Executor], &c)
	l.order = append(l.order, &c)
	if i := l.task.CandidateIndex(d.Executor); l.activated[i].IsZero() {
		l.activated[i] = time.UnixMilli(l.task.Created) // a restored or replayed delivery had its turn
	}
	return len(l.delivered[d.Executor]) == 2
}

func (l *Lifecycle) progress(now time.Time, e EvProgress) []Action {
	i := l.task.CandidateIndex(e.Executor)
	if i < 0 || l.HasDelivered(e.Executor) ||
		l.activated[i].IsZero() && now.Add(TurnSkew).Before(l.task.StartAt(i)) {
		return nil // done, or its turn is not near: what it says is not the task's state
	}
	next := e.State
	if next != StateRunning && (next != StateProving || l.replicated()) {
		return nil // a replicated type has no proving phase
	}
	if next == StateRunning && (l.state == StateRunning || l.state == StateProving || l.state == StateVerifying) {
		// Another executor is further along: keep the state, note the start.
		return []Action{Persist{State: l.state, Peer: e.Executor, Ran: true, Detail: "running on " + ShortPeer(e.Executor)}}
	}
	if stateOrder[next] < stateOrder[l.state] {
		return nil
	}
	l.state = next
	return []Action{Persist{State: next, Peer: e.Executor, Ran: true, Detail: string(next) + " on " + ShortPeer(e.Executor)}}
}

// takeoverPrefix begins the detail of every takeover entry (takeover).
const takeoverPrefix = "candidate "

// IsTakeover reports whether a timeline entry (state, peer, detail) is a
// takeover: candidate peer's turn came, early or by its lease.
func IsTakeover(state TaskState, peer, detail string) bool {
	return state == StateAssigned && peer != "" && strings.HasPrefix(detail, takeoverPrefix)
}

// takeover is the timeline entry of candidate j's turn coming early or by
// its lease.
func (l *Lifecycle) takeover(j int) Action {
	l.state = StateAssigned
	return Persist{State: StateAssigned, Peer: l.task.Candidates[j],
		Detail: fmt.Sprintf(takeoverPrefix+"%d (%s) takes over: %s", j, ShortPeer(l.task.Candidates[j]), l.why[j])}
}

// activate starts the turn of the next candidate whose turn has not come;
// -1 if none is left.
func (l *Lifecycle) activate(now time.Time, why string) int {
	for i := range l.activated {
		if l.activated[i].IsZero() && !l.gone[l.task.Candidates[i]] {
			l.activated[i], l.why[i] = now, why
			return i
		}
	}
	return -1
}

// advance applies the rules that follow from the current facts: settle on
// a quorum, fail at the deadline or when no agreement is possible, start
// further candidates on a split, start candidates whose lease came, run
// this node's turn, and ask for the next wake-up.
func (l *Lifecycle) advance(now time.Time) []Action {
	if s := l.settlement(); s != nil {
		return l.settle(s)
	}
	var out []Action
	// Candidates whose scheduled start has come.
	deadline := time.UnixMilli(l.task.Deadline)
	for i := range l.activated {
		if l.activated[i].IsZero() && !now.Before(l.task.StartAt(i)) {
			l.activated[i] = l.task.StartAt(i)
			if i >= l.task.Replicas {
				l.why[i] = "the lease of the candidate before it ran out"
				if l.answered < l.wanted && !l.gone[l.task.Candidates[i]] && now.Before(deadline) {
					out = append(out, l.takeover(i))
				}
			}
		}
	}
	if !now.Before(deadline) {
		return l.fail(fmt.Sprintf("deadline passed: %s", l.account()), nil)
	}
	// Every active candidate has answered and nothing is settled: a split
	// (or a failure to confirm). Want more results, up to the cap.
	if l.answered >= l.wanted {
		short := l.shortfall()
		if l.answered+short > l.maxResults() {
			return l.fail(fmt.Sprintf("no quorum: %s; %d result(s) is the most this task may collect", l.account(), l.maxResults()), nil)
		}
		l.wanted = l.answered + short
		for l.activeCount() < l.wanted {
			j := l.activate(now, "results so far do not settle the task ("+l.account()+")")
			if j < 0 {
				return l.fail(fmt.Sprintf("no quorum: %s; no candidate left to ask", l.account()), nil)
			}
			out = append(out, l.takeover(j))
		}
	}
	if me := l.task.CandidateIndex(l.self); me >= 0 && !l.ran && !l.activated[me].IsZero() &&
		l.answered < l.wanted && !l.gone[l.self] {
		l.ran = true
		out = append(out, Run{})
	}
	if !l.restoredAsk.IsZero() && !now.Before(l.restoredAsk) {
		// Results may have come while this node was down: ask soon after
		// the restart, not at the next silence (a new user's walkthrough
		// of 2026-12-07 saw a restarted submitter show "proving" for 25 s
		// after the task was accepted). Once; the rule below goes on as
		// before.
		l.restoredAsk = time.Time{}
		if ex := l.silent(); len(ex) > 0 {
			out = append(out, Sync{Executors: ex, Before: now.Add(SyncLead)})
		}
	}
	if silence, at, early, ok := l.syncDue(); ok && !now.Before(at) {
		if l.earlySynced = true; !early {
			l.synced = silence
		}
		if ex := l.silent(); len(ex) > 0 {
			out = append(out, Sync{Executors: ex, Before: silence})
		}
	}
	return append(out, WakeAt{At: l.nextWake()})
}

// nextSilence is the next moment the lifecycle acts on the silence of
// candidates: the scheduled start of a candidate that would take over (a
// lease running out), or the deadline.
func (l *Lifecycle) nextSilence() time.Time {
	at := time.UnixMilli(l.task.Deadline)
	for i := l.task.Replicas; i < len(l.activated); i++ {
		if s := l.task.StartAt(i); l.activated[i].IsZero() && s.Before(at) {
			at = s
		}
	}
	return at
}

// syncDue says when this node next asks for the results it lacks, and
// the silence that precedes: SyncLead before each silence (at most a
// quarter of the lease), once per silence, while results are wanted. A
// node that takes part in the task (its submitter or a candidate) also
// asks once early: replicas of one job finish at about the same time, so
// when the others are as late as the first result was (at least SyncLead
// after it), one of theirs was likely lost, and the task need not wait
// for the lease's end to find it.
func (l *Lifecycle) syncDue() (silence, at time.Time, early, ok bool) {
	if l.answered >= l.wanted {
		return time.Time{}, time.Time{}, false, false
	}
	silence = l.nextSilence()
	if !l.synced.Before(silence) {
		return time.Time{}, time.Time{}, false, false
	}
	at = silence.Add(-min(SyncLead, l.task.Lease()/4))
	if !l.earlySynced && !l.firstAt.IsZero() && l.participant() {
		took := l.firstAt.Sub(time.UnixMilli(l.task.Created))
		if e := l.firstAt.Add(max(SyncLead, took)); e.Before(at) {
			return silence, e, true, true
		}
	}
	return silence, at, false, true
}

// participant reports whether this node submitted the task or is one of
// its candidates.
func (l *Lifecycle) participant() bool {
	return l.self == l.task.Submitter || l.task.CandidateIndex(l.self) >= 0
}

// silent lists the active candidates that have not delivered and have
// not left, this node excepted (its own result is its run's to give).
func (l *Lifecycle) silent() []string {
	var out []string
	for i, c := range l.task.Candidates {
		if !l.activated[i].IsZero() && !l.HasDelivered(c) && !l.gone[c] && c != l.self {
			out = append(out, c)
		}
	}
	return out
}

func (l *Lifecycle) activeCount() int {
	n := 0
	for i, at := range l.activated {
		if !at.IsZero() && (!l.gone[l.task.Candidates[i]] || l.HasDelivered(l.task.Candidates[i])) {
			n++
		}
	}
	return n
}

// shortfall is how many more results could settle the task: the quorum
// minus the largest group of equal outcomes (a groth16 failure waits for
// one confirmation).
func (l *Lifecycle) shortfall() int {
	best := 0
	for _, g := range l.groups() {
		if need := l.quorum(g.failure) - len(g.executors); best == 0 || need < best {
			best = need
		}
	}
	return max(best, 1)
}

type group struct {
	outcome   string
	failure   bool
	report    *Failure // the group's failure report: its message only if all agree on it
	executors []string
}

// executorsInOrder lists the executors that delivered, in the order of
// their first result.
func (l *Lifecycle) executorsInOrder() []string {
	var out []string
	for _, d := range l.order {
		if !slices.Contains(out, d.Executor) {
			out = append(out, d.Executor)
		}
	}
	return out
}

// groups are the delivered results grouped by outcome, in the order of
// each group's first delivery.
func (l *Lifecycle) groups() []group {
	var gs []group
	idx := map[string]int{}
	for _, d := range l.order {
		k, ok := idx[d.Outcome]
		if !ok {
			k = len(gs)
			idx[d.Outcome] = k
			gs = append(gs, group{outcome: d.Outcome, failure: d.Failure != nil})
		}
		gs[k].executors = append(gs[k].executors, d.Executor)
		switch {
		case d.Failure == nil:
		case gs[k].report == nil:
			r := *d.Failure
			gs[k].report = &r
		case gs[k].report.Message != d.Failure.Message:
			// The outcome leaves the sandbox's message out, so the
			// group agrees on everything but it: the first reporter's
			// text is not the confirmed reason (a review of
			// 2026-12-07 had a liar's words recorded on every node).
			gs[k].report.Message = ""
		}
	}
	return gs
}

func (l *Lifecycle) settlement() *Settlement {
	for _, g := range l.groups() {
		if len(g.executors) < l.quorum(g.failure) {
			continue
		}
		s := &Settlement{Outcome: g.outcome, Executors: g.executors[:l.quorum(g.failure)]}
		if g.failure {
			s.Failure = g.report
		}
		for _, e := range l.executorsInOrder() {
			if !slices.Contains(g.executors, e) {
				s.Dissenters = append(s.Dissenters, e)
			}
		}
		return s
	}
	return nil
}

func (l *Lifecycle) settle(s *Settlement) []Action {
	var out []Action
	if s.Failure == nil {
		l.state = StateAccepted
		detail := "proof verified"
		if l.replicated() {
			detail = fmt.Sprintf("%d replicas agree on output sha256 %s", len(s.Executors), shortHash(s.Outcome))
		}
		out = append(out, Persist{State: StateAccepted, Peer: s.Executors[0], Detail: detail, Settlement: s})
	} else {
		reason := fmt.Sprintf("the module failed: %s (confirmed by %s)", s.Failure.Summary(), strings.Join(shortList(s.Executors), ", "))
		out = l.fail(reason, s)
	}
	for _, d := range s.Dissenters {
		out = append(out, Penalize{Executor: d, Detail: fmt.Sprintf("outcome %s refuted by %s",
			shortHash(l.delivered[d][0].Outcome), strings.Join(shortList(s.Executors), ", "))})
	}
	if l.ran && !l.HasDelivered(l.self) {
		out = append(out, Stop{Reason: "task settled"})
	}
	return append(out, WakeAt{})
}

func (l *Lifecycle) fail(reason string, s *Settlement) []Action {
	l.state = StateFailed
	out := []Action{Persist{State: StateFailed, Detail: reason, Reason: reason, Settlement: s}}
	if s == nil && l.ran && !l.HasDelivered(l.self) {
		out = append(out, Stop{Reason: "task failed"})
	}
	if s == nil {
		out = append(out, WakeAt{})
	}
	return out
}

// account names every outcome and who sent it, or that nobody delivered.
func (l *Lifecycle) account() string {
	gs := l.groups()
	if len(gs) == 0 {
		return fmt.Sprintf("no result from %d candidate(s)", l.activeCount())
	}
	parts := make([]string, 0, len(gs))
	for _, g := range gs {
		what := "output sha256 " + shortHash(g.outcome)
		if g.failure {
			what = "failure (" + g.report.Summary() + ")"
		}
		parts = append(parts, fmt.Sprintf("%s from %s", what, strings.Join(shortList(g.executors), ",")))
	}
	sort.Strings(parts)
	return strings.Join(parts, " vs ")
}

// nextWake is the earliest of: a scheduled start still to come, the time
// to ask for missing results before the next silence, the deadline.
func (l *Lifecycle) nextWake() time.Time {
	at := time.UnixMilli(l.task.Deadline)
	for i := range l.activated {
		if s := l.task.StartAt(i); l.activated[i].IsZero() && s.Before(at) {
			at = s
		}
	}
	if _, sync, _, ok := l.syncDue(); ok && sync.Before(at) {
		at = sync
	}
	if !l.restoredAsk.IsZero() && l.restoredAsk.Before(at) {
		at = l.restoredAsk
	}
	return at
}

func shortList(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = ShortPeer(id)
	}
	return out
}

// shortHash is a hash as people read it in a timeline.
func shortHash(h string) string {
	h = strings.TrimPrefix(h, "failure:")
	if len(h) > 16 {
		return h[:16]
	}
	return h
}
