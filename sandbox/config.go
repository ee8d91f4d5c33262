package sandbox

import (
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/proofmesh/proofmesh/sandbox/internal/meter"
)

// Config configures a Sandbox.
type Config struct {
	// CacheDir holds wazero's compilation cache on disk, so a module is
	// compiled once per node, not once per process. Empty: memory only.
	CacheDir string
	// Workers bounds the runs that execute at once; more runs wait in
	// line. Compiling does not take a worker.
	Workers int
	// Compilers bounds the modules compiled at once, apart from the
	// workers, so that compile work cannot starve runs of compiled
	// modules. Zero: the default.
	Compilers int
	// CachedModules bounds the compiled modules kept in memory (LRU).
	CachedModules int
	// IdleModuleTTL frees a compiled module no run has used for this
	// long; the next run compiles it again, from CacheDir when set (a
	// Go guest: ≈ 0.1 s instead of ≈ 1.6 s). Zero: modules stay in memory
	// until the LRU evicts them.
	IdleModuleTTL time.Duration
	// StderrTail is how many of the last bytes of a guest's stderr are
	// kept, for Stats.Stderr and Failure.Stderr (and, with its first 256
	// bytes, for error messages).
	StderrTail int

	// Bounds on a module's structure, checked in one linear pass before
	// it is compiled (see package meter): wazero's compile time grows
	// faster than linearly with some of them and cannot be interrupted.
	// A module past one is refused with ErrInvalidModule. Zero: the
	// default.

	// MaxNesting bounds the depth of nested blocks in one function.
	MaxNesting int
	// MaxFunctions bounds a module's functions, imported and defined.
	MaxFunctions int
	// MaxLocals bounds the locals of one function (at most 50,000).
	MaxLocals int
	// MaxTotalLocals bounds the locals of all functions together: wazero
	// keeps about 8 bytes of the Go heap for each, outside the memory
	// limit.
	MaxTotalLocals int
	// MaxBodyBytes bounds the code of one function, in bytes.
	MaxBodyBytes int
	// MaxInstructions bounds the instructions of all functions.
	MaxInstructions int
	// MaxControlWeight bounds the sum over functions of the square of
	// each one's control instructions (block, loop, if, else, br, br_if,
	// br_table): wazero compiles a function in time that grows with the
	// square of its branches.
	MaxControlWeight int
	// MaxLabelWeight bounds the sum, over the functions, of the square
	// of the labels of each one's br_tables: wazero compiles a function
	// in time and memory that grow with the square of them.
	MaxLabelWeight int
	// MaxTables bounds a module's tables, imported and defined.
	MaxTables int
	// MaxTableEntries bounds each table, in entries of 8 bytes: wazero
	// keeps tables on the Go heap, outside the memory limit, so the meter
	// gives every table this maximum (or its own, if lower) and table.grow
	// past it returns -1; a table whose minimum is larger is refused.
	MaxTableEntries int
	// MaxElements bounds a module's element segments and their entries
	// together (a segment counts one, each entry one): wazero keeps tens of bytes of the Go heap for each when
	// it compiles the module (and the compiled module is cached), and 8
	// bytes of each passive one in every instance, outside the memory
	// limit.
	MaxElements int
	// MaxTypes, MaxGlobals and MaxDataSegments bound a module's function
	// types, globals and data segments: wazero keeps tens of bytes of the
	// Go heap for each, outside the memory limit (a 3 MiB module of types
	// grew the heap by 284 MiB).
	MaxTypes, MaxGlobals, MaxDataSegments int
}

