package meter

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
)

// tableLimit is the limits of one table of a module.
type tableLimit struct {
	min, max uint32
	hasMax   bool
}

// definedTables returns the limits of the tables a well-formed module
// defines (its table section).
func definedTables(t testing.TB, wasm []byte) []tableLimit {
	t.Helper()
	r := &reader{b: wasm, off: len(header)}
	for !r.done() {
		id, _ := r.byte()
		size, _ := r.u32()
		content, err := r.bytes(int(size))
		if err != nil {
			t.Fatalf("section %d: %v", id, err)
		}
		if id != secTable {
			continue
		}
		sr := &reader{b: content}
		n, _ := sr.u32()
		var out []tableLimit
		for range n {
			if err := readRefType(sr); err != nil {
				t.Fatal(err)
			}
			var l tableLimit
			if l.min, l.max, l.hasMax, err = readLimits(sr); err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
		}
		if !sr.done() {
			t.Fatalf("table section has %d trailing bytes", len(sr.b)-sr.off)
		}
		return out
	}
	return nil
}

// tableGrow is a module whose function "grow" (i32) -> i32 runs
// table.grow of table 0 by its argument and returns the result, and
// whose "fill" (i32) fills the first n entries of table 0 with null.
func tableGrow(tables ...[]byte) wt.Module {
	return wt.Module{
		Types:  []wt.Type{{Params: []byte{wt.I32}, Results: []byte{wt.I32}}, {Params: []byte{wt.I32}}},
		Tables: tables,
		Funcs: []wt.Func{
			{Type: 0, Code: wt.Cat(wt.RefNull, wt.LocalGet(0), wt.TableGrow, wt.End)},
			{Type: 1, Code: wt.Cat(wt.I32Const(0), wt.RefNull, wt.LocalGet(0), wt.TableFill, wt.End)},
		},
		Exports: []wt.Export{{Name: "grow", Kind: wt.KindFunc, Index: 0}, {Name: "fill", Kind: wt.KindFunc, Index: 1}},
	}
}

// TestTablesBounded: Instrument gives every defined table the smaller of
// its declared maximum and MaxTableEntries, keeps a lower one, and
// refuses a minimum above the bound, naming the table, the minimum and
// the limit.
func TestTablesBounded(t *testing.T) {
	const bound = 1 << 16
	b := Bounds{MaxTableEntries: bound}
	tests := []struct {
		name  string
		table []byte
		want  tableLimit
	}{
		{"no maximum", wt.Table(0), tableLimit{0, bound, true}},
		{"no maximum, a minimum", wt.Table(100), tableLimit{100, bound, true}},
		{"maximum above the bound", wt.Table(3, 1<<31), tableLimit{3, bound, true}},
		{"maximum 2^32-1", wt.Table(0, 1<<32-1), tableLimit{0, bound, true}},
		{"maximum below the bound", wt.Table(3, 10), tableLimit{3, 10, true}},
		{"maximum at the bound", wt.Table(bound, bound), tableLimit{bound, bound, true}},
		{"minimum at the bound", wt.Table(bound), tableLimit{bound, bound, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Twice: the bound applies to every table, and section sizes
			// hold when the maximum's LEB grows (no maximum: 0 bytes to 3).
			res, err := Instrument(tableGrow(tc.table, tc.table).Bytes(), b)
			if err != nil {
				t.Fatal(err)
			}
			got := definedTables(t, res.Module)
			if len(got) != 2 || got[0] != tc.want || got[1] != tc.want {
				t.Fatalf("tables %+v, want 2 of %+v", got, tc.want)
			}
			if res.Tables != 2 {
				t.Errorf("Result.Tables = %d, want 2", res.Tables)
			}
			ctx := context.Background()
			r := newRuntime(t, wazero.NewRuntimeConfigInterpreter())
			defer r.Close(ctx)
			if _, err := r.CompileModule(ctx, res.Module); err != nil {
				t.Fatalf("instrumented module does not compile: %v", err)
			}
		})
	}

	t.Run("no bound", func(t *testing.T) {
		res, err := Instrument(tableGrow(wt.Table(0)).Bytes(), Bounds{})
		if err != nil {
			t.Fatal(err)
		}
		if got := definedTables(t, res.Module); len(got) != 1 || got[0] != (tableLimit{}) {
			t.Fatalf("tables %+v, want one without a maximum", got)
		}
	})

	for _, tc := range []struct {
		name   string
		tables [][]byte
		msg    string
	}{
		{"minimum above the bound", [][]byte{wt.Table(bound + 1)}, "table 0 has a minimum of 65537 entries, limit 65536"},
		{"second table's minimum", [][]byte{wt.Table(1), wt.Table(1<<32-1, 1<<32-1)}, "table 1 has a minimum of 4294967295 entries, limit 65536"},
		{"too many tables", [][]byte{wt.Table(0), wt.Table(0), wt.Table(0)}, "3 tables (0 imported), limit 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := b
			b.MaxTables = 2
			res, err := Instrument(tableGrow(tc.tables...).Bytes(), b)
			if !errors.Is(err, ErrBound) || res != nil {
				t.Fatalf("err = %v, want ErrBound", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %q, want it to say %q", err, tc.msg)
			}
		})
	}
}

