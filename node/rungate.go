package node

import (
	"context"
	"sync"
)

// runGate admits this node's task runs in turn. Anyone can sign tasks
// naming any node as a candidate, and the node runs them (a review of
// 2026-12-07 had one stranger's key queue 100 runs on a node's two
// sandbox workers, its honest submitters' runs behind them).
//
// Submitters this node knows (itself, and peers its table lists online:
// admitted, heartbeating nodes) are served before strangers, and within
// each class a free slot goes to the waiting submitter served longest
// ago, each submitter's runs in the order they came. So one submitter's
// flood delays another known submitter's run by at most one run of each
// known submitter waiting, and a flood signed by many free keys (turns
// per key bound nothing against those: a second review) waits behind
// every known submitter's runs. A slot is taken for the run and its
// proof only, once the module, input, files and proving key are here: a
// fetch an attacker stalls holds no slot.
type runGate struct {
	mu      sync.Mutex
	free    int
	waiting map[gateKey][]chan struct{} // per submitter, in arrival order
	turn    [2][]string                 // per class (known, stranger): submitters with a run waiting, the next served first
}

type gateKey struct {
	class     int // 0 known, 1 stranger
	submitter string
}

func newRunGate(slots int) *runGate {
	return &runGate{free: max(slots, 1), waiting: map[gateKey][]chan struct{}{}}
}

// acquire waits for a slot for a run of submitter's task (known: this
// node knows the submitter), or for ctx to end. The release it returns
// gives the slot back (once).
func (g *runGate) acquire(ctx context.Context, submitter string, known bool) (release func(), err error) {
	k := gateKey{class: 1, submitter: submitter}
	if known {
		k.class = 0
	}
	g.mu.Lock()
	if g.free > 0 && len(g.turn[0])+len(g.turn[1]) == 0 {
		g.free--
		g.mu.Unlock()
		return sync.OnceFunc(g.release), nil
	}
	ch := make(chan struct{})
	if len(g.waiting[k]) == 0 {
		g.turn[k.class] = append(g.turn[k.class], submitter)
	}
	g.waiting[k] = append(g.waiting[k], ch)
	g.mu.Unlock()
	select {
	case <-ch:
		return sync.OnceFunc(g.release), nil
	case <-ctx.Done():
		g.mu.Lock()
		granted := !g.drop(k, ch)
		g.mu.Unlock()
		if granted { // the slot came as ctx ended: pass it on
			g.release()
		}
		return nil, ctx.Err()
	}
}

// drop removes a waiter; false if it is no longer waiting (it was
// granted). The caller holds mu.
func (g *runGate) drop(k gateKey, ch chan struct{}) bool {
	q := g.waiting[k]
	for i, c := range q {
		if c != ch {
			continue
		}
		if q = append(q[:i:i], q[i+1:]...); len(q) > 0 {
			g.waiting[k] = q
			return true
		}
		delete(g.waiting, k)
		ring := g.turn[k.class]
		for j, s := range ring {
			if s == k.submitter {
				g.turn[k.class] = append(ring[:j:j], ring[j+1:]...)
				break
			}
		}
		return true
	}
	return false
}

// release hands the slot to the next submitter in turn, known ones
// first, or frees it.
func (g *runGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	class := 0
	if len(g.turn[0]) == 0 {
		class = 1
	}
	ring := g.turn[class]
	if len(ring) == 0 {
		g.free++
		return
	}
	k := gateKey{class: class, submitter: ring[0]}
	q := g.waiting[k]
	next := q[0]
	g.turn[class] = ring[1:]
	if len(q) == 1 {
		delete(g.waiting, k)
	} else {
		g.waiting[k] = q[1:]
		g.turn[class] = append(g.turn[class], k.submitter) // served: to the back of its turn
	}
	close(next)
}

// waitingFor is how many runs of submitter wait (for tests).
func (g *runGate) waitingFor(submitter string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiting[gateKey{0, submitter}]) + len(g.waiting[gateKey{1, submitter}])
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