// DefaultConfig returns a complete configuration.
func DefaultConfig() Config {
	return Config{
		CacheDir:      "",               // compiled code in memory only
		Workers:       runtime.NumCPU(), // one run per core
		CachedModules: 16,               // a Go guest compiles to ≈ 10 MB of code
		IdleModuleTTL: 2 * time.Minute,  // then freed; reloaded from CacheDir when set
		StderrTail:    1 << 10,          // 1 KiB of stderr in failure reports
		// Half the cores, at most 2: compiling never takes more.
		Compilers: max(1, min(2, runtime.NumCPU()/2)),
		// Measured on the Go guests (GOOS=wasip1): mimc.wasm nests 549
		// deep, an 11 MB Go program 570 (Go opens one block per call
		// site of a function). A bomb of 200,000 nested blocks is 600 KB.
		MaxNesting:   2048,
		MaxFunctions: 50_000, // an 11 MB Go program has 6,553
		MaxLocals:    50_000, // as V8 and wasmtime; Go uses 20
		// 500 functions of 50,000 locals, a module of 4 KB, grew the heap
		// by 193 MiB; 2^20 locals are about 8 MiB.
		MaxTotalLocals:  1 << 20,
		MaxBodyBytes:    1 << 20,   // Go's largest: 50 KB; V8 allows 7.6 MB
		MaxInstructions: 8_000_000, // an 11 MB Go program has 3.2 million
		// An 11 MB Go program weighs 5.3·10^7, mimc.wasm 1.8·10^7; 8,000
		// ifs in one function weigh 6.4·10^7 and compile in 2.3 s on 2
		// cores, so the heaviest module allowed compiles in seconds.
		MaxControlWeight: 100_000_000,
		// One br_table of 80,000 labels (80 KB) compiled in 4 s and
		// 181 MiB, of 20,000 in 0.37 s and 44 MiB (4·10^8), 100 of
		// 1,000 in 0.26 s and 3 MiB.
		MaxLabelWeight: 400_000_000,
		// A table of 2^16 entries is 512 KiB of the Go heap. The Go guests
		// declare 6,244 and 6,535 entries and no maximum (one per
		// function: Go calls through its table); a table of distinct
		// functions needs at most MaxFunctions entries, 50,000, so every
		// module allowed fits, as do Rust, C and TinyGo tables (a few
		// thousand address-taken functions). 2^20 would allow 8 MiB a
		// table for no module that needs it.
		MaxTableEntries: 1 << 16,
		// LLVM and Go emit one table, wasm-bindgen two: 16 tables of 2^16
		// entries are 8 MiB at most.
		MaxTables: 16,
		// The Go guests' element segments hold 2,439 and 2,148 entries;
		// no table holds more than
		// MaxTableEntries. A 4 MiB module of 2^22 one-byte entries had
		// the heap grow by 386 MiB; 2^16 entries are a few MiB.
		MaxElements: 1 << 16,
		// Compilers emit a type per distinct signature and a few globals
		// (the Go guests 13 and 8; 2^14 of each are a few MiB of heap),
		// LLVM a data segment per section but Go one per symbol (41,927
		// and 37,007 in the Go guests; 2^18 are about 20 MiB).
		MaxTypes: 1 << 14, MaxGlobals: 1 << 14, MaxDataSegments: 1 << 18,
	}
}

// withDefaults fills the zero fields that have a default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	for _, f := range []struct{ v, d *int }{
		{&c.Compilers, &d.Compilers}, {&c.MaxNesting, &d.MaxNesting}, {&c.MaxFunctions, &d.MaxFunctions},
		{&c.MaxLocals, &d.MaxLocals}, {&c.MaxTotalLocals, &d.MaxTotalLocals}, {&c.MaxBodyBytes, &d.MaxBodyBytes},
		{&c.MaxInstructions, &d.MaxInstructions}, {&c.MaxControlWeight, &d.MaxControlWeight},
		{&c.MaxLabelWeight, &d.MaxLabelWeight},
		{&c.MaxTables, &d.MaxTables}, {&c.MaxTableEntries, &d.MaxTableEntries}, {&c.MaxElements, &d.MaxElements},
		{&c.MaxTypes, &d.MaxTypes}, {&c.MaxGlobals, &d.MaxGlobals}, {&c.MaxDataSegments, &d.MaxDataSegments},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	return c
}

// bounds are the structure bounds for package meter.
func (c Config) bounds() meter.Bounds {
	return meter.Bounds{
		MaxNesting: c.MaxNesting, MaxFunctions: c.MaxFunctions, MaxLocals: c.MaxLocals, MaxTotalLocals: c.MaxTotalLocals,
		MaxBodyBytes: c.MaxBodyBytes, MaxInstructions: c.MaxInstructions, MaxControlWeight: c.MaxControlWeight,
		MaxLabelWeight: c.MaxLabelWeight,
		MaxTables:      c.MaxTables, MaxTableEntries: c.MaxTableEntries, MaxElements: c.MaxElements,
		MaxTypes: c.MaxTypes, MaxGlobals: c.MaxGlobals, MaxDataSegments: c.MaxDataSegments,
	}
}

