package meter

import (
	"context"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"

	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
)

// Function indices of indexed(): two imports (env.k and env.add1), run,
// then fillers; function i >= 3 returns 3*i. Indices from 127 on take
// two bytes of LEB128, so renumbering 127 to 128 lengthens the code.
const (
	idxK    = 0
	idxAdd1 = 1
	idxRun  = 2
	idxLast = 131
)

// indexedWant is what run returns: the sum of what it calls.
const indexedWant = 3*3 + 1000 + 3*127 + 3*4 + 3*5 + // active segments, slots 0-3 and 9
	3*126 + 3*128 + // passive, by table.init
	3*129 + 3*130 + 3*131 + // declarative (ref.func in code) and a global's ref.func
	3*127 + 1000 + 6 // direct calls: a filler, env.k, env.add1(5)

// indexed is a module that refers to functions in every place an index
// can sit: call, ref.func in code, in a global's initializer and in
// element expressions, element segments of the eight encodings (active,
// passive, declarative; vectors of indices and of expressions), exports.
// Its function "run" calls every function so referred to and returns the
// sum: indexedWant.
func indexed() wt.Module {
	i32 := func(v int32) []byte { return wt.Cat(wt.I32Const(v), wt.End) }
	refFunc := func(i uint32) []byte { return wt.Cat(wt.RefFunc(i), wt.End) }
	callSlot := func(slot int32) []byte { // call_indirect type 0, table 0; add
		return wt.Cat(wt.I32Const(slot), []byte{0x11, 0x00, 0x00}, wt.I32Add)
	}
	tableSet := []byte{0x26, 0x00}
	tableInit := func(seg byte, slot int32) []byte { // one element to slot
		return wt.Cat(wt.I32Const(slot), wt.I32Const(0), wt.I32Const(1), []byte{0xfc, 12, seg, 0x00})
	}
	m := wt.Module{
		Types: []wt.Type{
			{Results: []byte{wt.I32}},                         // 0: [] -> [i32]
			{Params: []byte{wt.I32}, Results: []byte{wt.I32}}, // 1: [i32] -> [i32]
		},
		Imports: []wt.Import{
			{Module: "env", Name: "k", Type: 0},
			{Module: "env", Name: "add1", Type: 1},
		},
		TableMin: 16,
		Globals:  []wt.Global{{Type: 0x70, Init: refFunc(idxLast)}},
		Exports: []wt.Export{
			{Name: "run", Kind: wt.KindFunc, Index: idxRun},
			{Name: "last", Kind: wt.KindFunc, Index: idxLast},
			{Name: "k", Kind: wt.KindFunc, Index: idxK},
		},
		Elements: [][]byte{
			wt.Cat([]byte{0}, i32(0), []byte{2}, wt.U32(3), wt.U32(idxK)),      // slots 0, 1
			wt.Cat([]byte{1, 0x00, 1}, wt.U32(126)),                            // passive
			wt.Cat([]byte{2, 0}, i32(2), []byte{0x00, 1}, wt.U32(127)),         // slot 2
			wt.Cat([]byte{3, 0x00, 1}, wt.U32(129)),                            // declarative
			wt.Cat([]byte{4}, i32(3), []byte{1}, refFunc(4)),                   // slot 3
			wt.Cat([]byte{5, 0x70, 2}, refFunc(128), []byte{0xd0, 0x70, 0x0b}), // passive
			wt.Cat([]byte{6, 0}, i32(9), []byte{0x70, 1}, refFunc(5)),          // slot 9
			wt.Cat([]byte{7, 0x70, 1}, refFunc(130)),                           // declarative
		},
	}
	run := wt.Cat(
		wt.I32Const(0),
		callSlot(0), callSlot(1), callSlot(2), callSlot(3), callSlot(9),
		tableInit(1, 4), tableInit(5, 5),
		wt.I32Const(6), wt.RefFunc(129), tableSet,
		wt.I32Const(7), wt.RefFunc(130), tableSet,
		wt.I32Const(8), wt.GlobalGet(0), tableSet,
		callSlot(4), callSlot(5), callSlot(6), callSlot(7), callSlot(8),
		wt.Call(127), wt.I32Add,
		wt.Call(idxK), wt.I32Add,
		wt.I32Const(5), wt.Call(idxAdd1), wt.I32Add,
		wt.End,
	)
	m.Funcs = append(m.Funcs, wt.Func{Type: 0, Code: run})
	for i := idxRun + 1; i <= idxLast; i++ {
		m.Funcs = append(m.Funcs, wt.Func{Type: 0, Code: wt.Cat(wt.I32Const(int32(3*i)), wt.End)})
	}
	return m
}

