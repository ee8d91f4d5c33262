package sandbox

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
)

// TestFailureReports checks the *Failure of every way a module fails: the
// kind, the exit code and the stderr tail a failure report carries.
func TestFailureReports(t *testing.T) {
	s := newSandbox(t)
	lim := testLimits()
	with := func(f func(*Limits)) Limits {
		l := lim
		f(&l)
		return l
	}
	long := make([]byte, 3000) // longer than the 1 KiB tail, no two KiB alike
	for i := range long {
		long[i] = 'a' + byte(i%23) + byte(i/1000)
	}
	boom := wt.Data{Offset: 100, Bytes: []byte("boom: bad input\n")}
	recursion := command(wt.Cat(wt.Call(fnStart), wt.End)).Bytes()

	tests := []struct {
		name     string
		module   []byte
		input    []byte
		lim      Limits
		want     error
		kind     TrapKind
		code     int
		stderr   []byte // Failure.Stderr, exactly
		inMesage string
	}{
		{"exit 3 with a message", command(wt.Cat(writeOut(2, 100, 16), exit(3), wt.End), boom).Bytes(), nil, lim,
			ErrExit, TrapNone, 3, boom.Bytes, `[exit, exit code 3, stderr "boom: bad input\n"]`},
		{"fuel", spinModule(), nil, with(func(l *Limits) { l.Fuel = 10_000 }), ErrFuelExhausted, TrapFuel, -1, nil, "[fuel, exit code -1]"},
		{"memory", growModule(), nil, with(func(l *Limits) { l.MaxMemoryPages = 4 }), ErrMemoryLimit, TrapMemory, -1, nil, "[memory"},
		{"time", spinModule(), nil, with(func(l *Limits) { l.Fuel = 1 << 62; l.Timeout = 50 * time.Millisecond }), ErrTimeout, TrapTime, -1, nil, "[time"},
		{"stack overflow", recursion, nil, with(func(l *Limits) { l.Fuel = 1 << 62 }), ErrTrap, TrapStack, -1, nil, "[stack"},
		{"output over the limit", echoModule(), bytes.Repeat([]byte("x"), 100), with(func(l *Limits) { l.MaxOutputBytes = 99 }),
			ErrOutputTooLarge, TrapOutputLimit, 5, nil, "[output_limit, exit code 5"}, // the guest exits 5 when a write fails
		{"bad module", []byte("\x00asm\x01\x00\x00\x00\x01\x01"), nil, lim, ErrInvalidModule, TrapBadModule, -1, nil, "[bad_module"},
		{"unreachable after a message", command(wt.Cat(writeOut(2, 100, 16), wt.Unreachable, wt.End), boom).Bytes(), nil, lim,
			ErrTrap, TrapGuest, -1, boom.Bytes, `[trap, exit code -1, stderr "boom: bad input\n"]`},
		{"stderr over 1 KiB", command(wt.Cat(writeOut(2, 100, 3000), exit(1), wt.End), wt.Data{Offset: 100, Bytes: long}).Bytes(), nil, lim,
			ErrExit, TrapNone, 1, long[len(long)-1024:], `stderr began "abc`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, st, err := s.Run(context.Background(), tc.module, tc.input, tc.lim)
			var f *Failure
			if !errors.As(err, &f) {
				t.Fatalf("err = %v, not a *Failure", err)
			}
			if !errors.Is(err, tc.want) || f.Kind != tc.kind || f.ExitCode != tc.code {
				t.Fatalf("failure %q: kind %q, code %d; want %v, kind %q, code %d", err, f.Kind, f.ExitCode, tc.want, tc.kind, tc.code)
			}
			if !bytes.Equal(f.Stderr, tc.stderr) {
				t.Errorf("stderr tail %q, want %q", f.Stderr, tc.stderr)
			}
			if !strings.Contains(err.Error(), tc.inMesage) {
				t.Errorf("message %q does not say %q", err, tc.inMesage)
			}
			if tc.kind != TrapBadModule && (st.ExitCode != f.ExitCode || !bytes.Equal(st.Stderr, f.Stderr)) {
				t.Errorf("stats: code %d, stderr %q; failure: %d, %q", st.ExitCode, st.Stderr, f.ExitCode, f.Stderr)
			}
		})
	}
}

// TestSuccessReportsStderr checks that a run that exits 0, by returning
// or by proc_exit(0), succeeds with its exit code and stderr in Stats.
func TestSuccessReportsStderr(t *testing.T) {
	s := newSandbox(t)
	warn := wt.Data{Offset: 100, Bytes: []byte("warning: slow path")}
	for name, code := range map[string][]byte{
		"return":       wt.Cat(writeOut(2, 100, 18), wt.End),
		"proc_exit(0)": wt.Cat(writeOut(2, 100, 18), exit(0), wt.End),
	} {
		t.Run(name, func(t *testing.T) {
			_, st, err := s.Run(context.Background(), command(code, warn).Bytes(), nil, testLimits())
			if err != nil {
				t.Fatal(err)
			}
			if st.ExitCode != 0 || string(st.Stderr) != "warning: slow path" {
				t.Fatalf("exit code %d, stderr %q", st.ExitCode, st.Stderr)
			}
		})
	}
	_, st, err := s.Run(context.Background(), echoModule(), nil, testLimits())
	if err != nil || st.Stderr != nil {
		t.Fatalf("silent run: stderr %q, %v", st.Stderr, err)
	}
}

// TestStopIsNotAFailure checks that being stopped (the caller's context,
// Close) is told apart from the module failing.
func TestStopIsNotAFailure(t *testing.T) {
	s := newSandbox(t)
	lim := testLimits()
	lim.Fuel = 1 << 62
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, _, err := s.Run(ctx, spinModule(), nil, lim)
	var f *Failure
	if !errors.Is(err, context.Canceled) || errors.As(err, &f) {
		t.Fatalf("cancelled run: err = %v (a Failure: %v)", err, f != nil)
	}
	if _, _, err := s.Run(context.Background(), echoModule(), make([]byte, lim.MaxInputBytes+1), lim); errors.As(err, &f) {
		t.Fatalf("input too large is the caller's: %v", err)
	}
}

func TestFailureMessageClipsStderr(t *testing.T) {
	f := &Failure{Kind: TrapGuest, ExitCode: -1, Stderr: append(bytes.Repeat([]byte("a"), 1000), "\x00end"...), Err: ErrTrap}
	msg := f.Error()
	if !strings.HasPrefix(msg, ErrTrap.Error()+" [trap, exit code -1, stderr …\"aaa") || !strings.HasSuffix(msg, `\x00end"]`) || len(msg) > 400 {
		t.Fatalf("message %q", msg)
	}
	if !errors.Is(f, ErrTrap) {
		t.Fatal("Unwrap does not reach the sentinel")
	}
}
