package node

import (
	"context"
	"sync"
)

// runGate admits this node's task runs in turn across submitters. Anyone
// can sign tasks naming any node as a candidate, and the node runs them
// (a review of 2026-12-07 had one stranger's key queue 100 runs on a
// node's two sandbox workers, its honest submitters' runs behind them).
// A free slot goes to the waiting submitter served longest ago, and each
// submitter's runs go in the order they came: one submitter's flood
// delays another submitter's run by at most one run of each submitter
// waiting, not by the whole flood.
type runGate struct {
	mu      sync.Mutex
	free    int
	waiting map[string][]chan struct{} // per submitter, in arrival order
	turn    []string                   // submitters with a run waiting, the next served first
}

func newRunGate(slots int) *runGate {
	return &runGate{free: max(slots, 1), waiting: map[string][]chan struct{}{}}
}

// acquire waits for a slot for a run of submitter's task, or for ctx to
// end. The release it returns gives the slot back (once).
func (g *runGate) acquire(ctx context.Context, submitter string) (release func(), err error) {
	g.mu.Lock()
	if g.free > 0 && len(g.turn) == 0 {
		g.free--
		g.mu.Unlock()
		return sync.OnceFunc(g.release), nil
	}
	ch := make(chan struct{})
	if len(g.waiting[submitter]) == 0 {
		g.turn = append(g.turn, submitter)
	}
	g.waiting[submitter] = append(g.waiting[submitter], ch)
	g.mu.Unlock()
	select {
	case <-ch:
		return sync.OnceFunc(g.release), nil
	case <-ctx.Done():
		g.mu.Lock()
		granted := !g.drop(submitter, ch)
		g.mu.Unlock()
		if granted { // the slot came as ctx ended: pass it on
			g.release()
		}
		return nil, ctx.Err()
	}
}

// drop removes a waiter; false if it is no longer waiting (it was
// granted). The caller holds mu.
func (g *runGate) drop(submitter string, ch chan struct{}) bool {
	q := g.waiting[submitter]
	for i, c := range q {
		if c != ch {
			continue
		}
		if q = append(q[:i:i], q[i+1:]...); len(q) > 0 {
			g.waiting[submitter] = q
			return true
		}
		delete(g.waiting, submitter)
		for j, s := range g.turn {
			if s == submitter {
				g.turn = append(g.turn[:j:j], g.turn[j+1:]...)
				break
			}
		}
		return true
	}
	return false
}

// release hands the slot to the next submitter in turn, or frees it.
func (g *runGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.turn) == 0 {
		g.free++
		return
	}
	s := g.turn[0]
	q := g.waiting[s]
	next := q[0]
	g.turn = g.turn[1:]
	if len(q) == 1 {
		delete(g.waiting, s)
	} else {
		g.waiting[s] = q[1:]
		g.turn = append(g.turn, s) // served: to the back of the turn
	}
	close(next)
}

// waitingFor is how many runs of submitter wait (for tests and metrics).
func (g *runGate) waitingFor(submitter string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiting[submitter])
}

// waitingAll is how many runs wait, of every submitter.
func (g *runGate) waitingAll() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, q := range g.waiting {
		n += len(q)
	}
	return n
}
