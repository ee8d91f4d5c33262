package residency

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

// ProcsPolicy decides how many Ps (GOMAXPROCS) a node keeps: one while it
// only gossips, the runtime's default (every core it may use) while it
// computes or while it is busy (a flood of gossip, API calls).
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
// Busy is read two ways, once a tick: the CPU the process used, and how
// long its goroutines waited to run. The first misses a process that
// wants more CPU than the machine gives it (many processes on few cores,
// a noisy neighbour): its one P is never half of a core, but its
// goroutines queue, and more threads get it a larger share.
//
// Step is pure: the driver (Procs) reads the clock, the process's CPU
// time and the runtime's scheduling latencies, and applies what Step
// returns.
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
	// Wait, Queued and Sampled: a tick in which at least the share Queued
	// of the goroutines made runnable waited Wait or longer to run is
	// busy, whatever the CPU used, if the runtime sampled at least
	// Sampled of them (/sched/latencies samples a fraction; a few
	// samples say little).
	Wait    time.Duration
	Queued  float64
	Sampled uint64
}

// DefaultProcsPolicy: every core once one P is half busy, half of the
// goroutines made runnable (of 20 sampled at least) waited 5 ms or more,
// or a compute claim is held; one P again after 10 ticks (10 s) below a
// quarter of a core, with no such waits and no claim. The gap between
// Rise and Fall keeps a steady load from switching back and forth. A
// calm node's waits stay well under that even on a saturated machine:
// of 30,591 ticks of 100 light nodes on 2 cores, 2 had half their
// sampled goroutines wait 5 ms (bench/README.md).
var DefaultProcsPolicy = ProcsPolicy{Rise: 0.5, Fall: 0.25, Calm: 10, Wait: 5 * time.Millisecond, Queued: 0.5, Sampled: 20}

// Validate refuses a policy that cannot work: Rise below Fall switches
// back and forth under a steady load between them, Calm below 1 returns
// to one P at the first calm tick, and a Queued share outside (0, 1] or
// a Wait not above 0 makes every tick busy or none.
func (p ProcsPolicy) Validate() error {
	switch {
	case !(p.Fall > 0 && p.Rise >= p.Fall):
		return fmt.Errorf("residency: procs policy rise %v, fall %v: want 0 < fall <= rise", p.Rise, p.Fall)
	case p.Calm < 1:
		return fmt.Errorf("residency: procs policy calm %d: want at least 1 tick", p.Calm)
	case p.Wait <= 0 || !(p.Queued > 0 && p.Queued <= 1):
		return fmt.Errorf("residency: procs policy wait %v, queued %v: want wait > 0 and 0 < queued <= 1", p.Wait, p.Queued)
	}
	return nil
}

// Tick is what the driver measured over one tick.
type Tick struct {
	Computing bool    // a compute claim was held at some time during it
	Used      float64 // cores the process used on average
	Queued    float64 // share of goroutines made runnable that waited Wait or longer (0: too few sampled)
}

// ProcsState is what the policy remembers between ticks.
type ProcsState struct {
	Full bool // every core; one P otherwise
	Calm int  // calm ticks in a row, while Full
}

