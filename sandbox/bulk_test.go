package sandbox

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/protocol/spec"
	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
	"github.com/proofmesh/proofmesh/tasks"
)

// The bulk guest fills 32 MiB of its 32 MiB memory, over and over:
// 2.4-8 ms a fill measured here (4-14 GB/s, on 2 shared cores). Its fuel,
// 2 + 5 a turn, lasts bulkTurns fills: 12-40 s, far longer than the time
// limits of the tests below. Before the meter charged the bytes
// moved, its fuel checks reached refuel (its only safepoint) once per
// refuelChunk of fuel, never within that budget: a GC waited for the
// whole run, and so did the watchdog that enforces the time limit.
const (
	bulkFillPages = 512
	bulkTurns     = 5000
)

// bulkFillModule loops on memory.fill of its whole memory for ever.
func bulkFillModule() []byte {
	m := command(wt.Cat(
		wt.Loop,
		wt.I32Const(0), wt.I32Const(7), wt.I32Const(bulkFillPages<<16), wt.MemoryFill,
		wt.Br(0),
		wt.End,
		wt.End,
	))
	m.MemoryMin = bulkFillPages
	return m.Bytes()
}

// bulkLimits run bulkFillModule for bulkTurns fills at most.
func bulkLimits() Limits {
	lim := testLimits()
	lim.Fuel = 2 + 5*bulkTurns
	lim.MaxMemoryPages = bulkFillPages
	return lim
}

// startRun runs module in s on another goroutine and returns once the
// run holds its worker; the channel gets the result and when it came.
func startRun(t *testing.T, s *Sandbox, ctx context.Context, module []byte, lim Limits) <-chan runResult {
	t.Helper()
	if err := s.Compile(context.Background(), module); err != nil {
		t.Fatal(err)
	}
	ran := make(chan runResult, 1)
	go func() {
		_, st, err := s.Run(ctx, module, nil, lim)
		ran <- runResult{st, err, time.Now()}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if running, _ := s.Load(); running == 1 {
			return ran
		}
		if time.Now().After(deadline) {
			t.Fatal("the run did not start")
		}
		time.Sleep(time.Millisecond)
	}
}

// gcWhileGuestRuns runs a GC 200 ms into the run and fails the test
// unless it returned within a second, before the guest ended, and at
// least minLeft before it: a guest that offered Go no safepoint would
// make the GC wait for its end. It returns the run's result.
func gcWhileGuestRuns(t *testing.T, ran <-chan runResult, minLeft time.Duration) runResult {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // well inside the loop
	gcStart := time.Now()
	runtime.GC()
	gcEnd := time.Now()
	r := <-ran
	t.Logf("GC took %s while the guest ran; the run ended %s after GC returned (%v, %d fuel, %s)",
		gcEnd.Sub(gcStart), r.at.Sub(gcEnd), r.err, r.st.FuelUsed, r.st.Wall)
	if !gcEnd.Before(r.at) {
		t.Fatalf("runtime.GC returned %s after the guest ended: it waited for the guest", gcEnd.Sub(r.at))
	}
	if took := gcEnd.Sub(gcStart); took > time.Second {
		t.Fatalf("runtime.GC took %s while a guest ran", took)
	}
	if left := r.at.Sub(gcEnd); left < minLeft {
		t.Fatalf("the guest ended %s after GC returned: it did not run long enough to tell", left)
	}
	return r
}

type runResult struct {
	st  Stats
	err error
	at  time.Time
}

// TestGCDoesNotWaitForBulkGuest: a guest looping on memory.fill of 32
// MiB, one fuel each, lets a garbage collection through while it runs:
// its fills, charged by the bytes they move, call refuel every 4 MiB
// (meter.BulkBytesPerRefuel) and so before each fill. Without that
// charge runtime.GC returned only when the guest's fuel ran out (its
// time limit could not stop it: the watchdog waited for the GC too).
func TestGCDoesNotWaitForBulkGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a guest for 3 s")
	}
	s := newSandbox(t)
	lim := bulkLimits()
	lim.Timeout = 3 * time.Second
	r := gcWhileGuestRuns(t, startRun(t, s, context.Background(), bulkFillModule(), lim), 2*time.Second)
	if !errors.Is(r.err, ErrTimeout) {
		t.Fatalf("run: %v, want its time limit (its fuel lasts %d fills: raise bulkTurns if they take under 0.6 ms here)", r.err, bulkTurns)
	}
}