// TestImportedTablesBounded: an imported table is not rewritten (its
// provider bounds it) but counts as a table, and its minimum is bounded.
func TestImportedTablesBounded(t *testing.T) {
	module := func(limits ...byte) []byte {
		imp := wt.Cat(wt.Name("env"), wt.Name("t"), []byte{KindTable}, []byte{0x70}, limits)
		sec := wt.Cat(wt.U32(1), imp)
		return wt.Cat([]byte(header), []byte{secImport}, wt.U32(uint32(len(sec))), sec)
	}
	res, err := Instrument(module(0x00, 0x00), Bounds{MaxTableEntries: 10, MaxTables: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tables != 1 || len(res.Imports) != 1 || res.Imports[0].Kind != KindTable {
		t.Fatalf("tables %d, imports %+v", res.Tables, res.Imports)
	}
	if _, err := Instrument(module(append([]byte{0x00}, wt.U32(11)...)...), Bounds{MaxTableEntries: 10}); !errors.Is(err, ErrBound) ||
		!strings.Contains(err.Error(), "table 0 has a minimum of 11 entries, limit 10") {
		t.Fatalf("imported table of 11 entries: err = %v, want ErrBound", err)
	}
	// 64-bit tables (table64, flags 0x04 and 0x05) and shared limits are
	// beyond WebAssembly 2.0.
	for _, flag := range []byte{0x02, 0x03, 0x04, 0x05} {
		if _, err := Instrument(module(flag, 0x00, 0x00), Bounds{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("imported table with limits flag %#x: err = %v, want ErrUnsupported", flag, err)
		}
		m := tableGrow()
		m.Tables = [][]byte{{0x70, flag, 0x00, 0x00}}
		if _, err := Instrument(m.Bytes(), Bounds{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("table with limits flag %#x: err = %v, want ErrUnsupported", flag, err)
		}
	}
}

// TestTableGrowStopsAtBound: the bounded table's grow returns -1 past the
// bound instead of allocating, and a fill of the whole table works.
func TestTableGrowStopsAtBound(t *testing.T) {
	const bound = 1 << 16
	ctx := context.Background()
	for _, cfg := range []wazero.RuntimeConfig{wazero.NewRuntimeConfigInterpreter(), wazero.NewRuntimeConfigCompiler()} {
		r := newRuntime(t, cfg)
		res, err := Instrument(tableGrow(wt.Table(0)).Bytes(), Bounds{MaxTableEntries: bound})
		if err != nil {
			t.Fatal(err)
		}
		cm, err := r.CompileModule(ctx, res.Module)
		if err != nil {
			t.Fatal(err)
		}
		mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.WithValue(context.WithValue(ctx, budgetKey{}, int64(1<<40)), chunkKey{}, int64(1<<40))
		grow := mod.ExportedFunction("grow")
		for _, step := range []struct{ delta, want uint32 }{
			{400_000_000, 1<<32 - 1}, {bound + 1, 1<<32 - 1}, {bound - 1, 0}, {2, 1<<32 - 1}, {1, bound - 1}, {1, 1<<32 - 1},
		} {
			out, err := grow.Call(ctx, uint64(step.delta))
			if err != nil {
				t.Fatal(err)
			}
			if uint32(out[0]) != step.want {
				t.Fatalf("table.grow %d = %d, want %d", step.delta, int32(out[0]), int32(step.want))
			}
		}
		if _, err := mod.ExportedFunction("fill").Call(ctx, bound); err != nil {
			t.Fatalf("fill of the whole table: %v", err)
		}
		r.Close(ctx)
	}
}

// TestTooManyImportedTables: imported tables count toward MaxTables.
func TestTooManyImportedTables(t *testing.T) {
	m := tableGrow(wt.Table(0))
	for range 3 {
		m.Imports = append(m.Imports, wt.Import{Module: "env", Name: "t", Table: wt.Table(0)})
	}
	_, err := Instrument(m.Bytes(), Bounds{MaxTables: 2})
	if !errors.Is(err, ErrBound) || !strings.Contains(err.Error(), "imports more tables than the limit, 2") {
		t.Fatalf("err = %v, want ErrBound naming the limit", err)
	}
	_, err = Instrument(m.Bytes(), Bounds{MaxTables: 3})
	if !errors.Is(err, ErrBound) || !strings.Contains(err.Error(), "4 tables (3 imported), limit 3") {
		t.Fatalf("err = %v, want ErrBound naming the tables", err)
	}
}
