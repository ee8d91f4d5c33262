package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr/mimc"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/proofmesh/proofmesh/protocol/spec"
	"github.com/proofmesh/proofmesh/sandbox/internal/meter"
	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
	"github.com/proofmesh/proofmesh/tasks"
)

// countdownLoop is func(n i32) that loops n times: the cost of a loop
// back edge, plain and metered.
func countdownLoop() []byte {
	return wt.Module{
		Types: []wt.Type{{Params: []byte{wt.I32}}},
		Funcs: []wt.Func{{Code: wt.Cat(
			wt.Loop,
			wt.LocalGet(0), wt.I32Const(1), wt.I32Sub, wt.LocalTee(0), wt.BrIf(0),
			wt.End, wt.End,
		)}},
		Exports: []wt.Export{{Name: "run", Kind: wt.KindFunc}},
	}.Bytes()
}

// meteredFuel returns the fuel of an instance of a metered module in a
// runtime that provides refuel (instantiateRefuel), with budget granted
// chunk at a time, and the context to call it in.
func meteredFuel(ctx context.Context, mod api.Module, budget, chunk int64) (*fuel, context.Context) {
	f := &fuel{
		used:   mod.ExportedGlobal(meter.FuelUsedExport).(api.MutableGlobal),
		limit:  mod.ExportedGlobal(meter.FuelLimitExport).(api.MutableGlobal),
		budget: budget, chunk: chunk,
	}
	f.used.Set(0)
	f.limit.Set(uint64(min(budget, chunk)))
	return f, context.WithValue(ctx, fuelKey{}, f)
}

// BenchmarkLoopMetering runs a 2·10^7-iteration loop four ways, side by
// side: plain, metered by package meter as the sandbox does (the budget
// granted refuelChunk at a time, through refuel), metered with the whole
// budget at once (refuel never called: the meter before refuel), and
// plain under WithCloseOnContextDone (the alternative the sandbox does
// not take).
func BenchmarkLoopMetering(b *testing.B) {
	const n = 20_000_000
	ctx := context.Background()
	plainRT := wazero.NewRuntime(ctx)
	defer plainRT.Close(ctx)
	if err := instantiateRefuel(ctx, plainRT); err != nil {
		b.Fatal(err)
	}
	doneRT := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true))
	defer doneRT.Close(ctx)

	wasm := countdownLoop()
	res, err := meter.Instrument(wasm, meter.Bounds{})
	if err != nil {
		b.Fatal(err)
	}
	plain, err := plainRT.Instantiate(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	metered, err := plainRT.InstantiateWithConfig(ctx, res.Module, wazero.NewModuleConfig().WithName("metered"))
	if err != nil {
		b.Fatal(err)
	}
	done, err := doneRT.Instantiate(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var tPlain, tMetered, tWhole, tDone time.Duration
	refuels := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := plain.ExportedFunction("run").Call(ctx, n); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		f, fctx := meteredFuel(ctx, metered, 1<<62, refuelChunk)
		if _, err := metered.ExportedFunction("run").Call(fctx, n); err != nil {
			b.Fatal(err)
		}
		refuels += f.refuels
		t2 := time.Now()
		_, fctx = meteredFuel(ctx, metered, 1<<62, 1<<62)
		if _, err := metered.ExportedFunction("run").Call(fctx, n); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if _, err := done.ExportedFunction("run").Call(cctx, n); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		tPlain += t1.Sub(t0)
		tMetered += t2.Sub(t1)
		tWhole += t3.Sub(t2)
		tDone += t4.Sub(t3)
	}
	iters := float64(b.N) * n
	b.ReportMetric(float64(tPlain.Nanoseconds())/iters, "plain-ns/iter")
	b.ReportMetric(float64(tMetered.Nanoseconds())/iters, "metered-ns/iter")
	b.ReportMetric(float64(tWhole.Nanoseconds())/iters, "unchunked-ns/iter")
	b.ReportMetric(float64(tDone.Nanoseconds())/iters, "ctxdone-ns/iter")
	b.ReportMetric(float64(tMetered)/float64(tPlain), "metered/plain")
	b.ReportMetric(float64(tWhole)/float64(tPlain), "unchunked/plain")
	b.ReportMetric(float64(tDone)/float64(tPlain), "ctxdone/plain")
	b.ReportMetric(float64(refuels)/float64(b.N), "refuels/op")
}

