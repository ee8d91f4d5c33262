package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// One submitter's flood waits behind; another submitter's run gets the
// next free slot; slots are never lost to a waiter whose context ended.
func TestRunGateTakesSubmittersInTurn(t *testing.T) {
	g := newRunGate(1)
	ctx := context.Background()
	hold, err := g.acquire(ctx, "flood", false)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	start := func(sub string, i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := g.acquire(ctx, sub, false)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, fmt.Sprintf("%s%d", sub, i))
			mu.Unlock()
			rel()
			rel() // a second release gives nothing back twice
		}()
	}
	waitFor := func(sub string, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); g.waitingFor(sub) != n; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d waiting, want %d", sub, g.waitingFor(sub), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range 5 {
		start("flood", i)
		waitFor("flood", i+1)
	}
	// A waiter that gives up leaves no hole and takes no slot.
	gone, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := g.acquire(gone, "quitter", false); errc <- err }()
	waitFor("quitter", 1)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a canceled wait got a slot")
	}
	start("honest", 0)
	waitFor("honest", 1)
	hold()
	wg.Wait()
	if len(order) != 6 || order[0] != "flood0" || order[1] != "honest0" {
		t.Fatalf("runs went %v: the honest run should come second, after one of the flood's", order)
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
	ctx := context.Background()
	hold, err := g.acquire(ctx, "first", false)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	start := func(sub string, known bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := g.acquire(ctx, sub, known)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, sub)
			mu.Unlock()
			rel()
		}()
		for deadline := time.Now().Add(5 * time.Second); g.waitingFor(sub) == 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%s never waited", sub)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range 20 {
		start(fmt.Sprintf("sybil%02d", i), false)
	}
	start("honest", true)
	hold()
	wg.Wait()
	if len(order) != 21 || order[0] != "honest" {
		t.Fatalf("grant order %v: the known submitter should go first", order)
	}
}
