package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/sandbox/internal/meter"
	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
)

// nestedBlocks is a command whose _start nests depth blocks: the compile
// bomb of the issue at depth 200,000 (600 KB).
func nestedBlocks(depth int) []byte {
	code := make([]byte, 0, 3*depth+1)
	for range depth {
		code = append(code, wt.Block...)
	}
	for range depth {
		code = append(code, wt.End...)
	}
	return command(append(code, wt.End...)).Bytes()
}

// ifChain is a command whose _start runs n ifs one after the other: no
// nesting, yet wazero's compile time grows with n squared.
func ifChain(n int) []byte {
	var code []byte
	for range n {
		code = append(code, wt.Cat(wt.I32Const(0), wt.If, wt.Nop, wt.End)...)
	}
	return command(append(code, wt.End...)).Bytes()
}

// TestCompileBombsAreRefused pushes a real module past every structure
// bound of the default configuration; each is refused before wazero
// compiles it, with an error that names the bound, the value and the
// limit.
func TestCompileBombsAreRefused(t *testing.T) {
	d := DefaultConfig()
	manyFuncs := command(wt.Cat(wt.End))
	for range d.MaxFunctions {
		manyFuncs.Funcs = append(manyFuncs.Funcs, wt.Func{Code: wt.Cat(wt.End)})
	}
	manyLocals := withLocals(command(wt.Cat(wt.End)), 0, wt.I32)
	manyLocals.Funcs[0].Locals = append([]byte{1}, append(wt.U32(uint32(d.MaxLocals+1)), wt.I32)...)
	bigBody := command(append(make([]byte, d.MaxBodyBytes), wt.End...)) // nops
	for i := range bigBody.Funcs[0].Code[:d.MaxBodyBytes] {
		bigBody.Funcs[0].Code[i] = wt.Nop[0]
	}
	manyInstr := command(wt.Cat(wt.End))
	per := d.MaxBodyBytes / 2
	for range d.MaxInstructions/per + 1 {
		manyInstr.Funcs = append(manyInstr.Funcs, wt.Func{Code: append(make([]byte, per-1), wt.End...)}) // nops
	}

	tests := []struct {
		name    string
		module  []byte
		message string
	}{
		{"200,000 nested blocks", nestedBlocks(200_000), "function 10 nests blocks 200000 deep, limit 2048"},
		{"nesting one past the limit", nestedBlocks(d.MaxNesting + 1), "nests blocks 2049 deep, limit 2048"},
		{"functions", manyFuncs.Bytes(), "50011 functions (10 imported), limit 50000"},
		{"locals", manyLocals.Bytes(), "function 10 declares 50001 locals, limit 50000"},
		{"body size", bigBody.Bytes(), "function 10 has a body of 1048578 bytes, limit 1048576"},
		{"instructions", manyInstr.Bytes(), "instructions, limit 8000000"},
		{"20,000 ifs in a row", ifChain(20_000), "function 10 has 20000 branches and blocks, which brings the module's control weight to 400000000, limit 100000000"},
	}
	s := newSandbox(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, s, tc.module, tc.message)
		})
	}
}

// TestBuiltInGuestsWithinBounds checks that the Go guests (GOOS=wasip1)
// pass the default bounds with room to spare: at most half of each.
func TestBuiltInGuestsWithinBounds(t *testing.T) {
	d := DefaultConfig()
	for _, name := range []string{"mimc.wasm", "mlp.wasm"} {
		wasm, err := os.ReadFile(filepath.Join("..", "tasks", name))
		if err != nil {
			t.Fatal(err)
		}
		res, err := meter.Instrument(wasm, d.bounds())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, c := range []struct {
			what     string
			v, bound int
		}{
			{"nesting", res.MaxNesting, d.MaxNesting}, {"functions", res.Functions, d.MaxFunctions},
			{"locals", res.MaxLocals, d.MaxLocals}, {"module locals", res.Locals, d.MaxTotalLocals}, {"body bytes", res.MaxBodyBytes, d.MaxBodyBytes},
			{"instructions", res.Instructions, d.MaxInstructions}, {"control weight", res.ControlWeight, d.MaxControlWeight}, {"label weight", res.LabelWeight, d.MaxLabelWeight},
			{"tables", res.Tables, d.MaxTables}, {"table entries", res.MaxTableMin, d.MaxTableEntries},
			{"element entries", res.Elements, d.MaxElements},
			{"types", res.Types, d.MaxTypes}, {"globals", res.Globals, d.MaxGlobals}, {"data segments", res.DataSegments, d.MaxDataSegments},
		} {
			if c.v > c.bound/2 {
				t.Errorf("%s: %s %d, more than half the bound %d", name, c.what, c.v, c.bound)
			}
		}
	}
}