// BenchmarkRefuelInterval runs the tightest loop there is, loop { br 0 }
// (2 fuel an iteration, no host call), for 2^28 fuel, and reports how much
// guest time passes between two calls of refuel: how long a stop of the
// world can wait for a guest, and what a call of refuel costs.
func BenchmarkRefuelInterval(b *testing.B) {
	const budget = 1 << 28
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	if err := instantiateRefuel(ctx, r); err != nil {
		b.Fatal(err)
	}
	spin := wt.Module{
		Types:   []wt.Type{{}},
		Funcs:   []wt.Func{{Code: wt.Cat(wt.Loop, wt.Br(0), wt.End, wt.End)}},
		Exports: []wt.Export{{Name: "run", Kind: wt.KindFunc}},
	}
	res, err := meter.Instrument(spin.Bytes(), meter.Bounds{})
	if err != nil {
		b.Fatal(err)
	}
	mod, err := r.InstantiateWithConfig(ctx, res.Module, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		b.Fatal(err)
	}
	run := func(chunk int64) (time.Duration, int) {
		f, fctx := meteredFuel(ctx, mod, budget, chunk)
		t0 := time.Now()
		if _, err := mod.ExportedFunction("run").Call(fctx); !errors.Is(err, errRefuelSpent) {
			b.Fatalf("err = %v, want %v", err, errRefuelSpent)
		}
		return time.Since(t0), f.refuels
	}
	// Also with a chunk of 2^10 fuel and with the whole budget at once:
	// the difference over the refuels is what one costs.
	var took, tSmall, tWhole time.Duration
	refuels, small := 0, 0
	for b.Loop() {
		d, n := run(refuelChunk)
		took, refuels = took+d, refuels+n
		d, n = run(1 << 10)
		tSmall, small = tSmall+d, small+n
		d, _ = run(budget)
		tWhole += d
	}
	b.ReportMetric(float64(took.Microseconds())/1000/float64(refuels), "ms/refuel")
	b.ReportMetric(float64(budget)*float64(b.N)/float64(took.Nanoseconds()), "Gfuel/s")
	b.ReportMetric(float64(refuels)/float64(b.N), "refuels/op")
	b.ReportMetric(float64((tSmall-tWhole).Nanoseconds())/float64(small), "ns/refuel-call")
}

// BenchmarkBulkMetering runs a loop of memory.fill, 1 GiB in all (2^23
// fills at most), in fills of 1 B to 32 MiB, plain and metered as the sandbox
// does (fuel granted refuelChunk at a time, bulk instructions charged to
// the bytes moved), side by side, and reports the cost of the meter
// (metered/plain) and the guest time between two calls of refuel, on
// average and at most (max-gap-ms, from the call to the first refuel to
// the last refuel to the return): how long a stop of the world can wait
// for a guest that moves memory.
func BenchmarkBulkMetering(b *testing.B) {
	const pages = 1024 // 64 MiB
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	var last time.Time
	var maxGap time.Duration
	gap := func(now time.Time) {
		maxGap = max(maxGap, now.Sub(last))
		last = now
	}
	_, err := r.NewHostModuleBuilder(meter.RefuelModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			gap(time.Now())
			refuel(ctx, m, stack)
		}), nil, nil).
		Export(meter.RefuelName).Instantiate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	fill := wt.Module{
		Types: []wt.Type{{Params: []byte{wt.I32, wt.I32}}}, MemoryMin: pages,
		Funcs: []wt.Func{{Code: wt.Cat(
			wt.Loop,
			wt.I32Const(0), wt.I32Const(7), wt.LocalGet(0), wt.MemoryFill,
			wt.LocalGet(1), wt.I32Const(1), wt.I32Sub, wt.LocalTee(1), wt.BrIf(0),
			wt.End, wt.End,
		)}},
		Exports: []wt.Export{{Name: "run", Kind: wt.KindFunc}},
	}
	wasm := fill.Bytes()
	res, err := meter.Instrument(wasm, meter.Bounds{})
	if err != nil {
		b.Fatal(err)
	}
	plain, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("plain"))
	if err != nil {
		b.Fatal(err)
	}
	metered, err := r.InstantiateWithConfig(ctx, res.Module, wazero.NewModuleConfig().WithName("metered"))
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []uint64{1, 16, 32, 256, 64 << 10, 32 << 20} {
		b.Run(fmt.Sprintf("fill=%d", n), func(b *testing.B) {
			turns := min(uint64(1<<30)/n, 1<<23)
			var tPlain, tMetered time.Duration
			refuels := 0
			maxGap = 0
			i := 0
			for b.Loop() {
				runPlain := func() {
					t0 := time.Now()
					if _, err := plain.ExportedFunction("run").Call(ctx, n, turns); err != nil {
						b.Fatal(err)
					}
					tPlain += time.Since(t0)
				}
				runMetered := func() {
					f, fctx := meteredFuel(ctx, metered, 1<<62, refuelChunk)
					last = time.Now()
					t0 := last
					if _, err := metered.ExportedFunction("run").Call(fctx, n, turns); err != nil {
						b.Fatal(err)
					}
					gap(time.Now())
					tMetered += time.Since(t0)
					refuels += f.refuels
				}
				if i%2 == 0 { // take turns at going first: the machine is shared
					runPlain()
					runMetered()
				} else {
					runMetered()
					runPlain()
				}
				i++
			}
			fills := float64(b.N) * float64(turns)
			b.ReportMetric(float64(tPlain.Nanoseconds())/fills, "plain-ns/fill")
			b.ReportMetric(float64(tMetered.Nanoseconds())/fills, "metered-ns/fill")
			b.ReportMetric(float64(tMetered)/float64(tPlain), "metered/plain")
			b.ReportMetric(float64(refuels)/float64(b.N), "refuels/op")
			b.ReportMetric(float64(tMetered.Microseconds())/1000/float64(refuels+b.N), "ms/refuel")
			b.ReportMetric(float64(maxGap.Microseconds())/1000, "max-gap-ms")
		})
	}
}

