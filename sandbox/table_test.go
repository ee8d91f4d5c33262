package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
)

// tableGrowModule is the guest of the issue, a table without a maximum
// and table.grow by 400 million entries, which made wazero allocate 3.2
// GB on the Go heap (11 s, no error): it writes the results of grow
// 400,000,000, grow MaxTableEntries (from 0) and grow 1 to stdout, as
// three little-endian i32s.
func tableGrowModule(entries int32) []byte {
	grow := func(addr, delta int32) []byte {
		return wt.Cat(wt.I32Const(addr), wt.RefNull, wt.I32Const(delta), wt.TableGrow, wt.I32Store(0))
	}
	m := command(wt.Cat(
		grow(100, 400_000_000), grow(104, entries), grow(108, 1),
		writeOut(1, 100, 12), wt.End,
	))
	m.Tables = [][]byte{wt.Table(0)}
	return m.Bytes()
}

// TestTableGrowIsBounded: a guest's table.grow past MaxTableEntries gets
// -1 (the same on every node) and allocates nothing; up to the bound it
// grows.
func TestTableGrowIsBounded(t *testing.T) {
	s := newSandbox(t)
	ctx := context.Background()
	n := int32(DefaultConfig().MaxTableEntries)
	module := tableGrowModule(n)
	if err := s.Compile(ctx, module); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	out, _, err := s.Run(ctx, module, nil, DefaultLimits())
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	// TotalAlloc counts every allocation, collected or not. A table of
	// 2^16 entries is 512 KiB.
	const maxAlloc = 64 << 20
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > maxAlloc {
		t.Errorf("the run allocated %d MiB on the Go heap, want at most %d", alloc>>20, maxAlloc>>20)
	}
	if len(out) != 12 {
		t.Fatalf("output %x, want 12 bytes", out)
	}
	got := [3]int32{}
	for i := range got {
		got[i] = int32(binary.LittleEndian.Uint32(out[4*i:]))
	}
	if want := [3]int32{-1, 0, -1}; got != want {
		t.Fatalf("table.grow 400,000,000, %d, 1 returned %v, want %v", n, got, want)
	}
	t.Logf("run took %s, allocated %d KiB", took, (after.TotalAlloc-before.TotalAlloc)>>10)
}

// TestTableFillOfLargestTable: a guest that grows a table without a
// maximum as far as it can (it gets -1 past MaxTableEntries: without the
// bound, 2^24 entries were 128 MiB, and each fill of them 128 MiB moved)
// then fills the whole table, 512 KiB, 2,000 times, runs in well under a
// second: each fill is one memmove of the table, charged 8 bytes an
// entry to the bytes moved.
func TestTableFillOfLargestTable(t *testing.T) {
	s := newSandbox(t)
	n := int32(DefaultConfig().MaxTableEntries)
	const fills = 2000
	m := command(wt.Cat(
		wt.RefNull, wt.I32Const(1<<24), wt.TableGrow, wt.I32Const(-1), []byte{0x47}, // i32.ne
		wt.If, exit(3), wt.End,
		wt.RefNull, wt.I32Const(n), wt.TableGrow, wt.Drop,
		wt.TableSize, wt.I32Const(n), []byte{0x47},
		wt.If, exit(4), wt.End,
		wt.I32Const(fills), wt.LocalSet(0),
		wt.Loop,
		wt.I32Const(0), wt.RefNull, wt.TableSize, wt.TableFill,
		wt.LocalGet(0), wt.I32Const(1), wt.I32Sub, wt.LocalTee(0), wt.BrIf(0),
		wt.End,
		wt.End,
	))
	m = withLocals(m, 1, wt.I32)
	m.Tables = [][]byte{wt.Table(0)}
	start := time.Now()
	_, st, err := s.Run(context.Background(), m.Bytes(), nil, testLimits())
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 0 {
		t.Fatalf("exit code %d", st.ExitCode)
	}
	// 2,000 fills of 512 KiB are 1 GB moved: 0.05-0.25 s at 4-20 GB/s.
	if took > 5*time.Second {
		t.Errorf("%d fills of a table of %d entries took %s", fills, n, took)
	}
	t.Logf("%d fills of %d entries: %s", fills, n, took)
}

// TestTablesOutOfBounds: a table whose minimum is above MaxTableEntries,
// or more tables than MaxTables, is refused before compiling, and an
// imported table is refused as an import the sandbox does not provide.
func TestTablesOutOfBounds(t *testing.T) {
	d := DefaultConfig()
	big := command(wt.Cat(wt.End))
	big.Tables = [][]byte{wt.Table(uint32(d.MaxTableEntries) + 1)}
	many := command(wt.Cat(wt.End))
	for range d.MaxTables + 1 {
		many.Tables = append(many.Tables, wt.Table(0))
	}
	imported := command(wt.Cat(wt.End))
	imported.Imports = append(append([]wt.Import(nil), imported.Imports...), wt.Import{Module: "env", Name: "table", Table: wt.Table(0)})
	tests := []struct {
		name, message string
		module        []byte
	}{
		{"minimum above the bound", "table 0 has a minimum of 65537 entries, limit 65536", big.Bytes()},
		{"too many tables", "17 tables (0 imported), limit 16", many.Bytes()},
		{"imported table", "imports env.table (kind 1): only wasi_snapshot_preview1 functions are provided", imported.Bytes()},
	}
	s := newSandbox(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, s, tc.module, tc.message)
		})
	}
}

// elementsModule is a command with one passive element segment of n
// entries, each naming function 0 in one byte: wazero keeps every entry
// as a constant expression of its own when it compiles the module (and
// the compiled module is cached), and 8 bytes of it in each instance,
// outside the memory limit: a 4 MiB module had the heap grow by 386 MiB.
func elementsModule(n int) []byte {
	m := command(wt.End)
	m.Elements = [][]byte{wt.Cat([]byte{0x01, 0x00}, wt.U32(uint32(n)), make([]byte, n))}
	return m.Bytes()
}

// TestElementsBounded: a module's element segments and their entries
// are bounded (MaxElements) before wazero sees them; a module at the
// bound (one segment, n-1 entries) runs.
func TestElementsBounded(t *testing.T) {
	s := newSandbox(t)
	ctx := context.Background()
	n := DefaultConfig().MaxElements
	if n <= 0 {
		t.Fatal("no default MaxElements")
	}
	if _, _, err := s.Run(ctx, elementsModule(n-1), nil, DefaultLimits()); err != nil {
		t.Fatalf("module at the bound: %v", err)
	}
	err := s.Check(elementsModule(4 << 20))
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "element") {
		t.Fatalf("4 Mi element entries: %v, want ErrInvalidModule naming the elements", err)
	}
	// Empty segments, three bytes each, cost as much heap: a 3 MiB module
	// of them grew it by 93 MiB.
	m := command(wt.End)
	for range n + 1 {
		m.Elements = append(m.Elements, []byte{0x01, 0x00, 0x00})
	}
	err = s.Check(m.Bytes())
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "element") {
		t.Fatalf("%d empty element segments: %v, want ErrInvalidModule naming the elements", n+1, err)
	}
}