// instantiateEnv instantiates the imports of indexed() in r.
func instantiateEnv(t testing.TB, r wazero.Runtime) {
	t.Helper()
	_, err := r.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithFunc(func() int32 { return 1000 }).Export("k").
		NewFunctionBuilder().WithFunc(func(x int32) int32 { return x + 1 }).Export("add1").
		Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
}

// TestFunctionIndicesRenumbered: the refuel import moves every defined
// function up by one index; a module that refers to functions everywhere
// it can still validates and computes the same after instrumentation,
// under the compiler and the interpreter.
func TestFunctionIndicesRenumbered(t *testing.T) {
	ctx := context.Background()
	wasm := indexed().Bytes()
	for name, cfg := range engines() {
		t.Run(name, func(t *testing.T) {
			r := newRuntime(t, cfg)
			defer r.Close(ctx)
			instantiateEnv(t, r)
			plain, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("plain"))
			if err != nil {
				t.Fatalf("uninstrumented module: %v", err)
			}
			if got, err := plain.ExportedFunction("run").Call(ctx); err != nil || int32(got[0]) != indexedWant {
				t.Fatalf("uninstrumented run = %v, %v; want %d", got, err, indexedWant)
			}
			mod, g := instantiate(t, r, wasm, 1<<40)
			if got, err := mod.ExportedFunction("run").Call(ctx); err != nil || int32(got[0]) != indexedWant {
				t.Fatalf("instrumented run = %v, %v; want %d", got, err, indexedWant)
			}
			if got, err := mod.ExportedFunction("last").Call(ctx); err != nil || got[0] != 3*idxLast {
				t.Fatalf("instrumented last = %v, %v; want %d", got, err, 3*idxLast)
			}
			if got, err := mod.ExportedFunction("k").Call(ctx); err != nil || got[0] != 1000 {
				t.Fatalf("instrumented k (an import) = %v, %v; want 1000", got, err)
			}
			// run and the 13 functions it calls, one entry check each;
			// call_indirect of slot 1 and the two direct imports charge
			// nothing more in the module.
			if g.spent() <= 0 {
				t.Fatalf("spent %d", g.spent())
			}
		})
	}
	res, err := Instrument(wasm, Bounds{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Imports) != 2 || res.Functions != idxLast-1 {
		t.Fatalf("Imports %v, Functions %d: the meter's import must not count", res.Imports, res.Functions)
	}
}