// Validate refuses a configuration that cannot work.
func (c Config) Validate() error {
	if c.Workers < 1 || c.Workers > 1024 {
		return fmt.Errorf("sandbox config: workers %d out of 1..1024", c.Workers)
	}
	if c.CachedModules < 1 {
		return fmt.Errorf("sandbox config: cached modules %d, need at least 1", c.CachedModules)
	}
	if c.IdleModuleTTL < 0 {
		return fmt.Errorf("sandbox config: idle module TTL %s is negative (0: keep modules until evicted)", c.IdleModuleTTL)
	}
	if c.StderrTail < 0 || c.StderrTail > 1<<20 {
		return fmt.Errorf("sandbox config: stderr tail %d out of 0..1 MiB", c.StderrTail)
	}
	if c.Compilers < 0 || c.Compilers > 64 {
		return fmt.Errorf("sandbox config: compilers %d out of 1..64 (0: the default)", c.Compilers)
	}
	for _, b := range []struct {
		name string
		v    int
	}{
		{"max nesting", c.MaxNesting}, {"max functions", c.MaxFunctions}, {"max body bytes", c.MaxBodyBytes},
		{"max instructions", c.MaxInstructions}, {"max control weight", c.MaxControlWeight},
		{"max tables", c.MaxTables},
	} {
		if b.v < 0 {
			return fmt.Errorf("sandbox config: %s %d is negative (0: the default)", b.name, b.v)
		}
	}
	if c.MaxTableEntries < 0 || int64(c.MaxTableEntries) > math.MaxUint32 {
		return fmt.Errorf("sandbox config: max table entries %d out of 1..%d (0: the default)", c.MaxTableEntries, uint32(math.MaxUint32))
	}
	if c.MaxLocals < 0 || c.MaxLocals > meter.MaxLocals {
		return fmt.Errorf("sandbox config: max locals %d out of 1..%d (0: the default)", c.MaxLocals, meter.MaxLocals)
	}
	return nil
}

// Limits are the bounds of one run; a task type's security profile maps
// onto them.
type Limits struct {
	// MaxMemoryPages bounds linear memory, in 64 KiB pages (1..65536).
	MaxMemoryPages uint32
	// Timeout bounds the run's wall-clock time, from instantiation.
	Timeout time.Duration
	// Fuel is the deterministic execution budget: roughly the number of
	// WebAssembly instructions the module may execute (see package meter).
	Fuel uint64
	// MaxInputBytes bounds the input (stdin).
	MaxInputBytes int
	// MaxOutputBytes bounds the output (stdout).
	MaxOutputBytes int
	// MaxModuleBytes bounds the module; 0 means no bound (built-in
	// modules, whose bytes the node already trusts).
	MaxModuleBytes int
}

// DefaultLimits returns limits for a small task.
func DefaultLimits() Limits {
	return Limits{
		MaxMemoryPages: 1024,             // 64 MiB of linear memory
		Timeout:        10 * time.Second, // wall clock
		Fuel:           10_000_000_000,   // ≈ 10^10 instructions, seconds of work
		MaxInputBytes:  64 << 10,         // 64 KiB of stdin
		MaxOutputBytes: 64 << 10,         // 64 KiB of stdout
		MaxModuleBytes: 16 << 20,         // 16 MiB of module
	}
}

// Validate refuses limits that cannot be enforced.
func (l Limits) Validate() error {
	switch {
	case l.MaxMemoryPages < 1 || l.MaxMemoryPages > 65536:
		return fmt.Errorf("%w: max memory pages %d out of 1..65536", ErrInvalidLimits, l.MaxMemoryPages)
	case l.Timeout <= 0:
		return fmt.Errorf("%w: timeout %s must be positive", ErrInvalidLimits, l.Timeout)
	case l.Fuel == 0:
		return fmt.Errorf("%w: fuel must be positive", ErrInvalidLimits)
	case l.MaxInputBytes < 0 || l.MaxOutputBytes < 1 || l.MaxModuleBytes < 0:
		return fmt.Errorf("%w: max input %d, output %d, module %d bytes", ErrInvalidLimits,
			l.MaxInputBytes, l.MaxOutputBytes, l.MaxModuleBytes)
	}
	return nil
}

// Stats describe one run.
type Stats struct {
	// Wall is the time from instantiation to the end of the run (waiting
	// for a worker and compiling are not included).
	Wall time.Duration
	// FuelUsed is the fuel the run spent; the budget when it ran out.
	FuelUsed uint64
	// PeakMemoryPages is the largest size of linear memory, in pages.
	PeakMemoryPages uint32
	// OutputBytes is the size of the output.
	OutputBytes int
	// ExitCode is the code the guest passed to proc_exit: 0 when it
	// returned from _start, -1 when it did not exit (it trapped).
	ExitCode int
	// Stderr is the last Config.StderrTail bytes the guest wrote to
	// stderr, exactly as written; nil when it wrote nothing.
	Stderr []byte
}