// Step is the state after tick t.
func (p ProcsPolicy) Step(s ProcsState, t Tick) ProcsState {
	queued := t.Queued >= p.Queued
	switch {
	case t.Computing:
		return ProcsState{Full: true}
	case !s.Full:
		return ProcsState{Full: t.Used >= p.Rise || queued}
	case t.Used >= p.Fall || queued:
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
	waits  func() (slow, all uint64)     // goroutines made runnable so far: that waited policy.Wait or longer, and all
	set    func(full bool)               // applies a state's GOMAXPROCS

	mu       sync.Mutex
	state    ProcsState
	claims   int  // held now
	claimed  bool // a claim was taken since the last tick
	lastCPU  time.Duration
	lastTick time.Time
	lastSlow uint64
	lastAll  uint64
}

func newProcs(p ProcsPolicy, log *slog.Logger, cpu func() (time.Duration, error), waits func() (slow, all uint64), set func(full bool), now time.Time) (*Procs, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c, err := cpu()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Procs{policy: p, log: log, cpu: cpu, waits: waits, set: set, state: ProcsState{Full: true}, lastCPU: c, lastTick: now}
	g.lastSlow, g.lastAll = waits()
	return g, nil
}

// StartProcs follows p from now until ctx ends or stop is called, which
// gives the process back the runtime's default GOMAXPROCS. The process
// keeps every core at first (start-up is busy) and goes to one P after
// p.Calm calm ticks. StartProcs returns an error wrapping ErrUnsupported
// where the process cannot read its own CPU time (not Linux), an error
// for a policy that does not validate, and a nil *Procs on a machine of
// one core, where there is nothing to take back. It is for cmd/ to call,
// and only when the operator did not set GOMAXPROCS: that choice is
// theirs. A process that still works after its ctx ends (a node leaving
// the network) should pass a ctx that outlives that, and call stop.
func StartProcs(ctx context.Context, p ProcsPolicy, tick time.Duration, log *slog.Logger) (g *Procs, stop func(), err error) {
	if runtime.GOMAXPROCS(0) <= 1 {
		return nil, func() {}, nil // nothing to lend or take back
	}
	g, err = newProcs(p, log, processCPU, schedWaits(p.Wait), setProcs, time.Now())
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
			case <-t.C:
				// Not the time the ticker sends, which is when the tick
				// was due: at one P this goroutine may read it late, and
				// the CPU is read now.
				g.tick(time.Now())
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

// setProcs applies a state: one P, or the runtime's default, read afresh
// (the CPUs the process may use, a container's CPU limit), which also
// asks the runtime to resume its own updates of it.
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

// tick measures the CPU used and the scheduling waits since the last
// tick, and steps the policy.
func (g *Procs) tick(now time.Time) {
	c, err := g.cpu() // read right after now: both ends of the measure
	slow, all := g.waits()
	g.mu.Lock()
	defer g.mu.Unlock()
	wall := now.Sub(g.lastTick)
	if err != nil || wall <= 0 {
		return // keep the state; the next tick measures over both
	}
	t := Tick{Computing: g.claims > 0 || g.claimed, Used: (c - g.lastCPU).Seconds() / wall.Seconds()}
	if n := all - g.lastAll; n > 0 && n >= g.policy.Sampled {
		t.Queued = float64(slow-g.lastSlow) / float64(n)
	}
	g.lastCPU, g.lastTick, g.lastSlow, g.lastAll = c, now, slow, all
	next := g.policy.Step(g.state, t)
	g.claimed = false
	if next.Full != g.state.Full {
		g.set(next.Full)
		if next.Full {
			g.log.Debug("every core taken", "why", "busy", "cores_used", t.Used, "queued_share", t.Queued)
		} else {
			g.log.Debug("one P kept", "why", "calm", "cores_used", t.Used)
		}
	}
	g.state = next
}

// schedWaits reads the runtime's distribution of how long goroutines
// waited to run once runnable (/sched/latencies:seconds, cumulative, a
// sample of them): how many waited at least wait, in the buckets that
// start at or above it, and how many in all.
func schedWaits(wait time.Duration) func() (slow, all uint64) {
	sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	return func() (slow, all uint64) {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
			return 0, 0
		}
		h := sample[0].Value.Float64Histogram()
		return slowWaits(h.Counts, h.Buckets, wait.Seconds())
	}
}

// slowWaits counts a histogram's samples (counts[i] in [buckets[i],
// buckets[i+1])) in the buckets that start at or above min, and all of
// them.
func slowWaits(counts []uint64, buckets []float64, min float64) (slow, all uint64) {
	for i, c := range counts {
		all += c
		if buckets[i] >= min {
			slow += c
		}
	}
	return slow, all
}
