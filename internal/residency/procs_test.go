package residency

import (
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testPolicy switches on CPU used and on a tenth of the goroutines
// waiting 5 ms, and returns to one P after 3 calm ticks.
var testPolicy = ProcsPolicy{Rise: 0.5, Fall: 0.25, Calm: 3, Wait: 5 * time.Millisecond, Queued: 0.1, Sampled: 20}

func TestProcsPolicyStep(t *testing.T) {
	p := testPolicy
	lean, full := ProcsState{}, ProcsState{Full: true}
	for _, tc := range []struct {
		name string
		s    ProcsState
		tick Tick
		want ProcsState
	}{
		{"idle stays lean", lean, Tick{Used: 0.01}, lean},
		{"below rise stays lean", lean, Tick{Used: 0.49, Queued: 0.09}, lean},
		{"at rise takes every core", lean, Tick{Used: 0.5}, full},
		{"goroutines queued take every core", lean, Tick{Used: 0.05, Queued: 0.1}, full},
		{"a claim takes every core", lean, Tick{Computing: true}, full},
		{"busy full stays, calm reset", ProcsState{Full: true, Calm: 2}, Tick{Used: 0.25}, full},
		{"queued full stays, calm reset", ProcsState{Full: true, Calm: 2}, Tick{Used: 0.01, Queued: 0.5}, full},
		{"between fall and rise stays full", full, Tick{Used: 0.4}, full},
		{"a calm tick counts", full, Tick{Used: 0.1, Queued: 0.05}, ProcsState{Full: true, Calm: 1}},
		{"the last calm tick returns to one P", ProcsState{Full: true, Calm: 2}, Tick{Used: 0.1}, lean},
		{"a claim resets the count", ProcsState{Full: true, Calm: 2}, Tick{Computing: true}, full},
	} {
		if got := p.Step(tc.s, tc.tick); got != tc.want {
			t.Errorf("%s: Step(%+v, %+v) = %+v, want %+v", tc.name, tc.s, tc.tick, got, tc.want)
		}
	}
}

func TestProcsPolicyValidate(t *testing.T) {
	if err := DefaultProcsPolicy.Validate(); err != nil {
		t.Fatalf("the default: %v", err)
	}
	for _, tc := range []struct {
		edit func(*ProcsPolicy)
		want string
	}{
		{func(p *ProcsPolicy) { p.Rise = p.Fall / 2 }, "fall <= rise"},
		{func(p *ProcsPolicy) { p.Fall = 0 }, "0 < fall"},
		{func(p *ProcsPolicy) { p.Calm = 0 }, "calm 0"},
		{func(p *ProcsPolicy) { p.Wait = 0 }, "wait > 0"},
		{func(p *ProcsPolicy) { p.Queued = 0 }, "0 < queued"},
		{func(p *ProcsPolicy) { p.Queued = 1.5 }, "queued <= 1"},
	} {
		p := DefaultProcsPolicy
		tc.edit(&p)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate() = %v, want an error naming %q", p, err, tc.want)
		}
		if _, _, err := StartProcs(t.Context(), p, time.Second, nil); err == nil {
			t.Errorf("%+v: StartProcs started", p)
		}
	}
}

func TestSlowWaits(t *testing.T) {
	buckets := []float64{math.Inf(-1), 0, 0.001, 0.004, 0.008, math.Inf(1)}
	counts := []uint64{0, 7, 5, 3, 2}
	for _, tc := range []struct {
		min       float64
		slow, all uint64
	}{
		{0.005, 2, 17},   // the bucket from 8 ms: the first that starts at or above 5 ms
		{0.004, 5, 17},   // from 4 ms
		{0.0005, 10, 17}, // from 1 ms
		{1, 0, 17},
	} {
		slow, all := slowWaits(counts, buckets, tc.min)
		if slow != tc.slow || all != tc.all {
			t.Errorf("slowWaits(min %v) = %d of %d, want %d of %d", tc.min, slow, all, tc.slow, tc.all)
		}
	}
}

// fakeProcs is a Procs on a CPU clock and a GOMAXPROCS the test moves.
type fakeProcs struct {
	*Procs
	cpu       time.Duration
	slow, all uint64
	now       time.Time
	full      bool
	sets      int
}

