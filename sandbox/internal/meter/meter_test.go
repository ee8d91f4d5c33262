package meter

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
)

// countdown is func(n i64) i64 that loops n times (n >= 1) and returns 0.
// Its entry region costs 3 (loop, local.get, end) and its loop 8.
func countdown() wt.Module {
	return wt.Module{
		Types: []wt.Type{{Params: []byte{wt.I64}, Results: []byte{wt.I64}}},
		Funcs: []wt.Func{{Code: wt.Cat(
			wt.Loop,
			wt.LocalGet(0), wt.I64Const(1), wt.I64Sub, wt.LocalTee(0),
			wt.I64Eqz, wt.I32Eqz, wt.BrIf(0),
			wt.End,
			wt.LocalGet(0),
			wt.End,
		)}},
		Exports: []wt.Export{{Name: "run", Kind: wt.KindFunc, Index: 0}},
	}
}

// errOutOfFuel is what the tests' refuel ends a run with.
var errOutOfFuel = errors.New("test: out of fuel")

// budgetKey, in the context of a call, holds a budget (int64) above the
// budget global and chunkKey the fuel the tests' refuel grants at a time.
type budgetKey struct{}
type chunkKey struct{}

// refuelsKey, in the context of a call, holds an *int that the tests'
// refuel increments at each call.
type refuelsKey struct{}

// refuel is the tests' host side of the meter, the sandbox's policy in
// short: with a budget in the context and the fuel spent within it, it
// raises the budget global by a chunk (to the budget at most); otherwise
// it ends the run.
func refuel(ctx context.Context, mod api.Module, _ []uint64) {
	if n, ok := ctx.Value(refuelsKey{}).(*int); ok {
		*n++
	}
	used := int64(mod.ExportedGlobal(FuelUsedExport).Get())
	budget, ok := ctx.Value(budgetKey{}).(int64)
	if !ok || used > budget {
		panic(errOutOfFuel)
	}
	chunk := ctx.Value(chunkKey{}).(int64)
	mod.ExportedGlobal(FuelLimitExport).(api.MutableGlobal).Set(uint64(min(budget, used+chunk)))
}

// newRuntime returns a runtime that provides the meter's import.
// engines are wazero's two engines, by name: a rewritten module must
// behave alike on both.
func engines() map[string]wazero.RuntimeConfig {
	return map[string]wazero.RuntimeConfig{
		"compiler":    wazero.NewRuntimeConfig(),
		"interpreter": wazero.NewRuntimeConfigInterpreter(),
	}
}

func newRuntime(t testing.TB, cfg wazero.RuntimeConfig) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, cfg)
	_, err := r.NewHostModuleBuilder(RefuelModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(refuel), nil, nil).Export(RefuelName).
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// meterGlobals are an instance's fuel globals.
type meterGlobals struct{ used, limit api.MutableGlobal }

func (g meterGlobals) spent() int64 { return int64(g.used.Get()) }

// instantiate compiles and instantiates an instrumented module without
// running a start function, with a budget of fuel.
func instantiate(t testing.TB, r wazero.Runtime, wasm []byte, fuel int64) (api.Module, meterGlobals) {
	t.Helper()
	ctx := context.Background()
	res, err := Instrument(wasm, Bounds{})
	if err != nil {
		t.Fatalf("Instrument: %v", err)
	}
	cm, err := r.CompileModule(ctx, res.Module)
	if err != nil {
		t.Fatalf("compile instrumented module: %v", err)
	}
	mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	var g meterGlobals
	var ok1, ok2 bool
	g.used, ok1 = mod.ExportedGlobal(FuelUsedExport).(api.MutableGlobal)
	g.limit, ok2 = mod.ExportedGlobal(FuelLimitExport).(api.MutableGlobal)
	if !ok1 || !ok2 {
		t.Fatalf("no mutable globals %s, %s", FuelUsedExport, FuelLimitExport)
	}
	if g.used.Get() != 0 || g.limit.Get() != 0 {
		t.Fatalf("fuel globals start at %d, %d; want 0, 0", g.used.Get(), g.limit.Get())
	}
	g.limit.Set(uint64(fuel))
	return mod, g
}