// BenchmarkGuestMetering runs the mimc.chain.v1 guest (a real Go
// program) plain and metered, side by side, in fresh instances: metered
// as the sandbox does (the budget granted refuelChunk at a time), and with
// the whole budget at once (refuel never called: the meter before refuel).
func BenchmarkGuestMetering(b *testing.B) {
	ctx := context.Background()
	wasm, _ := tasks.Module(spec.TypeMiMCChain)
	input := []byte(`{"x":"12345678901234567890"}`)

	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(benchCache(b)))
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	plain, err := r.CompileModule(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	s := newSandbox(b, func(c *Config) { c.CacheDir = benchCacheDir(b) })
	if err := s.Compile(ctx, wasm); err != nil {
		b.Fatal(err)
	}
	whole := newSandbox(b, func(c *Config) { c.CacheDir = benchCacheDir(b) })
	whole.chunk = maxBudget // the whole budget at once: refuel never called
	if err := whole.Compile(ctx, wasm); err != nil {
		b.Fatal(err)
	}
	var tPlain, tMetered, tWhole time.Duration
	var fuel uint64
	var want []byte
	runPlain := func() {
		var out bytes.Buffer
		mod, err := r.InstantiateModule(ctx, plain, wazero.NewModuleConfig().WithName("").
			WithStdin(bytes.NewReader(input)).WithStdout(&out).WithArgs("task"))
		if err != nil {
			b.Fatal(err)
		}
		mod.Close(ctx)
		want = out.Bytes()
	}
	runIn := func(s *Sandbox) func() {
		return func() {
			got, st, err := s.Run(ctx, wasm, input, DefaultLimits())
			if err != nil {
				b.Fatal(err)
			}
			if want != nil && !bytes.Equal(got, want) {
				b.Fatalf("plain %s, metered %s", want, got)
			}
			if fuel != 0 && st.FuelUsed != fuel {
				b.Fatalf("%d fuel, then %d", fuel, st.FuelUsed)
			}
			fuel = st.FuelUsed
		}
	}
	// The three take turns at going first: the machine is shared.
	runs := []func(){runPlain, runIn(s), runIn(whole)}
	times := []*time.Duration{&tPlain, &tMetered, &tWhole}
	i := 0
	for b.Loop() {
		for k := range runs {
			j := (i + k) % len(runs)
			t0 := time.Now()
			runs[j]()
			*times[j] += time.Since(t0)
		}
		i++
	}
	b.ReportMetric(float64(tPlain.Microseconds())/float64(b.N)/1000, "plain-ms/op")
	b.ReportMetric(float64(tMetered.Microseconds())/float64(b.N)/1000, "metered-ms/op")
	b.ReportMetric(float64(tWhole.Microseconds())/float64(b.N)/1000, "unchunked-ms/op")
	b.ReportMetric(float64(tMetered)/float64(tPlain), "metered/plain")
	b.ReportMetric(float64(tWhole)/float64(tPlain), "unchunked/plain")
	b.ReportMetric(float64(fuel), "fuel/op")
	// The guest time between two refuels, from its rate of fuel.
	b.ReportMetric(float64(refuelChunk)*float64(tMetered.Nanoseconds())/float64(b.N)/float64(fuel)/1e6, "ms/refuel")
}