// TestCompilingTakesNoWorker checks that compile work cannot starve runs:
// while the only compiler is busy with a slow compilation (6,000 ifs in a
// row, within the bounds: seconds of wazero's time), a cached module runs
// on the only worker, and a run that waits for the compiler leaves as
// soon as its context ends.
func TestCompilingTakesNoWorker(t *testing.T) {
	s := newSandbox(t, func(c *Config) { c.Workers = 1; c.Compilers = 1 })
	ctx := context.Background()
	if err := s.Compile(ctx, echoModule()); err != nil {
		t.Fatal(err)
	}
	slow := ifChain(6000)
	compiled := make(chan error, 1)
	go func() { compiled <- s.Compile(ctx, slow) }()
	waitFor(t, func() bool { return s.compiling.Load() == 1 })

	for range 3 {
		if out, _, err := s.Run(ctx, echoModule(), []byte("warm"), testLimits()); err != nil || string(out) != "warm" {
			t.Fatalf("cached module: %q, %v", out, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := s.Run(wctx, countModule(7), nil, testLimits())
	var f *Failure
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &f) {
		t.Fatalf("waiting for the compiler: err = %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("left %s after its context ended", el)
	}
	if s.compiling.Load() != 1 {
		t.Fatal("the slow compilation ended before the checks: they proved nothing")
	}
	if err := <-compiled; err != nil {
		t.Fatal(err)
	}
	// The module whose caller gave up compiles for the next caller.
	if out, _, err := s.Run(ctx, countModule(7), nil, testLimits()); err != nil || string(out) != "ok" {
		t.Fatalf("after the compiler is free: %q, %v", out, err)
	}
}

// TestDeclarationsBounded: wazero keeps tens of bytes of the Go heap for
// each type, global and data segment of a module, outside the memory
// limit (modules of 3, 5 and 2 MiB of them grew the heap by 284, 142 and
// 80 MiB): one past each bound is refused before wazero sees the module,
// naming the count; a module at the bounds runs.
func TestDeclarationsBounded(t *testing.T) {
	d := DefaultConfig()
	build := func(types, globals, data int) []byte {
		m := command(wt.End)
		for len(m.Types) < types {
			m.Types = append(m.Types, wt.Type{Params: []byte{wt.I64}})
		}
		for range globals {
			m.Globals = append(m.Globals, wt.Global{Type: wt.I32, Init: wt.Cat(wt.I32Const(0), wt.End)})
		}
		for range data {
			m.Passive = append(m.Passive, nil)
		}
		return m.Bytes()
	}
	s := newSandbox(t)
	if _, _, err := s.Run(context.Background(), build(d.MaxTypes, d.MaxGlobals, d.MaxDataSegments), nil, DefaultLimits()); err != nil {
		t.Fatalf("module at the bounds: %v", err)
	}
	for _, c := range []struct {
		what                 string
		types, globals, data int
	}{
		{"types", d.MaxTypes + 1, 0, 0},
		{"globals", 0, d.MaxGlobals + 1, 0},
		{"data segments", 0, 0, d.MaxDataSegments + 1},
	} {
		err := s.Check(build(c.types, c.globals, c.data))
		if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), c.what) {
			t.Errorf("one past the bound of %s: %v, want ErrInvalidModule naming them", c.what, err)
		}
	}
}

// TestModuleLocalsBounded: wazero keeps about 8 bytes of Go heap for each
// local a function declares, in the compiled (and cached) module; 500
// functions of 50,000 locals each, a module of 4 KB, grew the heap by
// 193 MiB, and MaxFunctions of them would have been 19 GB. The locals of
// all functions together are bounded (MaxTotalLocals), before wazero
// sees the module.
func TestModuleLocalsBounded(t *testing.T) {
	d := DefaultConfig()
	m := command(wt.End)
	for range 100 {
		m.Funcs = append(m.Funcs, wt.Func{Type: 0, Locals: wt.Cat([]byte{1}, wt.U32(uint32(d.MaxLocals)), []byte{wt.I32}), Code: wt.End})
	}
	s := newSandbox(t)
	err := s.Check(m.Bytes())
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "locals") {
		t.Fatalf("100 functions of %d locals: %v, want ErrInvalidModule naming the locals", d.MaxLocals, err)
	}
}