func TestFuelIsExactAndDeterministic(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wazero.NewRuntimeConfig())
	defer r.Close(ctx)
	for _, n := range []int64{1, 2, 10, 1000} {
		const budget = 1 << 40
		mod, g := instantiate(t, r, countdown().Bytes(), budget)
		out, err := mod.ExportedFunction("run").Call(ctx, uint64(n))
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if out[0] != 0 {
			t.Fatalf("n=%d: returned %d", n, out[0])
		}
		if used, want := g.spent(), 3+8*n; used != want {
			t.Errorf("n=%d: used %d fuel, want %d", n, used, want)
		}
	}
}

func TestFuelExhaustionTraps(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wazero.NewRuntimeConfig())
	defer r.Close(ctx)
	// Budget for 10 iterations exactly, then one too few.
	mod, g := instantiate(t, r, countdown().Bytes(), 3+8*10)
	if _, err := mod.ExportedFunction("run").Call(ctx, 10); err != nil {
		t.Fatalf("exact budget: %v", err)
	}
	if g.spent() != 3+8*10 {
		t.Fatalf("exact budget: %d spent", g.spent())
	}
	mod, g = instantiate(t, r, countdown().Bytes(), 3+8*10-1)
	_, err := mod.ExportedFunction("run").Call(ctx, 10)
	if !errors.Is(err, errOutOfFuel) {
		t.Fatalf("budget one short: err = %v, want the refuel import's %v", err, errOutOfFuel)
	}
	if g.spent() <= 3+8*10-1 {
		t.Fatalf("budget one short: %d spent, want more than the budget", g.spent())
	}

	// A runaway loop ends too.
	runaway := wt.Module{
		Types:   []wt.Type{{}},
		Funcs:   []wt.Func{{Code: wt.Cat(wt.Loop, wt.Br(0), wt.End, wt.End)}},
		Exports: []wt.Export{{Name: "run", Kind: wt.KindFunc}},
	}
	mod, g = instantiate(t, r, runaway.Bytes(), 1_000_000)
	if _, err := mod.ExportedFunction("run").Call(ctx); err == nil {
		t.Fatal("runaway loop returned")
	}
	if g.spent() <= 1_000_000 {
		t.Fatalf("runaway loop: %d spent, want more than the budget", g.spent())
	}

	// So does unbounded recursion, metered at function entry.
	recurse := wt.Module{
		Types:   []wt.Type{{}},
		Funcs:   []wt.Func{{Code: wt.Cat(wt.Call(0), wt.End)}},
		Exports: []wt.Export{{Name: "run", Kind: wt.KindFunc}},
	}
	mod, g = instantiate(t, r, recurse.Bytes(), 10_000)
	if _, err := mod.ExportedFunction("run").Call(ctx); err == nil {
		t.Fatal("recursion returned")
	}
	if g.spent() <= 10_000 {
		t.Fatalf("recursion: %d spent, want more than the budget", g.spent())
	}
	// Lowering the budget below what is spent stops a module at its next
	// check: how the host stops a run from outside.
	mod, g = instantiate(t, r, countdown().Bytes(), 1<<40)
	g.limit.Set(^uint64(0)) // -1
	if _, err := mod.ExportedFunction("run").Call(ctx, 10); err == nil {
		t.Fatal("ran with a budget of -1")
	}
}