// BenchmarkCompile compiles the mimc.chain.v1 guest cold (no cache), from
// the on-disk cache (a new sandbox on the same directory) and from the
// in-memory cache, side by side.
func BenchmarkCompile(b *testing.B) {
	ctx := context.Background()
	wasm, _ := tasks.Module(spec.TypeMiMCChain)
	var tCold, tDisk, tMem time.Duration
	for b.Loop() {
		dir := b.TempDir()
		compile := func(s *Sandbox) time.Duration {
			t0 := time.Now()
			if err := s.Compile(ctx, wasm); err != nil {
				b.Fatal(err)
			}
			return time.Since(t0)
		}
		s1, err := New(ctx, Config{CacheDir: dir, Workers: 1, CachedModules: 1})
		if err != nil {
			b.Fatal(err)
		}
		tCold += compile(s1)
		tMem += compile(s1)
		s1.Close(ctx)
		s2, err := New(ctx, Config{CacheDir: dir, Workers: 1, CachedModules: 1})
		if err != nil {
			b.Fatal(err)
		}
		tDisk += compile(s2)
		s2.Close(ctx)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tCold.Milliseconds())/n, "cold-ms")
	b.ReportMetric(float64(tDisk.Milliseconds())/n, "disk-cache-ms")
	b.ReportMetric(float64(tMem.Microseconds())/n, "memory-cache-µs")
	b.ReportMetric(float64(tCold)/float64(tDisk), "cold/disk")
}

// BenchmarkGuests runs each built-in guest in the sandbox (instantiate,
// Go runtime start, JSON in and out, compute) and the same computation in
// native Go (JSON in and out, compute), side by side.
func BenchmarkGuests(b *testing.B) {
	ctx := context.Background()
	s := newSandbox(b, func(c *Config) { c.CacheDir = benchCacheDir(b) })
	cases := []struct {
		typeID string
		input  string
		native func([]byte) []byte
	}{
		{spec.TypeMiMCChain, `{"x":"12345678901234567890"}`, nativeMiMC},
		{spec.TypeMLPInfer, `{"x":[1,-2,3,-4,5,-6,7,-8,9,-10,11,-12,13,-14,15,-16]}`, nativeMLP},
	}
	for _, tc := range cases {
		b.Run(tc.typeID, func(b *testing.B) {
			wasm, _ := tasks.Module(tc.typeID)
			if err := s.Compile(ctx, wasm); err != nil {
				b.Fatal(err)
			}
			var tBox, tNative time.Duration
			var st Stats
			for b.Loop() {
				t0 := time.Now()
				out, stats, err := s.Run(ctx, wasm, []byte(tc.input), DefaultLimits())
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				var want []byte
				for range 100 {
					want = tc.native([]byte(tc.input))
				}
				t2 := time.Now()
				if !bytes.Equal(out, want) {
					b.Fatalf("sandbox %s, native %s", out, want)
				}
				tBox += t1.Sub(t0)
				tNative += t2.Sub(t1) / 100
				st = stats
			}
			n := float64(b.N)
			b.ReportMetric(float64(tBox.Microseconds())/n/1000, "sandbox-ms/op")
			b.ReportMetric(float64(tNative.Nanoseconds())/n/1000, "native-µs/op")
			b.ReportMetric(float64(tBox)/float64(tNative), "sandbox/native")
			b.ReportMetric(float64(st.FuelUsed), "fuel/op")
			b.ReportMetric(float64(st.PeakMemoryPages), "pages")
		})
	}
}

