package meter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/tetratelabs/wazero"

	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
)

// kitchenSink is a module whose function "run" returns 50 after using an
// instruction of every immediate shape the meter decodes: block types by
// index (with parameters, on a loop too), SIMD constants, shuffles, lanes
// and memory lanes, bulk memory, br_table, typed select, reference types,
// tables, call_indirect, sign extension and saturating truncation.
func kitchenSink() wt.Module {
	v128 := func(a, b, c, d uint32) []byte {
		out := []byte{0xfd, 0x0c}
		for _, v := range []uint32{a, b, c, d} {
			out = binary.LittleEndian.AppendUint32(out, v)
		}
		return out
	}
	identity := []byte{0xfd, 0x0d}
	for i := range 16 {
		identity = append(identity, byte(i))
	}
	add := wt.Cat(wt.LocalGet(1), wt.I32Add, wt.LocalSet(1)) // acc += top
	f32 := binary.LittleEndian.AppendUint32([]byte{0x43}, math.Float32bits(1e10))
	return wt.Module{
		Types: []wt.Type{
			{Results: []byte{wt.I32}},                         // 0: [] -> [i32]
			{Params: []byte{wt.I32}, Results: []byte{wt.I32}}, // 1: [i32] -> [i32]
		},
		TableMin:  1,
		MemoryMin: 1,
		Exports: []wt.Export{
			{Name: "run", Kind: wt.KindFunc, Index: 0},
			{Name: "three", Kind: wt.KindFunc, Index: 1},
		},
		Funcs: []wt.Func{{
			Type:   0,
			Locals: []byte{3, 1, 0x7b, 1, wt.I32, 1, wt.I32}, // v128 $0, i32 $1 (acc), i32 $2
			Code: wt.Cat(
				wt.I32Const(5), []byte{0x02, 0x01}, wt.I32Const(1), wt.I32Add, wt.End, wt.LocalSet(1), // 6
				v128(1, 2, 3, 4), v128(9, 9, 9, 9), identity, wt.LocalTee(0),
				[]byte{0xfd, 0x1b, 0x02}, add, // +3 = 9
				wt.I32Const(0), wt.LocalGet(0), []byte{0xfd, 0x0b, 0x04, 0x00}, // v128.store
				wt.I32Const(0), wt.LocalGet(0), []byte{0xfd, 0x56, 0x02, 0x04, 0x00}, // v128.load32_lane offset 4 lane 0
				[]byte{0xfd, 0x1b, 0x00}, add, // +2 = 11
				wt.I32Const(100), wt.I32Const(7), wt.I32Const(10), []byte{0xfc, 0x0b, 0x00}, // memory.fill
				wt.I32Const(200), wt.I32Const(100), wt.I32Const(10), []byte{0xfc, 0x0a, 0x00, 0x00}, // memory.copy
				wt.I32Const(205), []byte{0x2d, 0x00, 0x00}, add, // +7 = 18
				wt.Block, wt.Block, wt.I32Const(1), []byte{0x0e, 0x02, 0x00, 0x01, 0x01}, wt.End, wt.Unreachable, wt.End,
				wt.I32Const(10), wt.I32Const(20), wt.I32Const(0), []byte{0x1c, 0x01, wt.I32}, add, // +20 = 38
				[]byte{0xd0, 0x70, 0xd1}, add, // +1 = 39
				[]byte{0xd2, 0x00, 0xd1}, wt.Drop,
				wt.I32Const(0), []byte{0xd2, 0x01, 0x26, 0x00}, // table.set 0 (ref.func 1)
				wt.I32Const(0), []byte{0x11, 0x00, 0x00}, add, // call_indirect: +3 = 42
				[]byte{0xfc, 0x10, 0x00}, add, // table.size: +1 = 43
				wt.I32Const(0), []byte{0x03, 0x01}, wt.I32Const(1), wt.I32Add, wt.LocalTee(2),
				wt.LocalGet(2), wt.I32Const(5), []byte{0x49}, wt.BrIf(0), wt.End, add, // +5 = 48
				wt.I32Const(0xff), []byte{0xc0}, add, // -1 = 47
				f32, []byte{0xfc, 0x00}, wt.I32Const(math.MaxInt32), []byte{0x46}, add, // +1 = 48
				wt.MemorySize, add, // +1 = 49
				wt.I32Const(0), wt.MemoryGrow, add, // +1 = 50
				wt.LocalGet(1), wt.End,
			),
		}, {
			Type: 0,
			Code: wt.Cat(wt.I32Const(3), wt.End),
		}},
	}
}

