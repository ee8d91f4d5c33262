package protocol

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// lcStep is one line of a lifecycle script: at offset `at` from the task's
// creation, event ev; want lists action summaries that must appear in the
// step's actions (in order, among others).
type lcStep struct {
	at   time.Duration
	ev   Event
	want []string
	not  []string // summaries that must not appear
}

// summarize renders an action as a short line for scripts.
func summarize(a Action) string {
	switch a := a.(type) {
	case Persist:
		s := "persist " + string(a.State)
		if a.Ran {
			s += " ran by " + a.Peer
		}
		if a.Settlement != nil {
			s += " settled by " + strings.Join(a.Settlement.Executors, ",")
		}
		return s + ": " + a.Detail
	case Run:
		return "run"
	case Stop:
		return "stop"
	case WakeAt:
		if a.At.IsZero() {
			return "wake never"
		}
		return "wake " + a.At.Format("15:04:05.000")
	case Penalize:
		return "penalize " + a.Executor
	case Sync:
		return "sync " + strings.Join(a.Executors, ",")
	}
	return fmt.Sprintf("%T", a)
}

const lease = 10 * time.Second

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func lcTask(typ TaskType, replicas int, cands ...string) *Task {
	t := &Task{Type: typ.ID, Submitter: "sub", Created: t0.UnixMilli(), Replicas: replicas,
		Candidates: cands, LeaseMS: lease.Milliseconds()}
	t.Deadline = MaxDeadline(t.Created, len(cands), replicas, lease)
	t.ID = t.ContentID()
	return t
}

func replicatedType(quorum, maxReplicas int) TaskType {
	return TaskType{ID: "wasm.exec.v1", Verification: Verification{Kind: VerifyReplicated, Quorum: quorum},
		DefaultReplicas: quorum, MaxReplicas: maxReplicas, SLO: SLO{LeaseMS: lease.Milliseconds()}}
}

func out(exec, hash string) EvResult { return EvResult{Delivery{Executor: exec, Outcome: hash}} }

func failed(exec string, code int, stderr string) EvResult {
	f := &Failure{ExitCode: code, Stderr: []byte(stderr)}
	r := Result{Failure: f}
	return EvResult{Delivery{Executor: exec, Outcome: r.Outcome(), Failure: f}}
}

// runScript feeds the steps to a lifecycle of self and checks each step's
// actions; it returns the lifecycle.
func runScript(t *testing.T, self string, task *Task, tt TaskType, steps []lcStep) *Lifecycle {
	t.Helper()
	l := NewLifecycle(self, task, tt)
	for i, s := range steps {
		acts := l.Step(t0.Add(s.at), s.ev)
		var got []string
		for _, a := range acts {
			got = append(got, summarize(a))
		}
		joined := strings.Join(got, "\n")
		k := 0
		for _, line := range got {
			if k < len(s.want) && strings.Contains(line, s.want[k]) {
				k++
			}
		}
		if k < len(s.want) {
			t.Fatalf("step %d (%T at +%s): want %q in order, got:\n%s", i, s.ev, s.at, s.want[k:], joined)
		}
		for _, n := range s.not {
			if strings.Contains(joined, n) {
				t.Fatalf("step %d (%T at +%s): %q must not appear, got:\n%s", i, s.ev, s.at, n, joined)
			}
		}
	}
	return l
}