func TestStartSectionBecomesExport(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wazero.NewRuntimeConfig())
	defer r.Close(ctx)
	start := uint32(0)
	m := wt.Module{
		Types:   []wt.Type{{}},
		Globals: []wt.Global{{Type: wt.I32, Mutable: true, Init: wt.Cat(wt.I32Const(0), wt.End)}},
		Funcs:   []wt.Func{{Code: wt.Cat(wt.I32Const(7), wt.GlobalSet(0), wt.End)}},
		Exports: []wt.Export{{Name: "g", Kind: wt.KindGlobal, Index: 0}},
		Start:   &start,
	}
	res, err := Instrument(m.Bytes(), Bounds{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.HasStart {
		t.Fatal("HasStart = false")
	}
	mod, _ := instantiate(t, r, m.Bytes(), 100)
	if v := mod.ExportedGlobal("g").Get(); v != 0 {
		t.Fatalf("start function ran during instantiation: g = %d", v)
	}
	if _, err := mod.ExportedFunction(StartExport).Call(ctx); err != nil {
		t.Fatal(err)
	}
	if v := mod.ExportedGlobal("g").Get(); v != 7 {
		t.Fatalf("after %s: g = %d, want 7", StartExport, v)
	}
}

func TestRefused(t *testing.T) {
	base := countdown()
	withCode := func(code ...[]byte) []byte {
		m := base
		m.Funcs = []wt.Func{{Code: wt.Cat(code...)}}
		return m.Bytes()
	}
	valid := base.Bytes()
	tests := []struct {
		name string
		wasm []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"not wasm", []byte("hello, world"), ErrMalformed},
		{"version 2", append([]byte("\x00asm\x02\x00\x00\x00"), valid[8:]...), ErrMalformed},
		{"truncated", valid[:len(valid)-3], ErrMalformed},
		{"section past the end", append(append([]byte(nil), valid...), 0x01, 0x10, 0x00), ErrMalformed},
		{"unknown section", append(append([]byte(nil), valid...), 0x42, 0x00), ErrMalformed},
		{"sections out of order", append(append([]byte(nil), valid...), 0x01, 0x01, 0x00), ErrMalformed},
		{"over-long LEB", append([]byte("\x00asm\x01\x00\x00\x00"), 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), ErrMalformed},
		{"body ends inside a block", withCode(wt.Block, wt.End), ErrMalformed},
		{"bytes after the body", withCode(wt.End, wt.Nop), ErrMalformed},
		{"global beyond the module's", withCode(wt.GlobalGet(0), wt.Drop, wt.I64Const(0), wt.End), ErrMalformed},
		{"global.set of the fuel index", withCode(wt.I64Const(0), wt.GlobalSet(0), wt.I64Const(0), wt.End), ErrMalformed},
		{"global.set of the budget index", withCode(wt.I64Const(1<<60), wt.GlobalSet(1), wt.I64Const(0), wt.End), ErrMalformed},
		{"atomics", withCode([]byte{0xfe, 0x03, 0x00}, wt.I64Const(0), wt.End), ErrUnsupported},
		{"tail call", withCode(wt.I64Const(0), []byte{0x12, 0x00}, wt.End), ErrUnsupported},
		{"exceptions", withCode([]byte{0x06, 0x40}, wt.End, wt.I64Const(0), wt.End), ErrUnsupported},
		{"relaxed simd", withCode([]byte{0xfd, 0x80, 0x02}, wt.End), ErrUnsupported},
		{"reserved simd", withCode([]byte{0xfd, 0x9a, 0x01}, wt.End), ErrUnsupported},
		{"unknown 0xfc", withCode([]byte{0xfc, 18}, wt.End), ErrUnsupported},
		{"typed reference block", withCode([]byte{0x02, 0x63, 0x70}, wt.End, wt.I64Const(0), wt.End), ErrUnsupported},
		{"multi-memory memarg", withCode(wt.I32Const(0), []byte{0x28, 0x42, 0x01, 0x00}, wt.Drop, wt.I64Const(0), wt.End), ErrUnsupported},
		{"memory index 1", withCode(wt.MemorySize[:1], []byte{0x01}, wt.Drop, wt.I64Const(0), wt.End), ErrUnsupported},
		{"reserved export name", func() []byte {
			m := base
			m.Exports = append(m.Exports, wt.Export{Name: FuelLimitExport, Kind: wt.KindFunc})
			return m.Bytes()
		}(), ErrUnsupported},
		{"export of the fuel global index", func() []byte {
			m := base
			m.Exports = append(m.Exports, wt.Export{Name: "fuel", Kind: wt.KindGlobal, Index: 0})
			return m.Bytes()
		}(), ErrMalformed},
		{"two memories", append([]byte("\x00asm\x01\x00\x00\x00"), 0x05, 0x05, 0x02, 0x00, 0x01, 0x00, 0x01), ErrUnsupported},
		{"shared memory", append([]byte("\x00asm\x01\x00\x00\x00"), 0x05, 0x04, 0x01, 0x03, 0x01, 0x01), ErrUnsupported},
		{"tag section", append([]byte("\x00asm\x01\x00\x00\x00"), 0x0d, 0x01, 0x00), ErrUnsupported},
		{"bodies and declarations disagree", func() []byte {
			m := base
			m.Funcs = append(m.Funcs, m.Funcs[0])
			b := m.Bytes()
			// Drop the second declaration: function section says 1.
			i := bytes.Index(b, []byte{0x03, 0x03, 0x02, 0x00, 0x00})
			return append(append(append([]byte(nil), b[:i]...), 0x03, 0x02, 0x01, 0x00), b[i+5:]...)
		}(), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Instrument(tc.wasm, Bounds{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if res != nil {
				t.Fatal("result with an error")
			}
		})
	}
}

func TestLEB(t *testing.T) {
	tests := []struct {
		in   []byte
		bits uint
		sign bool
		want int64
		ok   bool
	}{
		{[]byte{0x00}, 32, false, 0, true},
		{[]byte{0xe5, 0x8e, 0x26}, 32, false, 624485, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 32, false, 0xffffffff, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x1f}, 32, false, 0, false}, // 33 bits
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 32, false, 0, false},
		{[]byte{0x80}, 32, false, 0, false}, // truncated
		{[]byte{0x7f}, 32, true, -1, true},
		{[]byte{0xc0, 0xbb, 0x78}, 32, true, -123456, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x07}, 32, true, 0x7fffffff, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x78}, 32, true, -0x80000000, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x70}, 32, true, 0, false}, // 33 bits
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 33, true, 0xffffffff, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f}, 64, true, -1 << 63, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}, 64, true, 1<<63 - 1, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 64, true, 0, false},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 64, true, 0, false},
	}
	for _, tc := range tests {
		r := &reader{b: tc.in}
		var got int64
		var err error
		if tc.sign {
			got, err = r.sleb(tc.bits)
		} else {
			var u uint64
			u, err = r.uleb(tc.bits)
			got = int64(u)
		}
		if (err == nil) != tc.ok || (tc.ok && (got != tc.want || !r.done())) {
			t.Errorf("% x (%d bits, signed %v) = %d, %v; want %d, ok %v", tc.in, tc.bits, tc.sign, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: error %v is not ErrMalformed", tc.in, err)
		}
	}
	for _, v := range []int64{0, 1, -1, 63, 64, -64, -65, 1 << 40, -1 << 63, 1<<63 - 1} {
		r := &reader{b: appendS64(nil, v)}
		if got, err := r.sleb(64); err != nil || got != v || !r.done() {
			t.Errorf("appendS64(%d) reads back as %d, %v", v, got, err)
		}
	}
}