func TestKitchenSinkRunsTheSame(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range engines() {
		t.Run(name, func(t *testing.T) {
			r := newRuntime(t, cfg)
			defer r.Close(ctx)
			wasm := kitchenSink().Bytes()
			plain, err := r.Instantiate(ctx, wasm)
			if err != nil {
				t.Fatalf("uninstrumented module: %v", err)
			}
			want, err := plain.ExportedFunction("run").Call(ctx)
			if err != nil || want[0] != 50 {
				t.Fatalf("uninstrumented run = %v, %v; want 50", want, err)
			}
			mod, g := instantiate(t, r, wasm, 1000)
			got, err := mod.ExportedFunction("run").Call(ctx)
			if err != nil || got[0] != 50 {
				t.Fatalf("instrumented run = %v, %v; want 50", got, err)
			}
			if used := g.spent(); used <= 0 || used > 200 {
				t.Errorf("used %d fuel", used)
			}
		})
	}
}

// FuzzInstrument feeds the meter arbitrary bytes. It must not panic, must
// classify every refusal, must refuse a module exactly when it passes a
// structure bound (checkBounds), and must agree with wazero's validator on what
// it accepts: the instrumented module is valid exactly when the original
// is (without its custom sections, which the meter drops), and then
// imports the meter's function after the module's own. (Refused inputs are not given to wazero: its decoder sizes tables by
// the counts a module declares, which is why the meter checks them all.)
func FuzzInstrument(f *testing.F) {
	start := uint32(0)
	withStart := wt.Module{
		Types: []wt.Type{{}}, Funcs: []wt.Func{{Code: wt.Cat(wt.Nop, wt.End)}}, Start: &start,
		HasMemory: true, Data: []wt.Data{{Offset: 8, Bytes: []byte("hi")}},
	}
	nested := wt.Module{Types: []wt.Type{{}}, Funcs: []wt.Func{{Code: wt.Cat(
		bytes.Repeat(wt.Block, 20), wt.Loop, wt.I32Const(0), wt.If, wt.Nop, wt.Else, wt.End, wt.End, bytes.Repeat(wt.End, 21),
	)}}}
	// A bulk instruction in dead code, whose operands the stack's
	// polymorphism provides, and in a function with parameters and no
	// locals: the scratch local's index follows the parameters.
	deadBulk := wt.Module{
		Types: []wt.Type{{Params: []byte{wt.I64, wt.I32}}}, HasMemory: true,
		Funcs: []wt.Func{{Code: wt.Cat(
			wt.I32Const(0), wt.I32Const(0), wt.LocalGet(1), wt.MemoryFill,
			wt.Unreachable, wt.MemoryCopy, wt.End,
		)}},
	}
	tables := tableGrow(wt.Table(0), wt.Table(1, 1<<20), wt.Table(2, 3))
	for _, m := range []wt.Module{countdown(), kitchenSink(), withStart, nested, indexed(), bulkLoop(), deadBulk, tables} {
		f.Add(m.Bytes())
	}
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))

	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { r.Close(ctx) })
	f.Fuzz(func(t *testing.T, wasm []byte) {
		res, err := Instrument(wasm, Bounds{})
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		checkBounds(t, wasm, res)
		orig, origErr := r.CompileModule(ctx, withoutCustomSections(wasm))
		if origErr == nil {
			defer orig.Close(ctx)
		}
		inst, instErr := r.CompileModule(ctx, res.Module)
		if instErr == nil {
			defer inst.Close(ctx)
		}
		if (origErr == nil) != (instErr == nil) {
			t.Fatalf("original: %v; instrumented: %v", origErr, instErr)
		}
		checkTables(t, r, wasm, res, origErr)
		if instErr == nil {
			// The meter's import comes after the module's own.
			imps := inst.ImportedFunctions()
			if mod, name, _ := imps[len(imps)-1].Import(); mod != RefuelModule || name != RefuelName {
				t.Fatalf("last imported function %s.%s, want %s.%s", mod, name, RefuelModule, RefuelName)
			}
			if want := countImportedFuncs(res) + 1; len(imps) != want {
				t.Fatalf("%d imported functions, want %d", len(imps), want)
			}
		}
	})
}