// BenchmarkTimeoutStop measures how long after its time limit a runaway
// loop is stopped by the watchdog.
func BenchmarkTimeoutStop(b *testing.B) {
	ctx := context.Background()
	s := newSandbox(b)
	lim := DefaultLimits()
	lim.Fuel = 1 << 62
	lim.Timeout = 20 * time.Millisecond
	module := spinModule()
	if err := s.Compile(ctx, module); err != nil {
		b.Fatal(err)
	}
	var late time.Duration
	for b.Loop() {
		_, st, err := s.Run(ctx, module, nil, lim)
		if err == nil {
			b.Fatal("runaway loop returned")
		}
		late += st.Wall - lim.Timeout
	}
	b.ReportMetric(float64(late.Microseconds())/float64(b.N), "µs-late")
}

func nativeMiMC(input []byte) []byte {
	var in struct{ X string }
	if err := json.Unmarshal(input, &in); err != nil {
		panic(err)
	}
	x, _ := new(big.Int).SetString(in.X, 10)
	var e fr.Element
	e.SetBigInt(x)
	for range spec.MiMCChainLength {
		h := mimc.NewMiMC()
		bs := e.Bytes()
		_, _ = h.Write(bs[:])
		e.SetBytes(h.Sum(nil))
	}
	out, _ := json.Marshal(struct {
		Y string `json:"y"`
	}{e.BigInt(new(big.Int)).String()})
	return out
}

func nativeMLP(input []byte) []byte {
	var in struct{ X []int64 }
	if err := json.Unmarshal(input, &in); err != nil {
		panic(err)
	}
	var x [spec.MLPInputs]int64
	copy(x[:], in.X)
	scores, class := spec.MLPInfer(x)
	out, _ := json.Marshal(struct {
		Scores [spec.MLPOutputs]int64 `json:"scores"`
		Class  int                    `json:"class"`
	}{scores, class})
	return out
}

// benchCacheDir is a per-user compilation cache shared between benchmark
// runs, so that only BenchmarkCompile pays for cold compilation.
func benchCacheDir(b *testing.B) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return b.TempDir()
	}
	dir = filepath.Join(dir, "proofmesh", "test-wazero-cache")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return b.TempDir()
	}
	return dir
}

func benchCache(b *testing.B) wazero.CompilationCache {
	c, err := wazero.NewCompilationCacheWithDir(benchCacheDir(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// BenchmarkCompileBomb times, side by side, refusing the compile
// bomb (200,000 nested blocks, 600 KB) by the structure bounds, checking
// the bounds of the mimc guest (3.8 MB), and what wazero would spend on
// bombs the bounds refuse: 10,000 nested blocks, and 12,000 ifs in a row
// (control weight 1.44·10^8, past the default 10^8).
func BenchmarkCompileBomb(b *testing.B) {
	ctx := context.Background()
	bounds := DefaultConfig().bounds()
	bomb := nestedBlocks(200_000)
	mimcWasm, _ := tasks.Module(spec.TypeMiMCChain)
	deep, chain := nestedBlocks(10_000), ifChain(12_000)
	var tRefuse, tMiMC, tDeep, tChain time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := meter.Instrument(bomb, bounds); !errors.Is(err, meter.ErrBound) {
			b.Fatalf("bomb: %v", err)
		}
		t1 := time.Now()
		if _, err := meter.Instrument(mimcWasm, bounds); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		tRefuse += t1.Sub(t0)
		tMiMC += t2.Sub(t1)
		for _, c := range []struct {
			wasm []byte
			t    *time.Duration
		}{{deep, &tDeep}, {chain, &tChain}} {
			r := wazero.NewRuntime(ctx)
			t3 := time.Now()
			if _, err := r.CompileModule(ctx, c.wasm); err != nil {
				b.Fatal(err)
			}
			*c.t += time.Since(t3)
			r.Close(ctx)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(tRefuse.Microseconds())/n/1000, "refuse-200k-nested-ms")
	b.ReportMetric(float64(tMiMC.Microseconds())/n/1000, "check-mimc-ms")
	b.ReportMetric(float64(tDeep.Microseconds())/n/1000, "wazero-10k-nested-ms")
	b.ReportMetric(float64(tChain.Microseconds())/n/1000, "wazero-12k-ifs-ms")
}