func newFakeProcs(t *testing.T, p ProcsPolicy) *fakeProcs {
	t.Helper()
	f := &fakeProcs{now: time.Unix(1000, 0), full: true}
	g, err := newProcs(p, nil, func() (time.Duration, error) { return f.cpu, nil },
		func() (uint64, uint64) { return f.slow, f.all }, func(full bool) { f.full = full; f.sets++ }, f.now)
	if err != nil {
		t.Fatal(err)
	}
	f.Procs = g
	return f
}

// second advances one tick in which the process used `cores` cores, and
// 100 goroutines were made runnable.
func (f *fakeProcs) second(cores float64) { f.secondQueued(cores, 0) }

// secondQueued is second in which slow of the 100 waited long.
func (f *fakeProcs) secondQueued(cores float64, slow uint64) { f.secondSampled(cores, slow, 100) }

// secondSampled is second in which the runtime sampled all goroutines
// made runnable, of which slow waited long.
func (f *fakeProcs) secondSampled(cores float64, slow, all uint64) {
	f.now = f.now.Add(time.Second)
	f.cpu += time.Duration(cores * float64(time.Second))
	f.slow += slow
	f.all += all
	f.tick(f.now)
}

func (f *fakeProcs) calm(t *testing.T, ticks int) {
	t.Helper()
	for range ticks {
		f.second(0.01)
	}
}

func TestProcsDriver(t *testing.T) {
	f := newFakeProcs(t, testPolicy)
	if !f.full || !f.state.Full {
		t.Fatal("start-up should keep every core")
	}
	f.calm(t, 2)
	if !f.full {
		t.Fatal("one P before Calm ticks")
	}
	f.calm(t, 1)
	if f.full || f.state.Full {
		t.Fatal("still every core after Calm calm ticks")
	}

	// A claim takes every core at once, not at the next tick.
	release := f.Claim()
	if !f.full {
		t.Fatal("a claim did not take every core at once")
	}
	f.calm(t, 5) // a claim held: however calm, every core stays
	if !f.full {
		t.Fatal("one P while a claim is held")
	}
	release()
	release() // a second release does not free another claim
	if f.claims != 0 {
		t.Fatalf("claims = %d after release, want 0", f.claims)
	}
	f.calm(t, 3)
	if f.full {
		t.Fatal("every core kept after the claim ended and Calm ticks")
	}

	// A claim that starts and ends within one tick still counts for it:
	// it restarts the count of calm ticks.
	f.second(0.6) // busy: every core
	f.calm(t, 2)
	f.Claim()()
	f.calm(t, 1)
	if !f.full {
		t.Fatal("a claim within the tick did not restart the calm count")
	}
	f.calm(t, 3)
	if f.full {
		t.Fatal("not back to one P")
	}

	// Load alone: one P half busy takes every core; a load between Fall
	// and Rise keeps them.
	f.second(0.3)
	if f.full {
		t.Fatal("0.3 cores at one P took every core")
	}
	f.second(0.6)
	if !f.full {
		t.Fatal("0.6 cores at one P kept one P")
	}
	for range 10 {
		f.second(0.3)
	}
	if !f.full {
		t.Fatal("a steady 0.3 cores went back to one P")
	}
	f.calm(t, 3)
	if f.full {
		t.Fatal("not back to one P")
	}

	// Goroutines that wait to run, however little CPU the process gets
	// (a machine busy with others): every core, kept while they wait.
	f.secondQueued(0.05, 9)
	if f.full {
		t.Fatal("9 of 100 waiting took every core (the policy's share is a tenth)")
	}
	f.secondSampled(0.05, 19, 19)
	if f.full {
		t.Fatal("19 of 19 sampled took every core (the policy wants 20 sampled)")
	}
	f.secondQueued(0.05, 10)
	if !f.full {
		t.Fatal("a tenth of the goroutines waiting kept one P")
	}
	for range 5 {
		f.secondQueued(0.05, 50)
	}
	if !f.full {
		t.Fatal("went back to one P while goroutines waited")
	}
	f.calm(t, 3)
	if f.full {
		t.Fatal("not back to one P once they stopped waiting")
	}

	// A CPU clock that fails keeps the state and the measure spans both.
	f.second(0.6) // every core
	sets := f.sets
	f.Procs.cpu = func() (time.Duration, error) { return 0, ErrUnsupported }
	f.calm(t, 5)
	if f.sets != sets || !f.full {
		t.Fatal("a failed CPU reading changed the state")
	}
}