// checkBounds checks the structure bounds against the figures measured
// without bounds: a module is refused with ErrBound exactly when it
// passes a bound, for bounds at, and just below, its own figures.
func checkBounds(t *testing.T, wasm []byte, res *Result) {
	funcs := res.Functions + countImportedFuncs(res)
	at := Bounds{
		MaxNesting: res.MaxNesting, MaxFunctions: funcs, MaxLocals: res.MaxLocals, MaxBodyBytes: res.MaxBodyBytes,
		MaxInstructions: res.Instructions, MaxControlWeight: res.ControlWeight,
		MaxTables: res.Tables, MaxTableEntries: res.MaxTableMin,
	}
	if _, err := Instrument(wasm, at.zeroToOne()); err != nil {
		t.Fatalf("refused at its own figures %+v: %v", at, err)
	}
	for i := range at.fields() {
		if *at.fields()[i] < 2 {
			continue // a bound of 0 is no bound
		}
		below := at.zeroToOne()
		*below.fields()[i]--
		if _, err := Instrument(wasm, below); !errors.Is(err, ErrBound) {
			t.Fatalf("bound %d one below the module's figure (%+v): err = %v, want ErrBound", i, below, err)
		}
	}
}

// fuzzTableBound is the MaxTableEntries of FuzzInstrument.
const fuzzTableBound = 1 << 16

// checkTables checks a module instrumented under a bound on table
// entries: refused exactly when a table's minimum is above it; otherwise
// every table it defines has a maximum within the bound, and it compiles
// exactly when the original does.
func checkTables(t *testing.T, r wazero.Runtime, wasm []byte, free *Result, origErr error) {
	ctx := context.Background()
	res, err := Instrument(wasm, Bounds{MaxTableEntries: fuzzTableBound})
	if free.MaxTableMin > fuzzTableBound {
		if !errors.Is(err, ErrBound) {
			t.Fatalf("a table of minimum %d under a bound of %d: err = %v, want ErrBound", free.MaxTableMin, fuzzTableBound, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("refused under a table bound it is within: %v", err)
	}
	for i, l := range definedTables(t, res.Module) {
		if !l.hasMax || l.max > fuzzTableBound {
			t.Fatalf("defined table %d has limits %+v, want a maximum within %d", i, l, fuzzTableBound)
		}
	}
	cm, err := r.CompileModule(ctx, res.Module)
	if err == nil {
		cm.Close(ctx)
	}
	if (origErr == nil) != (err == nil) {
		t.Fatalf("original: %v; instrumented with bounded tables: %v", origErr, err)
	}
}

// fields lists the bounds, for tests.
func (b *Bounds) fields() []*int {
	return []*int{&b.MaxNesting, &b.MaxFunctions, &b.MaxLocals, &b.MaxBodyBytes, &b.MaxInstructions, &b.MaxControlWeight,
		&b.MaxTables, &b.MaxTableEntries}
}

// zeroToOne turns zero figures into bounds of 1 (zero would be no bound).
func (b Bounds) zeroToOne() Bounds {
	for _, f := range b.fields() {
		if *f == 0 {
			*f = 1
		}
	}
	return b
}

func countImportedFuncs(res *Result) int {
	n := 0
	for _, im := range res.Imports {
		if im.Kind == KindFunc {
			n++
		}
	}
	return n
}

// withoutCustomSections returns a well-formed module without its custom
// sections.
func withoutCustomSections(wasm []byte) []byte {
	out := append([]byte(nil), wasm[:len(header)]...)
	r := &reader{b: wasm, off: len(header)}
	for !r.done() {
		from := r.off
		id, _ := r.byte()
		size, _ := r.u32()
		if _, err := r.bytes(int(size)); err != nil {
			panic(err) // Instrument accepted the module
		}
		if id != secCustom {
			out = append(out, wasm[from:r.off]...)
		}
	}
	return out
}