// TestBulkGuestStopsUnderGC: the same guest, while another goroutine
// asks for garbage collections without pause, is stopped by its time
// limit and by the cancellation of its context within a few seconds,
// where its fuel would last 15 s or more. Without the byte charge each
// GC waited for the guest, and the watchdog with it: only the fuel
// stopped the run.
func TestBulkGuestStopsUnderGC(t *testing.T) {
	if testing.Short() {
		t.Skip("runs guests for seconds")
	}
	s := newSandbox(t)
	stopGC := make(chan struct{})
	var gcs sync.WaitGroup
	gcs.Go(func() {
		for {
			select {
			case <-stopGC:
				return
			default:
				runtime.GC()
			}
		}
	})
	defer func() {
		close(stopGC)
		gcs.Wait()
	}()
	const limit, bound = time.Second, 5 * time.Second
	for _, how := range []string{"timeout", "cancel"} {
		lim := bulkLimits()
		ctx, cancel := context.WithCancel(context.Background())
		if how == "timeout" {
			lim.Timeout = limit
		} else {
			lim.Timeout = time.Minute
			time.AfterFunc(limit, cancel)
		}
		start := time.Now()
		ran := startRun(t, s, ctx, bulkFillModule(), lim)
		r := <-ran
		cancel()
		took := r.at.Sub(start)
		t.Logf("%s: stopped after %s (%v, %d fuel of %d)", how, took, r.err, r.st.FuelUsed, lim.Fuel)
		want := ErrTimeout
		if how == "cancel" {
			want = context.Canceled
		}
		if !errors.Is(r.err, want) {
			t.Fatalf("%s: err = %v, want %v", how, r.err, want)
		}
		if took > bound {
			t.Fatalf("%s: the run stopped %s after it started, its limit %s: the watchdog waited for the GCs", how, took, limit)
		}
	}
}

// bulkCountModule fills and copies n bytes turns times, then exits 0:
// fuel 4 + 14·turns, whatever n.
func bulkCountModule(n, turns int32) []byte {
	m := withLocals(command(wt.Cat(
		wt.I32Const(turns), wt.LocalSet(0),
		wt.Loop,
		wt.I32Const(0), wt.I32Const(7), wt.I32Const(n), wt.MemoryFill,
		wt.I32Const(n), wt.I32Const(0), wt.I32Const(n), wt.MemoryCopy,
		wt.LocalGet(0), wt.I32Const(1), wt.I32Sub, wt.LocalTee(0), wt.BrIf(0),
		wt.End,
		wt.End,
	)), 1, wt.I32)
	m.MemoryMin = uint32(max(1, 2*int64(n)>>16))
	return m.Bytes()
}

// TestBulkFuelUnchanged: charging the bytes that bulk instructions move
// changes no fuel figure. A loop of fills and copies costs the fuel of
// its instructions whether they move nothing or 8 MiB each (and so call
// refuel hundreds of times), with the budget granted in chunks or whole;
// the Go guests, which use memory.copy and memory.fill, spend the fuel
// they spent before the charge (measured at the commit before it).
func TestBulkFuelUnchanged(t *testing.T) {
	whole := newSandbox(t)
	whole.chunk = maxBudget // refuel only for the bytes
	chunked := newSandbox(t)
	lim := testLimits()
	const turns = 100
	for _, n := range []int32{0, 1000, 8 << 20} {
		for name, s := range map[string]*Sandbox{"whole": whole, "chunked": chunked} {
			_, st, err := s.Run(context.Background(), bulkCountModule(n, turns), nil, lim)
			if err != nil {
				t.Fatalf("n=%d, %s budget: %v", n, name, err)
			}
			if want := uint64(4 + 14*turns); st.FuelUsed != want {
				t.Errorf("n=%d, %s budget: %d fuel, want %d", n, name, st.FuelUsed, want)
			}
		}
	}
	if testing.Short() {
		return
	}
	for _, tc := range []struct {
		typeID, input string
		fuel          uint64
	}{
		{spec.TypeMiMCChain, `{"x":"12345678901234567890"}`, 187_135_095},
		{spec.TypeMLPInfer, `{"x":[1,-2,3,-4,5,-6,7,-8,9,-10,11,-12,13,-14,15,-16]}`, 27_446_305},
	} {
		wasm, _ := tasks.Module(tc.typeID)
		_, st, err := chunked.Run(context.Background(), wasm, []byte(tc.input), DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", tc.typeID, err)
		}
		if st.FuelUsed != tc.fuel {
			t.Errorf("%s: %d fuel, want %d", tc.typeID, st.FuelUsed, tc.fuel)
		}
	}
}
