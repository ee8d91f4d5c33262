package protocol

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"
)

// equivocationStates runs one lifecycle per (self, order of events) and
// returns the final states: every lifecycle sees the same set of
// messages, only in a different order, then a tick past the deadline.
// A node whose lifecycle settled does not run (nor deliver) afterwards,
// so backups that settled early never send the result a node still
// waiting for one needs.
func equivocationStates(t *testing.T, task *Task, tt TaskType, orders map[string][]Event) map[string]TaskState {
	t.Helper()
	states := map[string]TaskState{}
	for self, evs := range orders {
		l := NewLifecycle(self, task, tt)
		l.Step(t0, EvSeen{})
		for i, ev := range evs {
			l.Step(t0.Add(time.Duration(i+1)*time.Second), ev)
		}
		l.Step(time.UnixMilli(task.Deadline).Add(time.Second), EvTick{})
		states[self] = l.State()
	}
	return states
}

// An executor that signs two different results for one task (equivocation)
// and sends them to different parts of the network in different orders
// makes honest nodes disagree on the task's final state: nodes that count
// its matching result first accept; nodes that count the other one first
// see a split and wait for a backup whose own lifecycle already settled
// (so it never runs), and fail at the deadline. One hostile replica is
// enough; the second result of an executor is simply dropped as a
// duplicate, never noticed as equivocation.
func TestEquivocatingExecutorCannotSplitFinalState(t *testing.T) {
	rep := replicatedType(2, 5)
	task := lcTask(rep, 2, "a", "m", "c", "d")
	// a is honest (output "good"); m signs "good" and "evil".
	states := equivocationStates(t, task, rep, map[string][]Event{
		"c":        {out("a", "good"), out("m", "good"), out("m", "evil")},
		"d":        {out("a", "good"), out("m", "good"), out("m", "evil")},
		"observer": {out("a", "good"), out("m", "evil"), out("m", "good")},
	})
	if states["c"] != states["observer"] {
		t.Fatalf("same messages, different final states: %v", states)
	}
}

// The groth16 variant: a candidate sends a failure report to some nodes
// and a valid proof to the others. The proof alone accepts on the nodes
// that see it first; on the others the proof is dropped as a duplicate
// of the failure report, they wait for a confirmation from backups that
// already settled, and fail at the deadline.
func TestEquivocatingGroth16ExecutorCannotSplitFinalState(t *testing.T) {
	g16 := gpuType()
	g16.SLO.LeaseMS = lease.Milliseconds()
	task := lcTask(g16, 1, "m", "b", "c")
	states := equivocationStates(t, task, g16, map[string][]Event{
		"b":        {out("m", "proof"), failed("m", 1, "lie")},
		"c":        {out("m", "proof"), failed("m", 1, "lie")},
		"observer": {failed("m", 1, "lie"), out("m", "proof")},
	})
	if states["b"] != states["observer"] {
		t.Fatalf("same messages, different final states: %v", states)
	}
}

// TestDeepNestingInUnknownFieldBounded: a wire message may carry fields
// this build does not know, but not arbitrarily deep ones. checkKeys kept a
// frame and a growing path per level, so 100 KB of '[' inside an unknown
// field of a tasks-topic message (any peer may publish one) allocated
// 2.7 GB and took seconds before the decoder's own depth limit refused it.
func TestDeepNestingInUnknownFieldBounded(t *testing.T) {
	nest := func(n int) []byte {
		b := []byte(`{"newer_field":`)
		b = append(b, bytes.Repeat([]byte("["), n)...)
		b = append(b, bytes.Repeat([]byte("]"), n)...)
		return append(b, '}')
	}
	deep := nest(MaxTaskMessageBytes/2 - 64)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := DecodeTaskMessage(deep)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("deeply nested unknown field: %v, want ErrMalformed", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("refusing %d bytes of nesting allocated %d MiB", len(deep), alloc>>20)
	}
	// Nesting within the bound is still skipped like any unknown field.
	var m TaskMessage
	if err := DecodeWire(nest(maxKeyDepth-1), MaxTaskMessageBytes, &m); err != nil {
		t.Fatalf("nesting of %d levels: %v", maxKeyDepth, err)
	}
	if err := DecodeWire(nest(maxKeyDepth), MaxTaskMessageBytes, &m); !errors.Is(err, ErrMalformed) {
		t.Fatalf("nesting of %d levels: %v, want ErrMalformed", maxKeyDepth+1, err)
	}
}