// TestGoGuests instruments the built-in guests (Go, GOOS=wasip1): every
// instruction the Go toolchain emits must be understood, and the result
// must compile.
func TestGoGuests(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	for _, name := range []string{"mimc.wasm", "mlp.wasm"} {
		wasm, err := os.ReadFile(filepath.Join("..", "..", "..", "tasks", name))
		if err != nil {
			t.Fatal(err)
		}
		res, err := Instrument(wasm, Bounds{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Functions < 100 || res.Loops < 100 || !res.HasMemory || res.HasStart {
			t.Errorf("%s: %d functions, %d loops, memory %v, start %v", name, res.Functions, res.Loops, res.HasMemory, res.HasStart)
		}
		for _, im := range res.Imports {
			if im.Module != "wasi_snapshot_preview1" || im.Kind != KindFunc {
				t.Errorf("%s: import %s.%s kind %d", name, im.Module, im.Name, im.Kind)
			}
		}
		if _, err := r.CompileModule(ctx, res.Module); err != nil {
			t.Fatalf("%s: instrumented module does not compile: %v", name, err)
		}
		t.Logf("%s: %d functions, %d loops, %d bulk, %d -> %d bytes; nesting %d, locals %d, largest body %d bytes, %d instructions",
			name, res.Functions, res.Loops, res.Bulk, len(wasm), len(res.Module), res.MaxNesting, res.MaxLocals, res.MaxBodyBytes, res.Instructions)
	}
}