// defaultProcs sets the runtime's default GOMAXPROCS for the test (what
// StartProcs and its stop return to, whatever `go test -cpu` or a
// GOMAXPROCS in the environment set) and returns it.
func defaultProcs(t *testing.T) int {
	t.Helper()
	old := runtime.GOMAXPROCS(0)
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	return def
}

func TestProcsNilClaims(t *testing.T) {
	var g *Procs
	g.Claim()() // a nil *Procs, as on one core, claims nothing
}

// The runtime's GOMAXPROCS follows the driver: one P after Calm calm
// ticks, every core again on a claim, and the default back on stop.
func TestStartProcsSetsGOMAXPROCS(t *testing.T) {
	def := defaultProcs(t)
	if def < 2 {
		t.Skip("one core: nothing to take back")
	}
	ctx := t.Context()
	g, stop, err := StartProcs(ctx, ProcsPolicy{Rise: 1e9, Fall: 1e9, Calm: 1, Wait: time.Hour, Queued: 1}, 10*time.Millisecond, nil)
	if err != nil {
		t.Skip(err) // not Linux
	}
	waitProcs(t, 1, "calm") // Fall is above any load: every tick is calm
	release := g.Claim()
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("claimed: GOMAXPROCS %d, want %d", got, def)
	}
	release()
	waitProcs(t, 1, "released")
	stop()
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("stopped: GOMAXPROCS %d, want %d", got, def)
	}
}

// On the process's real CPU clock: a calm process goes to one P, a busy
// one (a goroutine spinning, as validation would under a flood) takes
// every core back, and goes to one P again when the work stops.
func TestProcsFollowsTheProcessCPU(t *testing.T) {
	def := defaultProcs(t)
	if def < 2 {
		t.Skip("one core: nothing to take back")
	}
	_, stop, err := StartProcs(t.Context(), ProcsPolicy{Rise: 0.2, Fall: 0.1, Calm: 2, Wait: time.Hour, Queued: 1}, 100*time.Millisecond, nil)
	if err != nil {
		t.Skip(err) // not Linux
	}
	defer stop()
	waitProcs(t, 1, "calm")
	spin := make(chan struct{})
	done := make(chan struct{})
	stopSpin := sync.OnceFunc(func() { close(spin); <-done })
	defer stopSpin() // also when the test fails
	go func() {
		defer close(done)
		for x := uint64(1); ; x = x*6364136223846793005 + 1 {
			select {
			case <-spin:
				spun.Store(x)
				return
			default:
			}
		}
	}()
	waitProcs(t, def, "busy")
	stopSpin()
	waitProcs(t, 1, "calm again")
}

var spun atomic.Uint64

// On the runtime's real scheduling latencies: at one P, goroutines that
// queue to run take every core back, though the policy's CPU threshold
// is out of reach (as for a process that gets less CPU than it wants).
func TestProcsRisesWhenGoroutinesQueue(t *testing.T) {
	def := defaultProcs(t)
	if def < 2 {
		t.Skip("one core: nothing to take back")
	}
	p := DefaultProcsPolicy
	p.Rise, p.Fall, p.Calm = 1e9, 1e9, 2 // the CPU rule out of reach
	p.Sampled = 4                        // a tick a tenth of the default's
	_, stop, err := StartProcs(t.Context(), p, 100*time.Millisecond, nil)
	if err != nil {
		t.Skip(err) // not Linux
	}
	defer stop()
	waitProcs(t, 1, "calm")
	quit := make(chan struct{})
	var wg sync.WaitGroup
	stopWork := sync.OnceFunc(func() { close(quit); wg.Wait() })
	defer stopWork() // also when the test fails
	// Each works a millisecond, then queues behind the others.
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-quit:
					return
				default:
				}
				for end := time.Now().Add(time.Millisecond); time.Now().Before(end); {
				}
				runtime.Gosched()
			}
		}()
	}
	waitProcs(t, def, "goroutines queued")
	stopWork()
	waitProcs(t, 1, "calm again")
}

// waitProcs waits up to 20 s for GOMAXPROCS to be want.
func waitProcs(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for runtime.GOMAXPROCS(0) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: GOMAXPROCS %d, want %d", what, runtime.GOMAXPROCS(0), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