// TestImportsAddedWhereMissing: a module without a type section, an import
// section or a type [] -> [] gets them, in order.
func TestImportsAddedWhereMissing(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wazero.NewRuntimeConfig())
	defer r.Close(ctx)
	for name, m := range map[string]wt.Module{
		"no sections": {},
		"no empty type": {
			Types:   []wt.Type{{Results: []byte{wt.I64}}},
			Funcs:   []wt.Func{{Code: wt.Cat(wt.Loop, wt.End, wt.I64Const(9), wt.End)}},
			Exports: []wt.Export{{Name: "run", Kind: wt.KindFunc}},
		},
		"memory only": {HasMemory: true},
	} {
		res, err := Instrument(m.Bytes(), Bounds{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cm, err := r.CompileModule(ctx, res.Module)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		imps := cm.ImportedFunctions()
		if len(imps) != 1 {
			t.Fatalf("%s: %d imported functions", name, len(imps))
		}
		if mod, n, _ := imps[0].Import(); mod != RefuelModule || n != RefuelName ||
			len(imps[0].ParamTypes()) != 0 || len(imps[0].ResultTypes()) != 0 {
			t.Fatalf("%s: imports %s.%s %v -> %v", name, mod, n, imps[0].ParamTypes(), imps[0].ResultTypes())
		}
		if _, ok := cm.ExportedFunctions()["run"]; ok {
			mod, _ := instantiate(t, r, m.Bytes(), 100)
			if got, err := mod.ExportedFunction("run").Call(ctx); err != nil || got[0] != 9 {
				t.Fatalf("%s: run = %v, %v", name, got, err)
			}
		}
	}
}

// TestRefuelInChunksIsExact: a host that grants the budget a chunk at a
// time, through refuel, sees the same fuel spent and the same stopping
// point as one that sets the whole budget at once.
func TestRefuelInChunksIsExact(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wazero.NewRuntimeConfig())
	defer r.Close(ctx)
	const n = 1000
	exact := int64(3 + 8*n)
	for _, budget := range []int64{exact, exact - 1, exact / 2, 1 << 40} {
		for _, chunk := range []int64{1, 7, 64, 1000, 1 << 30} {
			mod, g := instantiate(t, r, countdown().Bytes(), min(budget, chunk))
			cctx := context.WithValue(context.WithValue(ctx, budgetKey{}, budget), chunkKey{}, chunk)
			_, err := mod.ExportedFunction("run").Call(cctx, n)
			if budget >= exact {
				if err != nil || g.spent() != exact {
					t.Fatalf("budget %d, chunk %d: %v, spent %d; want nil, %d", budget, chunk, err, g.spent(), exact)
				}
				continue
			}
			if !errors.Is(err, errOutOfFuel) {
				t.Fatalf("budget %d, chunk %d: err = %v, want %v", budget, chunk, err, errOutOfFuel)
			}
			// Stopped at the first check past the budget, as when the
			// budget is set at once: the entry (3) and k loops (8 each).
			want := 3 + 8*((budget-3)/8+1)
			if budget < 3 {
				want = 3
			}
			if g.spent() != want {
				t.Fatalf("budget %d, chunk %d: spent %d, want %d", budget, chunk, g.spent(), want)
			}
		}
	}
}

// TestRenumberRefusals: indices that do not exist are refused (once
// renumbered they could name a real function), and so is a module that
// imports the meter's own name.
func TestRenumberRefusals(t *testing.T) {
	base := indexed()
	tests := map[string]func(m *wt.Module){
		"call past the end": func(m *wt.Module) {
			m.Funcs[0].Code = wt.Cat(wt.Call(idxLast+1), wt.End)
		},
		"ref.func past the end": func(m *wt.Module) {
			m.Funcs[0].Code = wt.Cat(wt.RefFunc(idxLast+1), wt.Drop, wt.I32Const(0), wt.End)
		},
		"element index past the end": func(m *wt.Module) {
			m.Elements = [][]byte{wt.Cat([]byte{1, 0x00, 1}, wt.U32(idxLast+1))}
		},
		"element expression past the end": func(m *wt.Module) {
			m.Elements = [][]byte{wt.Cat([]byte{5, 0x70, 1}, wt.RefFunc(idxLast+1), wt.End)}
		},
		"global past the end": func(m *wt.Module) {
			m.Globals = []wt.Global{{Type: 0x70, Init: wt.Cat(wt.RefFunc(idxLast+1), wt.End)}}
		},
		"export past the end": func(m *wt.Module) {
			m.Exports = append(m.Exports, wt.Export{Name: "x", Kind: wt.KindFunc, Index: idxLast + 1})
		},
		"max index": func(m *wt.Module) {
			m.Funcs[0].Code = wt.Cat(wt.Call(1<<32-1), wt.End)
		},
	}
	for name, change := range tests {
		m := base
		m.Funcs = append([]wt.Func(nil), base.Funcs...)
		change(&m)
		if _, err := Instrument(m.Bytes(), Bounds{}); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	m := countdown()
	m.Types = append(m.Types, wt.Type{})
	m.Imports = []wt.Import{{Module: RefuelModule, Name: RefuelName, Type: 1}}
	m.Exports[0].Index = 1
	if _, err := Instrument(m.Bytes(), Bounds{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("module importing %s.%s: err = %v, want ErrUnsupported", RefuelModule, RefuelName, err)
	}
}