func TestLifecycleScripts(t *testing.T) {
	g16 := gpuType()
	g16.SLO.LeaseMS = lease.Milliseconds()
	rep := replicatedType(2, 5)
	cases := []struct {
		name  string
		self  string
		task  *Task
		tt    TaskType
		steps []lcStep
		final TaskState
	}{
		{"first candidate runs at once and a proof accepts", "a", lcTask(g16, 1, "a", "b"), g16, []lcStep{
			{0, EvSeen{}, []string{"persist assigned", "run", "wake 12:00:08.000"}, nil},
			{time.Second, EvProgress{Executor: "a", State: StateRunning}, []string{"persist running"}, nil},
			{2 * time.Second, out("a", "h1"), []string{"persist verifying", "persist accepted settled by a", "wake never"}, []string{"run"}},
		}, StateAccepted},
		{"every executor that ran is named, even when it starts after another's result", "observer", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, nil, nil},
			{time.Second, out("a", "h1"), []string{"persist verifying ran by a: result from"}, nil},
			{2 * time.Second, EvProgress{Executor: "b", State: StateRunning}, []string{"persist verifying ran by b: running on"}, nil},
			{3 * time.Second, out("b", "h1"), []string{"ran by b", "accepted settled by a,b"}, nil},
			{4 * time.Second, EvProgress{Executor: "c", State: StateRunning}, nil, []string{"ran by c"}},
		}, StateAccepted},
		{"backup waits for its lease, then takes over", "b", lcTask(g16, 1, "a", "b"), g16, []lcStep{
			{0, EvSeen{}, []string{"persist assigned", "wake 12:00:08.000"}, []string{"run"}},
			{5 * time.Second, EvTick{}, nil, []string{"run", "sync"}},
			{8 * time.Second, EvTick{}, []string{"sync a", "wake 12:00:10.000"}, []string{"run"}},
			{10 * time.Second, EvTick{}, []string{"takes over: the lease", "run"}, nil},
			{12 * time.Second, out("b", "h1"), []string{"accepted settled by b"}, nil},
		}, StateAccepted},
		{"backup does not run when the result came in time", "b", lcTask(g16, 1, "a", "b"), g16, []lcStep{
			{0, EvSeen{}, nil, []string{"run"}},
			{3 * time.Second, out("a", "h1"), []string{"accepted"}, nil},
			{10 * time.Second, EvTick{}, nil, []string{"run"}},
		}, StateAccepted},
		{"a leave causes early takeover", "c", lcTask(g16, 1, "a", "b", "c"), g16, []lcStep{
			{0, EvSeen{}, nil, []string{"run"}},
			{10 * time.Second, EvTick{}, []string{"candidate 1 (b) takes over"}, []string{"run"}},
			{11 * time.Second, EvPeerLeft{Peer: "b"}, []string{"candidate 2 (c) takes over: candidate b left", "run"}, nil},
		}, StateAssigned},
		{"a leave of a candidate not yet on turn changes nothing", "c", lcTask(g16, 1, "a", "b", "c"), g16, []lcStep{
			{0, EvSeen{}, nil, nil},
			{time.Second, EvPeerLeft{Peer: "c"}, nil, []string{"run", "takes over"}},
			{30 * time.Second, EvTick{}, nil, []string{"run"}},
		}, StateAssigned},
		{"2 of 3 agree; the liar is penalized", "x", lcTask(rep, 3, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, nil, []string{"run"}},
			{time.Second, out("a", "good"), []string{"persist verifying"}, []string{"accepted"}},
			{time.Second, out("b", "evil"), nil, []string{"accepted", "failed"}},
			{2 * time.Second, out("c", "good"), []string{"accepted settled by a,c", "penalize b"}, nil},
		}, StateAccepted},
		{"a split starts the next candidate at once", "c", lcTask(rep, 2, "a", "b", "c", "d"), rep, []lcStep{
			{0, EvSeen{}, nil, []string{"run"}},
			{time.Second, out("a", "good"), nil, []string{"run"}},
			{time.Second, out("b", "evil"), []string{"candidate 2 (c) takes over: results so far do not settle", "run"}, []string{"failed"}},
			{3 * time.Second, out("c", "good"), []string{"accepted settled by a,c", "penalize b"}, nil},
		}, StateAccepted},
		{"no quorum within max replicas fails naming every hash", "x", lcTask(replicatedType(2, 3), 2, "a", "b", "c", "d"), replicatedType(2, 3), []lcStep{
			{0, EvSeen{}, nil, nil},
			{time.Second, out("a", "h1"), nil, nil},
			{time.Second, out("b", "h2"), []string{"takes over"}, nil},
			{2 * time.Second, out("c", "h3"), []string{"persist failed: no quorum: output sha256 h1 from a vs output sha256 h2 from b vs output sha256 h3 from c"}, []string{"accepted"}},
		}, StateFailed},
		{"a deterministic failure confirmed by the quorum ends the task", "x", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, nil, nil},
			{time.Second, failed("a", 3, "bad input\n"), []string{"failure: exit code 3"}, []string{"failed"}},
			{time.Second, failed("b", 3, "bad input\n"), []string{"persist failed settled by a,b: the module failed: exit code 3, stderr: \"bad input\\n\" (confirmed by a, b)", "wake never"}, nil},
		}, StateFailed},
		{"one lying failure report cannot fail a groth16 task", "b", lcTask(g16, 1, "a", "b", "c"), g16, []lcStep{
			{0, EvSeen{}, nil, []string{"run"}},
			{time.Second, failed("a", 1, "lie"), []string{"candidate 1 (b) takes over", "run"}, []string{"failed"}},
			{3 * time.Second, out("b", "proof"), []string{"accepted settled by b", "penalize a"}, nil},
		}, StateAccepted},
		{"a groth16 failure confirmed by a second candidate fails", "x", lcTask(g16, 1, "a", "b", "c"), g16, []lcStep{
			{0, EvSeen{}, nil, nil},
			{time.Second, failed("a", 2, "x"), []string{"takes over"}, nil},
			{2 * time.Second, failed("b", 2, "x"), []string{"persist failed settled by a,b: the module failed: exit code 2"}, nil},
		}, StateFailed},
		{"cancel stops this node's run", "a", lcTask(rep, 2, "a", "b"), rep, []lcStep{
			{0, EvSeen{}, []string{"run"}, nil},
			{time.Second, EvCancel{Reason: "changed my mind"}, []string{"persist canceled: canceled by the submitter: changed my mind", "stop", "wake never"}, nil},
			{2 * time.Second, out("b", "h"), nil, []string{"persist"}},
		}, StateCanceled},
		{"an abort fails the task and stops this node's run", "a", lcTask(rep, 2, "a", "b"), rep, []lcStep{
			{0, EvSeen{}, []string{"run"}, nil},
			{0, EvAbort{Reason: "not published: no peers"}, []string{"persist failed: not published: no peers", "stop", "wake never"}, nil},
		}, StateFailed},
		{"a result gossip lost is asked for before the lease runs out, and settles", "x", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, []string{"wake 12:00:08.000"}, nil},
			{time.Second, out("a", "good"), []string{"wake 12:00:08.000"}, []string{"sync"}},
			{8 * time.Second, EvTick{}, []string{"sync b", "wake 12:00:10.000"}, []string{"takes over"}},
			{8*time.Second + 300*time.Millisecond, out("b", "good"), []string{"accepted settled by a,b"}, []string{"sync", "takes over"}},
		}, StateAccepted},
		{"no sync while the results arrive", "x", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, nil, nil},
			{time.Second, out("a", "good"), nil, nil},
			{2 * time.Second, out("b", "good"), []string{"accepted", "wake never"}, []string{"sync"}},
		}, StateAccepted},
		{"one sync per silence: before the lease's end, then before the deadline", "x", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, nil, nil},
			{8 * time.Second, EvTick{}, []string{"sync a,b"}, nil},
			{9 * time.Second, EvTick{}, nil, []string{"sync"}},
			{10 * time.Second, EvTick{}, []string{"candidate 2 (c) takes over", "wake 12:00:28.000"}, []string{"sync"}},
			{28 * time.Second, EvTick{}, []string{"sync a,b,c", "wake 12:00:30.000"}, []string{"failed"}},
			{29 * time.Second, EvTick{}, nil, []string{"sync"}},
			{30 * time.Second, EvTick{}, []string{"persist failed: deadline passed"}, []string{"sync"}},
		}, StateFailed},
		{"a participant asks early when the other replicas are as late as the first was", "sub", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, []string{"wake 12:00:08.000"}, nil},
			{time.Second, out("a", "good"), []string{"wake 12:00:03.000"}, []string{"sync"}},
			{3 * time.Second, EvTick{}, []string{"sync b", "wake 12:00:08.000"}, nil},
			{8 * time.Second, EvTick{}, []string{"sync b", "wake 12:00:10.000"}, nil}, // a second chance before the lease's end
			{8*time.Second + 100*time.Millisecond, out("b", "good"), []string{"accepted settled by a,b"}, []string{"sync"}},
		}, StateAccepted},
		{"the early ask waits as long as the first result took", "a", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, []string{"run"}, nil},
			{3 * time.Second, out("a", "good"), []string{"wake 12:00:06.000"}, []string{"sync"}},
			{6 * time.Second, EvTick{}, []string{"sync b"}, nil},
		}, StateVerifying},
		{"an observer does not ask early", "x", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, nil, nil},
			{time.Second, out("a", "good"), []string{"wake 12:00:08.000"}, nil},
			{3 * time.Second, EvTick{}, nil, []string{"sync"}},
		}, StateVerifying},
		{"no early ask when the lease's end comes first", "sub", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, nil, nil},
			{5 * time.Second, out("a", "good"), []string{"wake 12:00:08.000"}, nil},
			{8 * time.Second, EvTick{}, []string{"sync b", "wake 12:00:10.000"}, nil},
			{9 * time.Second, EvTick{}, nil, []string{"sync"}},
		}, StateVerifying},
		{"a node does not ask for its own result", "a", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, []string{"run"}, nil},
			{time.Second, out("b", "good"), nil, nil},
			{8 * time.Second, EvTick{}, nil, []string{"sync"}},
		}, StateVerifying},
		{"a candidate that left is not asked", "x", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{0, EvSeen{}, nil, nil},
			{time.Second, EvPeerLeft{Peer: "a"}, []string{"candidate 2 (c) takes over"}, nil},
			{28 * time.Second, EvTick{}, []string{"sync b,c"}, nil},
		}, StateAssigned},
		{"the deadline fails an unanswered task", "x", lcTask(g16, 1, "a", "b"), g16, []lcStep{
			{0, EvSeen{}, nil, nil},
			{30 * time.Second, EvTick{}, []string{"persist failed: deadline passed: no result from 2 candidate(s)"}, nil},
		}, StateFailed},
		{"restart does not rerun a settled task", "b", lcTask(rep, 2, "a", "b"), rep, []lcStep{
			{time.Second, EvRestored{State: StateVerifying, Results: []Delivery{{Executor: "a", Outcome: "h"}, {Executor: "b", Outcome: "h"}}},
				[]string{"accepted settled by a,b"}, []string{"run"}},
		}, StateAccepted},
		{"restart does not rerun a task this node had started", "a", lcTask(rep, 2, "a", "b"), rep, []lcStep{
			{time.Second, EvRestored{State: StateRunning, Ran: true}, nil, []string{"run"}},
			{2 * time.Second, out("b", "h"), nil, []string{"run"}},
		}, StateVerifying},
		{"restart asks soon for the results it missed, once", "sub", lcTask(rep, 2, "a", "b", "c"), rep, []lcStep{
			{3 * time.Second, EvRestored{State: StateRunning, Results: []Delivery{{Executor: "a", Outcome: "h"}}}, []string{"wake 12:00:05.000"}, []string{"sync"}},
			{5 * time.Second, EvTick{}, []string{"sync b"}, nil},
			{6 * time.Second, EvTick{}, nil, []string{"sync"}},
		}, StateRunning},
		{"restart of a backup with no answer yet schedules its turn", "b", lcTask(g16, 1, "a", "b"), g16, []lcStep{
			{time.Second, EvRestored{State: StateRunning}, []string{"wake 12:00:03.000"}, []string{"run"}},
			{3 * time.Second, EvTick{}, []string{"sync a", "wake 12:00:08.000"}, []string{"run"}},
			{10 * time.Second, EvTick{}, []string{"run"}, nil},
		}, StateAssigned},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := runScript(t, c.self, c.task, c.tt, c.steps)
			if l.State() != c.final {
				t.Fatalf("final state %s, want %s", l.State(), c.final)
			}
		})
	}
}

