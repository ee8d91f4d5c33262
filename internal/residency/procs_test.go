package residency

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestProcsPolicyStep(t *testing.T) {
	p := ProcsPolicy{Rise: 0.5, Fall: 0.25, Calm: 3}
	lean, full := ProcsState{}, ProcsState{Full: true}
	for _, tc := range []struct {
		name      string
		s         ProcsState
		computing bool
		used      float64
		want      ProcsState
	}{
		{"idle stays lean", lean, false, 0.01, lean},
		{"below rise stays lean", lean, false, 0.49, lean},
		{"at rise takes every core", lean, false, 0.5, full},
		{"a claim takes every core", lean, true, 0, full},
		{"busy full stays, calm reset", ProcsState{Full: true, Calm: 2}, false, 0.25, full},
		{"between fall and rise stays full", full, false, 0.4, full},
		{"a calm tick counts", full, false, 0.1, ProcsState{Full: true, Calm: 1}},
		{"the last calm tick returns to one P", ProcsState{Full: true, Calm: 2}, false, 0.1, lean},
		{"a claim resets the count", ProcsState{Full: true, Calm: 2}, true, 0, full},
	} {
		if got := p.Step(tc.s, tc.computing, tc.used); got != tc.want {
			t.Errorf("%s: Step(%+v, %v, %v) = %+v, want %+v", tc.name, tc.s, tc.computing, tc.used, got, tc.want)
		}
	}
}

// fakeProcs is a Procs on a CPU clock and a GOMAXPROCS the test moves.
type fakeProcs struct {
	*Procs
	cpu  time.Duration
	now  time.Time
	full bool
	sets int
}

func newFakeProcs(t *testing.T, p ProcsPolicy) *fakeProcs {
	t.Helper()
	f := &fakeProcs{now: time.Unix(1000, 0), full: true}
	g, err := newProcs(p, nil, func() (time.Duration, error) { return f.cpu, nil }, func(full bool) { f.full = full; f.sets++ }, f.now)
	if err != nil {
		t.Fatal(err)
	}
	f.Procs = g
	return f
}

// second advances one tick in which the process used `cores` cores.
func (f *fakeProcs) second(cores float64) {
	f.now = f.now.Add(time.Second)
	f.cpu += time.Duration(cores * float64(time.Second))
	f.tick(f.now)
}

func (f *fakeProcs) calm(t *testing.T, ticks int) {
	t.Helper()
	for range ticks {
		f.second(0.01)
	}
}

func TestProcsDriver(t *testing.T) {
	f := newFakeProcs(t, ProcsPolicy{Rise: 0.5, Fall: 0.25, Calm: 3})
	if !f.full || !f.Full() {
		t.Fatal("start-up should keep every core")
	}
	f.calm(t, 2)
	if !f.full {
		t.Fatal("one P before Calm ticks")
	}
	f.calm(t, 1)
	if f.full || f.Full() {
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

	// A CPU clock that fails keeps the state and the measure spans both.
	sets := f.sets
	f.Procs.cpu = func() (time.Duration, error) { return 0, ErrUnsupported }
	f.tick(f.now.Add(time.Second))
	if f.sets != sets || !f.full {
		t.Fatal("a failed CPU reading changed the state")
	}
}

func TestProcsNilClaims(t *testing.T) {
	var g *Procs
	g.Claim()() // a nil *Procs, as on one core, claims nothing
}

// The runtime's GOMAXPROCS follows the driver: one P after Calm calm
// ticks, every core again on a claim, and the default back on stop.
func TestStartProcsSetsGOMAXPROCS(t *testing.T) {
	def := runtime.GOMAXPROCS(0)
	if def < 2 {
		t.Skip("one core: nothing to take back")
	}
	defer runtime.SetDefaultGOMAXPROCS()
	ctx := t.Context()
	g, stop, err := StartProcs(ctx, ProcsPolicy{Rise: 1e9, Fall: 1e9, Calm: 1}, 10*time.Millisecond, nil)
	if err != nil {
		t.Skip(err) // not Linux
	}
	waitProcs := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for runtime.GOMAXPROCS(0) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: GOMAXPROCS %d, want %d", what, runtime.GOMAXPROCS(0), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitProcs(1, "calm") // Fall is above any load: every tick is calm
	release := g.Claim()
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("claimed: GOMAXPROCS %d, want %d", got, def)
	}
	release()
	waitProcs(1, "released")
	stop()
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("stopped: GOMAXPROCS %d, want %d", got, def)
	}
}

// On the process's real CPU clock: a calm process goes to one P, a busy
// one (a goroutine spinning, as validation would under a flood) takes
// every core back, and goes to one P again when the work stops.
func TestProcsFollowsTheProcessCPU(t *testing.T) {
	def := runtime.GOMAXPROCS(0)
	if def < 2 {
		t.Skip("one core: nothing to take back")
	}
	defer runtime.SetDefaultGOMAXPROCS()
	_, stop, err := StartProcs(t.Context(), ProcsPolicy{Rise: 0.2, Fall: 0.1, Calm: 2}, 100*time.Millisecond, nil)
	if err != nil {
		t.Skip(err) // not Linux
	}
	defer stop()
	wait := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for runtime.GOMAXPROCS(0) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: GOMAXPROCS %d, want %d", what, runtime.GOMAXPROCS(0), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait(1, "calm")
	spin := make(chan struct{})
	done := make(chan struct{})
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
	wait(def, "busy")
	close(spin)
	<-done
	wait(1, "calm again")
}

var spun atomic.Uint64
