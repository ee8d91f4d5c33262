package sandbox

import (
	"errors"
	"fmt"
)

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

// TrapKind says why a guest failed, in a word a failure report can carry.
type TrapKind string

// Kinds of Failure.
const (
	// TrapNone: the guest exited cleanly with a non-zero code.
	TrapNone TrapKind = ""
	// TrapFuel: the guest spent its fuel budget (ErrFuelExhausted).
	TrapFuel TrapKind = "fuel"
	// TrapMemory: the guest needed more memory than its limit
	// (ErrMemoryLimit).
	TrapMemory TrapKind = "memory"
	// TrapTime: the guest ran past its time limit (ErrTimeout).
	TrapTime TrapKind = "time"
	// TrapStack: the guest exhausted the call stack (ErrTrap).
	TrapStack TrapKind = "stack"
	// TrapOutputLimit: the guest wrote more output than its limit
	// (ErrOutputTooLarge).
	TrapOutputLimit TrapKind = "output_limit"
	// TrapBadModule: the module was refused before it ran: not a module
	// the sandbox runs, past a structure bound, or too large
	// (ErrInvalidModule, ErrModuleTooLarge).
	TrapBadModule TrapKind = "bad_module"
	// TrapGuest: any other trap: unreachable, division by zero, an
	// out-of-bounds access... (ErrTrap).
	TrapGuest TrapKind = "trap"
)

// Failure is how Run reports that the module failed, deterministically
// or by passing a limit: errors.As(err, &f) with f a *Failure holds for
// every such error, and errors.Is still finds the sentinel (Err wraps it).
// Errors that are not the module's doing (the caller's context ended,
// the sandbox closed, invalid limits, input too large) are not Failures.
type Failure struct {
	// Kind says why the module failed.
	Kind TrapKind
	// ExitCode is the code the guest passed to proc_exit, or -1 when it
	// did not exit (it trapped, or it never started).
	ExitCode int
	// Stderr is the last Config.StderrTail bytes the guest wrote to
	// stderr, exactly as written (possibly cut inside a UTF-8 sequence).
	Stderr []byte
	// Err is the error of Run, wrapping one of this package's sentinels.
	Err error
}

// stderrClip is how much of the stderr tail a Failure's message shows.
const stderrClip = 256

// Error names the kind, the exit code and the end of stderr, quoted.
func (f *Failure) Error() string {
	kind := string(f.Kind)
	if f.Kind == TrapNone {
		kind = "exit"
	}
	msg := fmt.Sprintf("%v [%s, exit code %d", f.Err, kind, f.ExitCode)
	if len(f.Stderr) > 0 {
		tail, cut := f.Stderr, ""
		if len(tail) > stderrClip {
			tail, cut = tail[len(tail)-stderrClip:], "…"
		}
		msg += fmt.Sprintf(", stderr %s%q", cut, tail)
	}
	return msg + "]"
}

// Unwrap returns Err.
func (f *Failure) Unwrap() error { return f.Err }