func TestLifecycleTurns(t *testing.T) {
	g16 := gpuType()
	g16.SLO.LeaseMS = lease.Milliseconds()
	task := lcTask(g16, 1, "a", "b", "c")
	l := NewLifecycle("x", task, g16)
	l.Step(t0, EvSeen{})
	skew := 2 * time.Second
	if err := l.CheckTurn("a", t0, skew); err != nil {
		t.Fatalf("first candidate: %v", err)
	}
	if err := l.CheckTurn("b", t0.Add(time.Second), skew); !errors.Is(err, ErrNotYourTurn) {
		t.Fatalf("backup before its turn: %v", err)
	}
	if err := l.CheckTurn("mallory", t0, skew); !errors.Is(err, ErrExecutorNotAllowed) {
		t.Fatalf("non-candidate: %v", err)
	}
	if err := l.CheckTurn("b", t0.Add(lease-skew), skew); err != nil {
		t.Fatalf("backup within the skew of its turn: %v", err)
	}
	if err := l.CheckTurn("c", t0.Add(lease), skew); !errors.Is(err, ErrNotYourTurn) {
		t.Fatalf("third candidate at the second's turn: %v", err)
	}
	// A leave moves c's turn forward on every node that saw it.
	l.Step(t0.Add(lease), EvTick{})
	l.Step(t0.Add(lease+time.Second), EvPeerLeft{Peer: "b"})
	if err := l.CheckTurn("c", t0.Add(lease+time.Second), skew); err != nil {
		t.Fatalf("third candidate after the second left: %v", err)
	}
	if Ignorable(ErrNotYourTurn) {
		t.Fatal("a result before its turn must be REJECTED, not ignored")
	}
}

