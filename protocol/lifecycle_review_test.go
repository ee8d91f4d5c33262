package protocol

import (
	"strings"
	"testing"
	"time"
)

// Attacks on the lifecycle's rules from a review of 2026-12-07.

// finalPersist returns the last Persist of a terminal state among acts.
func finalPersist(acts []Action) (Persist, bool) {
	for i := len(acts) - 1; i >= 0; i-- {
		if p, ok := acts[i].(Persist); ok && p.State.Terminal() {
			return p, true
		}
	}
	return Persist{}, false
}

// An active candidate that reports the same deterministic failure as an
// honest replica (trap, exit code and stderr equal: the same outcome), but
// first and with a Message of its own choosing, writes the reason every
// node records: Result.Outcome leaves the Message out, and the settlement
// keeps the first report of the group (lifecycle.go groups(): report is the
// first failure of the group), whose Summary prints the Message.
// Attacker: one identity that is an active candidate and delivers first.
func TestFailureReasonIsWhatTheQuorumAgrees(t *testing.T) {
	rep := replicatedType(2, 5)
	task := lcTask(rep, 2, "liar", "honest", "c")
	l := NewLifecycle("observer", task, rep)
	l.Step(t0, EvSeen{})
	lie := &Failure{Trap: TrapFuel, ExitCode: -1, Message: "FORGED: module contains malware, submitter banned"}
	truth := &Failure{Trap: TrapFuel, ExitCode: -1, Message: "fuel budget of 5000000000 exhausted"}
	l.Step(t0.Add(time.Second), EvResult{Delivery{Executor: "liar", Outcome: (&Result{Failure: lie}).Outcome(), Failure: lie}})
	acts := l.Step(t0.Add(2*time.Second), EvResult{Delivery{Executor: "honest", Outcome: (&Result{Failure: truth}).Outcome(), Failure: truth}})
	p, ok := finalPersist(acts)
	if !ok || p.State != StateFailed {
		t.Fatalf("task not failed by the confirmed report: %v", acts)
	}
	if strings.Contains(p.Reason, "FORGED") || strings.Contains(p.Settlement.Failure.Message, "FORGED") {
		t.Fatalf("the reason recorded on every node is the attacker's text:\n  reason: %s\n  settlement failure message: %q",
			p.Reason, p.Settlement.Failure.Message)
	}
}

// A candidate whose lease ran out and was taken over can still move the
// task's state, on every node, to "proving on <it>" with a fresh progress:
// for a replicated type, which has no proving phase at all, after the
// timeline said another candidate took over.
func TestProgressOnlyFromACandidateOnItsTurn(t *testing.T) {
	rep := replicatedType(2, 5)
	task := lcTask(rep, 2, "slow", "b", "c")
	l := NewLifecycle("observer", task, rep)
	l.Step(t0, EvSeen{})
	l.Step(t0.Add(time.Second), out("b", "h"))
	l.Step(t0.Add(lease), EvTick{}) // c takes over from the silent "slow"
	if l.State() != StateAssigned {
		t.Fatalf("no takeover: %s", l.State())
	}
	acts := l.Step(t0.Add(lease+time.Second), EvProgress{Executor: "slow", State: StateProving})
	if l.State() == StateProving {
		t.Fatalf("after the takeover, the replaced candidate set a replicated task to %s: %v", l.State(), acts)
	}
	// A candidate whose turn is not near says nothing of the task.
	l2 := NewLifecycle("observer", lcTask(rep, 2, "a", "b", "c", "d"), rep)
	l2.Step(t0, EvSeen{})
	if acts := l2.Step(t0.Add(time.Second), EvProgress{Executor: "d", State: StateRunning}); hasPersist(acts) || l2.State() != StateAssigned {
		t.Fatalf("a progress of candidate 3 before its turn: %s, %v", l2.State(), acts)
	}
	// Within TurnSkew of its turn it does (a clock slightly ahead).
	if acts := l2.Step(t0.Add(lease-TurnSkew/2), EvProgress{Executor: "c", State: StateRunning}); l2.State() != StateRunning {
		t.Fatalf("a progress of candidate 2 within the turn skew: %s, %v", l2.State(), acts)
	}
}

func hasPersist(acts []Action) bool {
	for _, a := range acts {
		if _, ok := a.(Persist); ok {
			return true
		}
	}
	return false
}
