package sandbox

import (
	"errors"
	"fmt"
	"strings"
)

// TrapKind says why a guest did not finish normally.
type TrapKind string

// Trap kinds of a Failure.
const (
	TrapNone        TrapKind = ""             // clean exit with a non-zero code
	TrapFuel        TrapKind = "fuel"         // Limits.Fuel spent
	TrapMemory      TrapKind = "memory"       // over Limits.MaxMemoryPages
	TrapTime        TrapKind = "time"         // over Limits.Timeout
	TrapStack       TrapKind = "stack"        // call stack exhausted
	TrapOutputLimit TrapKind = "output_limit" // over Limits.MaxOutputBytes
	TrapBadModule   TrapKind = "bad_module"   // invalid or refused module
	TrapGuest       TrapKind = "trap"         // any other WebAssembly trap
)

// Failure is a run that failed through the guest: what an executor
// reports. Errors that are not the guest's doing (the caller's context
// ended, the sandbox closed) are never a Failure. errors.Is still finds
// the sentinel (ErrExit, ErrFuelExhausted, …) through Err.
type Failure struct {
	Kind     TrapKind
	ExitCode int    // the guest's exit code; -1 when it trapped
	Stderr   []byte // the last Config.StderrTail bytes of stderr
	Err      error
}

func (f *Failure) Error() string {
	what := fmt.Sprintf("exit code %d", f.ExitCode)
	if f.Kind != TrapNone {
		what = "trap " + string(f.Kind)
	}
	msg := f.Err.Error()
	if len(f.Stderr) > 0 && !strings.Contains(msg, "stderr") {
		msg += fmt.Sprintf(" (stderr: %q)", clipTail(f.Stderr, 200))
	}
	return what + ": " + msg
}

func (f *Failure) Unwrap() error { return f.Err }

func clipTail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// guestFailure wraps a run's error as a Failure when the guest caused it.
func guestFailure(err error, exitCode int, stderr []byte) error {
	if err == nil {
		return nil
	}
	kind := TrapGuest
	switch {
	case errors.Is(err, ErrExit):
		kind = TrapNone
	case errors.Is(err, ErrFuelExhausted):
		kind = TrapFuel
	case errors.Is(err, ErrMemoryLimit):
		kind = TrapMemory
	case errors.Is(err, ErrTimeout):
		kind = TrapTime
	case errors.Is(err, ErrOutputTooLarge):
		kind = TrapOutputLimit
	case errors.Is(err, ErrInvalidModule), errors.Is(err, ErrModuleTooLarge):
		kind = TrapBadModule
	case errors.Is(err, ErrTrap):
		if strings.Contains(err.Error(), "stack overflow") || strings.Contains(err.Error(), "call stack") {
			kind = TrapStack
		}
	default:
		return err // not the guest's doing
	}
	if kind != TrapNone {
		exitCode = -1
	}
	return &Failure{Kind: kind, ExitCode: exitCode, Stderr: stderr, Err: err}
}