// A lifecycle is a function of its events: two nodes fed the same events
// at the same times end in the same state, whichever of them runs it.
func TestLifecycleSameOnEveryNode(t *testing.T) {
	rep := replicatedType(2, 5)
	task := lcTask(rep, 3, "a", "b", "c", "d")
	evs := []lcStep{{0, EvSeen{}, nil, nil}, {time.Second, out("a", "h"), nil, nil}, {time.Second, out("b", "x"), nil, nil},
		{15 * time.Second, EvTick{}, nil, nil}, {16 * time.Second, out("d", "h"), nil, nil}}
	var states []TaskState
	for _, self := range []string{"a", "b", "c", "d", "observer"} {
		states = append(states, runScript(t, self, task, rep, evs).State())
	}
	for _, s := range states {
		if s != StateAccepted {
			t.Fatalf("states %v, want accepted everywhere", states)
		}
	}
}

// IsTakeover tells a takeover entry from the task's first assignment,
// which also has state assigned and a peer (the submitter).
func TestIsTakeover(t *testing.T) {
	g16 := gpuType()
	g16.SLO.LeaseMS = lease.Milliseconds()
	l := NewLifecycle("x", lcTask(g16, 1, "a", "b"), g16)
	var first, later []Persist
	for _, a := range l.Step(t0, EvSeen{}) {
		if p, ok := a.(Persist); ok {
			first = append(first, p)
		}
	}
	for _, a := range l.Step(t0.Add(lease), EvTick{}) {
		if p, ok := a.(Persist); ok {
			later = append(later, p)
		}
	}
	if len(first) != 1 || IsTakeover(first[0].State, first[0].Peer, first[0].Detail) {
		t.Fatalf("the first assignment: %+v", first)
	}
	if len(later) != 1 || !IsTakeover(later[0].State, later[0].Peer, later[0].Detail) || later[0].Peer != "b" {
		t.Fatalf("candidate b's takeover: %+v", later)
	}
}
