package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// gateRuns starts runs on a gate and records the order of their grants.
type gateRuns struct {
	t     *testing.T
	g     *runGate
	mu    sync.Mutex
	order []string
	wg    sync.WaitGroup
}

// start makes a run of sub wait on the gate (named name when granted),
// and returns once it waits.
func (r *gateRuns) start(sub, name string, known bool) {
	r.t.Helper()
	before := r.g.waitingFor(sub)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		rel, err := r.g.acquire(context.Background(), sub, known)
		if err != nil {
			r.t.Error(err)
			return
		}
		r.mu.Lock()
		r.order = append(r.order, name)
		r.mu.Unlock()
		rel()
		rel() // a second release gives nothing back twice
	}()
	waitWaiting(r.t, r.g, sub, before+1)
}

func waitWaiting(t *testing.T, g *runGate, sub string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); g.waitingFor(sub) != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d waiting, want %d", sub, g.waitingFor(sub), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// One submitter's flood waits behind; another submitter's run gets the
// next free slot; slots are never lost to a waiter whose context ended.
func TestRunGateTakesSubmittersInTurn(t *testing.T) {
	g := newRunGate(1)
	ctx := context.Background()
	hold, err := g.acquire(ctx, "flood", false)
	if err != nil {
		t.Fatal(err)
	}
	runs := &gateRuns{t: t, g: g}
	for i := range 5 {
		runs.start("flood", fmt.Sprintf("flood%d", i), false)
	}
	// A waiter that gives up leaves no hole and takes no slot.
	gone, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := g.acquire(gone, "quitter", false); errc <- err }()
	waitWaiting(t, g, "quitter", 1)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a canceled wait got a slot")
	}
	runs.start("honest", "honest0", false)
	hold()
	runs.wg.Wait()
	if len(runs.order) != 6 || runs.order[0] != "flood0" || runs.order[1] != "honest0" {
		t.Fatalf("runs went %v: the honest run should come second, after one of the flood's", runs.order)
	}
	// Everything released: every slot is free again.
	if rel, err := g.acquire(ctx, "x", false); err != nil || g.free != 0 {
		t.Fatalf("after the runs: %v, %d free", err, g.free)
	} else {
		rel()
	}
	if g.free != 1 || len(g.turn[0])+len(g.turn[1]) != 0 || len(g.waiting) != 0 {
		t.Fatalf("gate not back at rest: free %d, turn %v, waiting %v", g.free, g.turn, g.waiting)
	}
}

// A flood signed by many free keys (one run each) waits behind a known
// submitter's run, which turns per key alone would have served last (a
// second review of 2026-12-07).
func TestRunGateServesKnownSubmittersFirst(t *testing.T) {
	g := newRunGate(1)
	hold, err := g.acquire(context.Background(), "first", false)
	if err != nil {
		t.Fatal(err)
	}
	runs := &gateRuns{t: t, g: g}
	for i := range 20 {
		sub := fmt.Sprintf("sybil%02d", i)
		runs.start(sub, sub, false)
	}
	runs.start("honest", "honest", true)
	hold()
	runs.wg.Wait()
	if len(runs.order) != 21 || runs.order[0] != "honest" {
		t.Fatalf("grant order %v: the known submitter should go first", runs.order)
	}
}
