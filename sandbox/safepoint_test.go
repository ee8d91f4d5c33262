package sandbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/proofmesh/proofmesh/sandbox/internal/meter"
)

// TestGCDoesNotWaitForGuest: a guest spinning in loop { br 0 }, which
// never calls the host, still lets a garbage collection through: its fuel
// checks call refuel, a Go function, at least every refuelChunk of fuel.
// (Before refuel, runtime.GC waited for the guest to end, seconds later:
// the Go runtime cannot preempt machine code.) The run is meant to last
// 3 s (its time limit; its fuel would last longer); GC must return long
// before it ends.
func TestGCDoesNotWaitForGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a guest for 3 s")
	}
	s := newSandbox(t)
	lim := testLimits()
	lim.Fuel = 20_000_000_000 // ≈ 10 s of loop { br 0 } at 2·10^9 fuel/s
	lim.Timeout = 3 * time.Second
	r := gcWhileGuestRuns(t, startRun(t, s, context.Background(), spinModule(), lim), time.Second)
	if !errors.Is(r.err, ErrTimeout) && !errors.Is(r.err, ErrFuelExhausted) {
		t.Fatalf("run: %v, want its time or fuel limit", r.err)
	}
}

// TestRefuelStopsWhereTheBudgetDoes: the sandbox's refuel, granting the
// budget a chunk at a time, lets a guest spend exactly the fuel, and
// stops it at exactly the check, that a budget set whole would: fuel
// figures do not depend on the chunk.
func TestRefuelStopsWhereTheBudgetDoes(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	if err := instantiateRefuel(ctx, r); err != nil {
		t.Fatal(err)
	}
	// countdown(n) loops n times: 2 fuel at entry (loop, end), 6 a turn.
	res, err := meter.Instrument(countdownLoop(), meter.Bounds{})
	if err != nil {
		t.Fatal(err)
	}
	mod, err := r.InstantiateWithConfig(ctx, res.Module, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	const n = 3_000_000 // 18·10^6 fuel: several chunks of refuelChunk
	exact := int64(2 + 6*n)
	for _, budget := range []int64{exact, exact + 1, exact - 1, exact / 3, 2, 1} {
		var spent []int64
		var errs []error
		for _, chunk := range []int64{maxBudget, refuelChunk, 1000, 1} {
			if chunk == 1 && budget > 1_000_000 {
				continue // a refuel at every check: slow
			}
			f, fctx := meteredFuel(ctx, mod, budget, chunk)
			_, err := mod.ExportedFunction("run").Call(fctx, n)
			spent = append(spent, int64(f.used.Get()))
			errs = append(errs, err)
			if budget >= exact {
				if err != nil || f.used.Get() != uint64(exact) {
					t.Fatalf("budget %d, chunk %d: %v, %d spent; want nil, %d", budget, chunk, err, f.used.Get(), exact)
				}
			} else if !errors.Is(err, errRefuelSpent) {
				t.Fatalf("budget %d, chunk %d: err = %v, want %v", budget, chunk, err, errRefuelSpent)
			}
			if chunk == refuelChunk && budget > refuelChunk && f.refuels < int(min(budget, exact)/refuelChunk) {
				t.Fatalf("budget %d: %d refuels", budget, f.refuels)
			}
		}
		for i := range spent {
			if spent[i] != spent[0] {
				t.Fatalf("budget %d: spent %v by chunk (%v): the chunk changed where the guest stopped", budget, spent, errs)
			}
		}
	}
}

// TestStopLandsThroughRefuel: the watchdog's stop, lowering the budget
// global under refuel's lock, ends a guest that refuel would otherwise
// refill, and refuel refills nothing after it.
func TestStopLandsThroughRefuel(t *testing.T) {
	s := newSandbox(t)
	lim := testLimits()
	lim.Fuel = 1 << 62
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Duration(1+time.Now().UnixNano()%5)*time.Millisecond, cancel)
		start := time.Now()
		_, _, err := s.Run(ctx, spinModule(), nil, lim)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("stopped after %s", took)
		}
	}
}
