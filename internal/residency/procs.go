package residency

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"
)

// ProcsPolicy decides how many Ps (GOMAXPROCS) a node keeps: one while it
// only gossips, the runtime's default (every core it may use) while it
// computes or while its gossip keeps one P busy.
//
// A gossiping node needs about 1% of a core, but spends it in small
// pieces: each message crosses four goroutines (yamux's reader, the
// stream's reader, pubsub's loop, a validation worker) and the writers
// back. With more than one P, each hand-off may wake another P's thread,
// which spins looking for work before it sleeps again; with twenty nodes
// on two cores that spinning was a sixth of their CPU (bench/README.md,
// "One P while a node only gossips"). A proof or a guest run wants every
// core, and a flood of gossip more than one, so those take them back.
//
// Step is pure: the driver (Procs) reads the clock and the process's CPU
// time, and applies what Step returns.
type ProcsPolicy struct {
	// Rise: cores used on average over a tick, at one P, at or above
	// which the process takes every core (one P is then Rise busy).
	Rise float64
	// Fall: cores used on average over a tick, at every core, below which
	// the tick counts as calm.
	Fall float64
	// Calm: calm ticks in a row, with no compute claimed, before the
	// process returns to one P.
	Calm int
}

// DefaultProcsPolicy: every core once one P is half busy or a compute
// claim is held; one P again after 10 ticks (10 s) below a quarter of a
// core with no claim. The gap between Rise and Fall keeps a steady load
// from switching back and forth.
var DefaultProcsPolicy = ProcsPolicy{Rise: 0.5, Fall: 0.25, Calm: 10}

// ProcsState is what the policy remembers between ticks.
type ProcsState struct {
	Full bool // every core; one P otherwise
	Calm int  // calm ticks in a row, while Full
}

// Step is the state after a tick in which the process used `used` cores
// on average, where computing says whether a compute claim was held at
// any time during the tick.
func (p ProcsPolicy) Step(s ProcsState, computing bool, used float64) ProcsState {
	switch {
	case computing:
		return ProcsState{Full: true}
	case !s.Full:
		return ProcsState{Full: used >= p.Rise}
	case used >= p.Fall:
		return ProcsState{Full: true}
	case s.Calm+1 >= p.Calm:
		return ProcsState{}
	default:
		return ProcsState{Full: true, Calm: s.Calm + 1}
	}
}

// Procs drives a ProcsPolicy: it holds the state, counts compute claims,
// measures the process's CPU once a tick and sets GOMAXPROCS when the
// state changes. Its Claim is what the node calls around a guest run and
// a proof.
type Procs struct {
	policy ProcsPolicy
	log    *slog.Logger
	cpu    func() (time.Duration, error) // the process's CPU time so far
	set    func(full bool)               // applies a state's GOMAXPROCS

	mu       sync.Mutex
	state    ProcsState
	claims   int  // held now
	claimed  bool // a claim was taken since the last tick
	lastCPU  time.Duration
	lastTick time.Time
}

func newProcs(p ProcsPolicy, log *slog.Logger, cpu func() (time.Duration, error), set func(full bool), now time.Time) (*Procs, error) {
	c, err := cpu()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Procs{policy: p, log: log, cpu: cpu, set: set, state: ProcsState{Full: true}, lastCPU: c, lastTick: now}, nil
}

// StartProcs follows p from now until ctx ends or stop is called, which
// gives the process back the runtime's default GOMAXPROCS. The process
// keeps every core at first (start-up is busy) and goes to one P after
// p.Calm calm ticks. StartProcs returns an error wrapping ErrUnsupported
// where the process cannot read its own CPU time (not Linux), and a nil
// *Procs on a machine of one core, where there is nothing to take back.
// It is for cmd/ to call, and only when the operator did not set
// GOMAXPROCS: that choice is theirs.
func StartProcs(ctx context.Context, p ProcsPolicy, tick time.Duration, log *slog.Logger) (g *Procs, stop func(), err error) {
	if runtime.GOMAXPROCS(0) <= 1 {
		return nil, func() {}, nil // nothing to lend or take back
	}
	g, err = newProcs(p, log, processCPU, setProcs, time.Now())
	if err != nil {
		return nil, func() {}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				g.tick(now)
			}
		}
	}()
	return g, func() {
		cancel()
		<-done
		g.mu.Lock()
		defer g.mu.Unlock()
		g.state = ProcsState{Full: true}
		runtime.SetDefaultGOMAXPROCS()
	}, nil
}

// setProcs applies a state: one P, or the runtime's default (which also
// resumes the runtime's own updates of it when a container's CPU limit
// changes).
func setProcs(full bool) {
	if full {
		runtime.SetDefaultGOMAXPROCS()
		return
	}
	runtime.GOMAXPROCS(1)
}

// Claim marks the start of work that wants every core (a guest run, a
// proof): the process takes them at once if it held one P, and keeps them
// until the work ends and Calm ticks pass. Release is safe to call more
// than once. A nil *Procs claims nothing.
func (g *Procs) Claim() (release func()) {
	if g == nil {
		return func() {}
	}
	g.mu.Lock()
	g.claims++
	g.claimed = true
	if !g.state.Full {
		g.state = ProcsState{Full: true}
		g.set(true)
		g.log.Debug("every core taken", "why", "compute claimed")
	}
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.claims--
			g.mu.Unlock()
		})
	}
}

// Full reports whether the process holds every core now.
func (g *Procs) Full() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state.Full
}

// tick measures the CPU used since the last tick and steps the policy.
func (g *Procs) tick(now time.Time) {
	c, err := g.cpu()
	g.mu.Lock()
	defer g.mu.Unlock()
	wall := now.Sub(g.lastTick)
	if err != nil || wall <= 0 {
		return // keep the state; the next tick measures over both
	}
	used := (c - g.lastCPU).Seconds() / wall.Seconds()
	g.lastCPU, g.lastTick = c, now
	next := g.policy.Step(g.state, g.claims > 0 || g.claimed, used)
	g.claimed = false
	if next.Full != g.state.Full {
		g.set(next.Full)
		if next.Full {
			g.log.Debug("every core taken", "why", "busy", "cores_used", used)
		} else {
			g.log.Debug("one P kept", "why", "calm", "cores_used", used)
		}
	}
	g.state = next
}