// TestBrTableBombRefused: a br_table counts one control instruction
// whatever its labels, but wazero compiles each label as a branch, in
// time and memory that grow with their square: one br_table of 80,000
// labels, a module of 80 KB, took 4 s and 181 MiB to compile (and the
// compiled module is cached), one of a million in a 1 MiB body more than
// 5 minutes. The labels are bounded (MaxLabelWeight) before wazero sees
// the module.
func TestBrTableBombRefused(t *testing.T) {
	const labels = 80_000
	m := command(wt.Cat([]byte{0x02, 0x40}, wt.I32Const(0), []byte{0x0e}, wt.U32(labels), make([]byte, labels+1), wt.End, wt.End))
	s := newSandbox(t)
	start := time.Now()
	err := s.Check(m.Bytes())
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "br_table labels") {
		t.Fatalf("a br_table of %d labels: %v, want ErrInvalidModule naming the labels", labels, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("refused in %s, want at once", took)
	}
}

// TestParametersBounded: wazero compiles every function in time and
// memory that grow with its parameters, which MaxLocals does not count:
// 100 functions of a type of 100,000 parameters, a module of 100 KB,
// took 9.4 s and allocated 14.7 GB to compile. A type has at most
// meter.MaxTypeValues parameters (and results), and parameters count
// toward MaxTotalLocals.
func TestParametersBounded(t *testing.T) {
	s := newSandbox(t)
	for _, c := range []struct {
		what             string
		params, fns, ret int
	}{
		{"parameters", 100_000, 100, 0},
		{"parameters", meter.MaxTypeValues + 1, 1, 0},
		{"results", 0, 1, meter.MaxTypeValues + 1},
		{"locals", meter.MaxTypeValues, DefaultConfig().MaxTotalLocals/meter.MaxTypeValues + 1, 0},
	} {
		m := command(wt.End)
		typ := uint32(len(m.Types))
		m.Types = append(m.Types, wt.Type{Params: make([]byte, c.params), Results: make([]byte, c.ret)})
		for i := range m.Types[typ].Params {
			m.Types[typ].Params[i] = wt.I32
		}
		for i := range m.Types[typ].Results {
			m.Types[typ].Results[i] = wt.I32
		}
		body := wt.End
		if c.ret > 0 {
			body = []byte{0x00, 0x0b} // unreachable
		}
		for range c.fns {
			m.Funcs = append(m.Funcs, wt.Func{Type: typ, Code: body})
		}
		start := time.Now()
		err := s.Check(m.Bytes())
		if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), c.what) {
			t.Errorf("%d functions of %d parameters and %d results: %v, want ErrInvalidModule naming the %s", c.fns, c.params, c.ret, err, c.what)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("refused in %s, want at once", took)
		}
	}
}

// wantRefused runs module and expects it refused before it runs: a
// bad_module Failure whose message says message.
func wantRefused(t *testing.T, s *Sandbox, module []byte, message string) {
	t.Helper()
	_, _, err := s.Run(context.Background(), module, nil, testLimits())
	var f *Failure
	if !errors.As(err, &f) || f.Kind != TrapBadModule || !errors.Is(err, ErrInvalidModule) {
		t.Fatalf("err = %v, want a bad_module Failure", err)
	}
	if !strings.Contains(err.Error(), message) {
		t.Fatalf("error %q does not say %q", err, message)
	}
}
