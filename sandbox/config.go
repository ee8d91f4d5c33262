package sandbox

import (
	"fmt"
	"runtime"
	"time"
)

// Config configures a Sandbox.
type Config struct {
	// CacheDir holds wazero's compilation cache on disk, so a module is
	// compiled once per node, not once per process. Empty: memory only.
	CacheDir string
	// Workers bounds the runs (and compilations) that execute at once;
	// more runs wait in line.
	Workers int
	// CachedModules bounds the compiled modules kept in memory (LRU).
	CachedModules int
	// StderrTail is how many of the last bytes of a guest's stderr are
	// kept (with its first 256 bytes) for the messages of ErrExit and
	// ErrTrap.
	StderrTail int
}

// DefaultConfig returns a complete configuration.
func DefaultConfig() Config {
	return Config{
		CacheDir:      "",               // compiled code in memory only
		Workers:       runtime.NumCPU(), // one run per core
		CachedModules: 16,               // a Go guest compiles to ≈ 10 MB of code
		StderrTail:    1 << 10,          // 1 KiB of stderr in error messages
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
	if c.StderrTail < 0 || c.StderrTail > 1<<20 {
		return fmt.Errorf("sandbox config: stderr tail %d out of 0..1 MiB", c.StderrTail)
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
	// ExitCode is the guest's exit code (0 for a normal end).
	ExitCode int
	// Stderr is the last Config.StderrTail bytes the guest wrote to
	// stderr, also when it succeeded.
	Stderr []byte
}
