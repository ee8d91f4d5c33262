package sandbox

import "errors"

// Errors of Run, for callers to branch on with errors.Is. The wrapping
// error names the limit and its value.
var (
	// ErrTimeout: the run took longer than Limits.Timeout.
	ErrTimeout = errors.New("sandbox: time limit exceeded")
	// ErrFuelExhausted: the run spent its Limits.Fuel budget.
	ErrFuelExhausted = errors.New("sandbox: fuel exhausted")
	// ErrMemoryLimit: the module needed more than Limits.MaxMemoryPages.
	ErrMemoryLimit = errors.New("sandbox: memory limit exceeded")
	// ErrOutputTooLarge: the module wrote more than Limits.MaxOutputBytes.
	ErrOutputTooLarge = errors.New("sandbox: output too large")
	// ErrInputTooLarge: the input is longer than Limits.MaxInputBytes.
	ErrInputTooLarge = errors.New("sandbox: input too large")
	// ErrModuleTooLarge: the module is longer than Limits.MaxModuleBytes.
	ErrModuleTooLarge = errors.New("sandbox: module too large")
	// ErrInvalidModule: the bytes are not a module the sandbox runs: not
	// WebAssembly, a feature beyond WebAssembly 2.0, an import other than
	// a WASI preview 1 function, or no _start.
	ErrInvalidModule = errors.New("sandbox: invalid module")
	// ErrTrap: the module trapped (unreachable, out-of-bounds access,
	// division by zero, stack overflow, ...).
	ErrTrap = errors.New("sandbox: module trapped")
	// ErrExit: the module exited with a non-zero status.
	ErrExit = errors.New("sandbox: module exited with an error")
	// ErrInvalidLimits: the limits cannot be enforced.
	ErrInvalidLimits = errors.New("sandbox: invalid limits")
	// ErrClosed: the sandbox is closed.
	ErrClosed = errors.New("sandbox: closed")
)
