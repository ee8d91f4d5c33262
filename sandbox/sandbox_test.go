package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newSandbox(t testing.TB, mutate ...func(*Config)) *Sandbox {
	t.Helper()
	cfg := DefaultConfig()
	for _, f := range mutate {
		f(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func testLimits() Limits {
	l := DefaultLimits()
	l.Timeout = 20 * time.Second // the fuel stops the tests' loops first
	l.Fuel = 50_000_000
	return l
}

func TestEchoAndStats(t *testing.T) {
	s := newSandbox(t)
	in := []byte(`{"x":"42"}`)
	out, st, err := s.Run(context.Background(), echoModule(), in, testLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("output %q, want %q", out, in)
	}
	if st.OutputBytes != len(in) || st.PeakMemoryPages != 1 || st.FuelUsed == 0 || st.Wall <= 0 {
		t.Fatalf("stats %+v", st)
	}
	// The same run costs the same fuel, every time.
	_, st2, err := s.Run(context.Background(), echoModule(), in, testLimits())
	if err != nil {
		t.Fatal(err)
	}
	if st2.FuelUsed != st.FuelUsed {
		t.Fatalf("fuel used %d then %d", st.FuelUsed, st2.FuelUsed)
	}
	// Empty input is input too.
	out, _, err = s.Run(context.Background(), echoModule(), nil, testLimits())
	if err != nil || len(out) != 0 {
		t.Fatalf("empty input: %q, %v", out, err)
	}
}

func TestLimitsAndFailures(t *testing.T) {
	s := newSandbox(t)
	lim := testLimits()
	with := func(f func(*Limits)) Limits {
		l := lim
		f(&l)
		return l
	}
	// recursion calls itself forever; fork(n) calls itself twice with n-1,
	// 2^n calls in all, never deep.
	recursion := command(wt.Cat(wt.Call(fnStart), wt.End)).Bytes()
	fork := func() []byte {
		m := command(wt.Cat(wt.I32Const(60), wt.Call(fnStart+1), wt.End))
		m.Types = append(m.Types, wt.Type{Params: []byte{wt.I32}})
		m.Funcs = append(m.Funcs, wt.Func{Type: uint32(len(m.Types) - 1), Code: wt.Cat(
			wt.LocalGet(0), wt.I32Eqz, wt.If, wt.Return, wt.End,
			wt.LocalGet(0), wt.I32Const(1), wt.I32Sub, wt.Call(fnStart+1),
			wt.LocalGet(0), wt.I32Const(1), wt.I32Sub, wt.Call(fnStart+1),
			wt.End,
		)})
		return m.Bytes()
	}()
	bigMemory := command(wt.Cat(wt.End))
	bigMemory.MemoryMin = 10
	noStart := command(wt.Cat(wt.End))
	noStart.Exports = noStart.Exports[1:]
	importing := func(module, name string, typ uint32) []byte {
		m := command(wt.Cat(wt.End))
		m.Imports = append(append([]wt.Import(nil), m.Imports...), wt.Import{Module: module, Name: name, Type: typ})
		m.Exports = []wt.Export{{Name: "_start", Kind: wt.KindFunc, Index: uint32(len(m.Imports))}, {Name: "memory", Kind: wt.KindMemory}}
		return m.Bytes()
	}

	tests := []struct {
		name    string
		module  []byte
		input   []byte
		lim     Limits
		want    error
		message string   // in the error
		kind    TrapKind // of the *Failure; notFailure: none
	}{
		{"runaway loop, fuel", spinModule(), nil, lim, ErrFuelExhausted, "budget 50000000", TrapFuel},
		{"runaway loop, time", spinModule(), nil, with(func(l *Limits) { l.Fuel = 1 << 62; l.Timeout = 100 * time.Millisecond }), ErrTimeout, "100ms", TrapTime},
		{"infinite recursion, fuel", recursion, nil, with(func(l *Limits) { l.Fuel = 1_000_000 }), ErrFuelExhausted, "", TrapFuel},
		{"infinite recursion, stack", recursion, nil, with(func(l *Limits) { l.Fuel = 1 << 62 }), ErrTrap, "stack overflow", TrapStack},
		{"exponential calls, fuel", fork, nil, lim, ErrFuelExhausted, "", TrapFuel},
		{"exponential calls, time", fork, nil, with(func(l *Limits) { l.Fuel = 1 << 62; l.Timeout = 100 * time.Millisecond }), ErrTimeout, "", TrapTime},
		{"memory.grow past the limit", growModule(), nil, with(func(l *Limits) { l.MaxMemoryPages = 4 }), ErrMemoryLimit, "limit 4 pages (256 KiB)", TrapMemory},
		{"initial memory past the limit", bigMemory.Bytes(), nil, with(func(l *Limits) { l.MaxMemoryPages = 4 }), ErrMemoryLimit, "starts with 10 pages", TrapMemory},
		{"output too large", echoModule(), bytes.Repeat([]byte("a"), 1000), with(func(l *Limits) { l.MaxOutputBytes = 999 }), ErrOutputTooLarge, "999", TrapOutputLimit},
		{"input too large", echoModule(), make([]byte, 11), with(func(l *Limits) { l.MaxInputBytes = 10 }), ErrInputTooLarge, "11 bytes, limit 10", notFailure},
		{"module too large", echoModule(), nil, with(func(l *Limits) { l.MaxModuleBytes = 10 }), ErrModuleTooLarge, "limit 10", TrapBadModule},
		{"unreachable", command(wt.Cat(wt.Unreachable, wt.End)).Bytes(), nil, lim, ErrTrap, "unreachable", TrapGuest},
		{"division by zero", command(wt.Cat(wt.I32Const(1), wt.I32Const(0), []byte{0x6d}, wt.Drop, wt.End)).Bytes(), nil, lim, ErrTrap, "divide by zero", TrapGuest},
		{"out of bounds", command(wt.Cat(wt.I32Const(1<<20), wt.I32Load(0), wt.Drop, wt.End)).Bytes(), nil, lim, ErrTrap, "out of bounds", TrapGuest},
		{"exit status", command(wt.Cat(writeOut(2, 100, 4), exit(3), wt.End), wt.Data{Offset: 100, Bytes: []byte("boom")}).Bytes(), nil, lim, ErrExit, `code 3 [exit, exit code 3, stderr "boom"]`, TrapNone},
		{"garbage", []byte("definitely not wasm"), nil, lim, ErrInvalidModule, "header", TrapBadModule},
		{"empty module bytes", nil, nil, lim, ErrInvalidModule, "", TrapBadModule},
		{"import from env", importing("env", "get_time", 0), nil, lim, ErrInvalidModule, "env.get_time", TrapBadModule},
		{"import of no WASI function", importing(wasiModule, "sock_open_everything", 0), nil, lim, ErrInvalidModule, "sock_open_everything", TrapBadModule},
		{"WASI import of the wrong type", importing(wasiModule, "fd_close", 0), nil, lim, ErrInvalidModule, "fd_close", TrapBadModule},
		{"no _start", noStart.Bytes(), nil, lim, ErrInvalidModule, "_start", TrapBadModule},
		{"invalid module", command(wt.Cat(wt.I32Const(1), wt.End)).Bytes(), nil, lim, ErrInvalidModule, "", TrapBadModule},
		{"zero fuel", echoModule(), nil, with(func(l *Limits) { l.Fuel = 0 }), ErrInvalidLimits, "fuel", notFailure},
		{"zero memory", echoModule(), nil, with(func(l *Limits) { l.MaxMemoryPages = 0 }), ErrInvalidLimits, "memory", notFailure},
		{"no timeout", echoModule(), nil, with(func(l *Limits) { l.Timeout = 0 }), ErrInvalidLimits, "timeout", notFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out, st, err := s.Run(context.Background(), tc.module, tc.input, tc.lim)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not say %q", err, tc.message)
			}
			if out != nil {
				t.Errorf("output %q with an error", out)
			}
			var f *Failure
			if isF := errors.As(err, &f); isF != (tc.kind != notFailure) {
				t.Errorf("error %q: a *Failure %v, want %v", err, isF, tc.kind != notFailure)
			} else if isF && (f.Kind != tc.kind || !errors.Is(f.Err, tc.want)) {
				t.Errorf("failure kind %q (%v), want %q (%v)", f.Kind, f.Err, tc.kind, tc.want)
			}
			if errors.Is(err, ErrFuelExhausted) && st.FuelUsed != tc.lim.Fuel {
				t.Errorf("fuel used %d, budget %d", st.FuelUsed, tc.lim.Fuel)
			}
			if errors.Is(err, ErrTimeout) {
				if el := time.Since(start); el < tc.lim.Timeout || el > tc.lim.Timeout+5*time.Second {
					t.Errorf("stopped after %s, limit %s", el, tc.lim.Timeout)
				}
			}
			if errors.Is(err, ErrMemoryLimit) && st.PeakMemoryPages > tc.lim.MaxMemoryPages {
				t.Errorf("peak memory %d pages over the limit", st.PeakMemoryPages)
			}
		})
	}
	// The sandbox goes on serving after all that.
	if out, _, err := s.Run(context.Background(), echoModule(), []byte("still here"), lim); err != nil || string(out) != "still here" {
		t.Fatalf("after the failures: %q, %v", out, err)
	}
}

// notFailure marks the errors that are not a *Failure, in tests.
const notFailure TrapKind = "not a failure"

func TestContextStopsRun(t *testing.T) {
	s := newSandbox(t)
	lim := testLimits()
	lim.Fuel = 1 << 62
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, _, err := s.Run(ctx, spinModule(), nil, lim)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestCloseStopsRuns(t *testing.T) {
	s, err := New(context.Background(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	lim := testLimits()
	lim.Fuel = 1 << 62
	errc := make(chan error, 1)
	go func() {
		_, _, err := s.Run(context.Background(), spinModule(), nil, lim)
		errc <- err
	}()
	waitFor(t, func() bool { r, _ := s.Load(); return r == 1 })
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("running: err = %v, want ErrClosed", err)
	}
	if _, _, err := s.Run(context.Background(), echoModule(), nil, lim); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: err = %v, want ErrClosed", err)
	}
}

// TestGuestGetsNothingFromTheHost checks what a module sees of the
// machine: no environment, no files, virtual clocks, reproducible
// randomness, and args ["task"].
func TestGuestGetsNothingFromTheHost(t *testing.T) {
	s := newSandbox(t)
	t.Setenv("PROOFMESH_SECRET", "hunter2")
	out, _, err := s.Run(context.Background(), probeModule(), nil, testLimits())
	if err != nil {
		t.Fatal(err)
	}
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(out[off-64:]) }
	u64 := func(off int) uint64 { return binary.LittleEndian.Uint64(out[off-64:]) }
	if u32(72) != 0 || u32(64) != 0 || u32(68) != 0 {
		t.Errorf("environ_sizes_get: errno %d, %d variables of %d bytes; want none", u32(72), u32(64), u32(68))
	}
	if u32(84) != 0 || u32(76) != 1 || u32(80) != 5 || string(out[128-64:128-64+5]) != "task\x00" {
		t.Errorf("args: errno %d, %d args of %d bytes (%q); want [task]", u32(84), u32(76), u32(80), out[128-64:])
	}
	if u32(92) == 0 || u32(88) != 0 {
		t.Errorf("path_open(/etc): errno %d, fd %d; want an error (no preopened directory)", u32(92), u32(88))
	}
	if u32(104) != 0 || int64(u64(96)) != virtualEpoch+clockTick {
		t.Errorf("realtime: errno %d, %d; want the virtual epoch %d + 1µs", u32(104), u64(96), virtualEpoch)
	}
	if u32(116) != 0 || u64(108) != 2*uint64(clockTick) {
		t.Errorf("monotonic: errno %d, %d; want 2µs", u32(116), u64(108))
	}
	if u32(124) != 0 {
		t.Errorf("random_get: errno %d", u32(124))
	}
	// Everything, randomness included, is the same on the next run.
	again, _, err := s.Run(context.Background(), probeModule(), nil, testLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, out) {
		t.Errorf("second run differs:\n% x\n% x", out, again)
	}
}

// TestSleepIsVirtual checks that sleeping costs a guest no time: the
// virtual clock jumps instead, the same on every node.
func TestSleepIsVirtual(t *testing.T) {
	s := newSandbox(t)
	start := time.Now()
	out, _, err := s.Run(context.Background(), sleepModule(), nil, testLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 16 {
		t.Fatalf("output % x", out)
	}
	events, errno := binary.LittleEndian.Uint32(out), binary.LittleEndian.Uint32(out[4:])
	now := time.Duration(binary.LittleEndian.Uint64(out[8:]))
	if events != 1 || errno != 0 || now < time.Hour || now > time.Hour+time.Millisecond {
		t.Fatalf("poll_oneoff: %d events, errno %d; clock after an hour's sleep: %s", events, errno, now)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("an hour's virtual sleep took %s", el)
	}
}

func TestConcurrentRunsRespectWorkers(t *testing.T) {
	const workers, runs = 2, 50
	s := newSandbox(t, func(c *Config) { c.Workers = workers })
	module := countModule(200_000)
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for range runs {
		wg.Go(func() {
			out, _, err := s.Run(context.Background(), module, nil, testLimits())
			if err == nil && string(out) != "ok" {
				err = errors.New("output " + string(out))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := s.peakRunning.Load(); p < 1 || p > workers {
		t.Fatalf("%d runs at once, workers %d", p, workers)
	}
	if r, w := s.Load(); r != 0 || w != 0 {
		t.Fatalf("load after the runs: %d running, %d waiting", r, w)
	}
	if n := s.modules.len(); n != 1 {
		t.Fatalf("%d cached modules after 50 runs of one", n)
	}
}

func TestModuleCache(t *testing.T) {
	s := newSandbox(t, func(c *Config) { c.CachedModules = 2 })
	ctx := context.Background()
	a, b, c := countModule(1), countModule(2), countModule(3)
	for _, m := range [][]byte{a, b, a, c} {
		if err := s.Compile(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.modules.len(); n != 2 {
		t.Fatalf("%d modules cached, limit 2", n)
	}
	// a was used after b, so b went out.
	s.modules.mu.Lock()
	_, hasA := s.modules.entries[sha(a)]
	_, hasB := s.modules.entries[sha(b)]
	s.modules.mu.Unlock()
	if !hasA || hasB {
		t.Fatalf("cached a %v, b %v; want a and not b", hasA, hasB)
	}
	// An evicted module runs again (recompiled).
	if out, _, err := s.Run(ctx, b, nil, testLimits()); err != nil || string(out) != "ok" {
		t.Fatalf("evicted module: %q, %v", out, err)
	}
	// An invalid module is remembered with its error.
	bad := []byte("\x00asm\x01\x00\x00\x00\x01\x01")
	err1 := s.Compile(ctx, bad)
	err2 := s.Compile(ctx, bad)
	if !errors.Is(err1, ErrInvalidModule) || errors.Unwrap(err1) != errors.Unwrap(err2) {
		t.Fatalf("invalid module: %v then %v", err1, err2)
	}
}

func TestCompilationCacheOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := newSandbox(t, func(c *Config) { c.CacheDir = dir })
	if err := s.Compile(context.Background(), echoModule()); err != nil {
		t.Fatal(err)
	}
	var files int
	err := walk(dir, func() { files++ })
	if err != nil || files == 0 {
		t.Fatalf("%d files in the cache dir (%v)", files, err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(*Config){
		func(c *Config) { c.Workers = 0 },
		func(c *Config) { c.CachedModules = 0 },
		func(c *Config) { c.StderrTail = -1 },
	} {
		cfg := DefaultConfig()
		f(&cfg)
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

func TestBuffers(t *testing.T) {
	b := &boundedBuffer{max: 5}
	if n, err := b.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := b.Write([]byte("def")); n != 0 || err == nil || !b.overflow || string(b.buf) != "abc" {
		t.Fatalf("overflowing write: %d, %v, %q", n, err, b.buf)
	}
	tb := &tailBuffer{max: 4}
	if n, err := tb.Write([]byte("short")); n != 5 || err != nil || tb.String() != "short" {
		t.Fatalf("short stderr: %d, %v, %q", n, err, tb.String())
	}
	head := strings.Repeat("h", stderrHead)
	tb = &tailBuffer{max: 4}
	for _, s := range []string{head, "ab", "cdefgh", "ij", "k"} {
		if n, err := tb.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatal(n, err)
		}
	}
	if got, want := tb.String(), head+" … hijk"; got != want {
		t.Fatalf("stderr %q, want %q", got, want)
	}
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func walk(dir string, each func()) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := walk(dir+"/"+e.Name(), each); err != nil {
				return err
			}
			continue
		}
		each()
	}
	return nil
}

// TestIdleModuleFreed: a compiled module no run uses for IdleModuleTTL
// leaves memory (its code stays in the on-disk cache) and runs again when
// asked; a module in use is not freed under its run.
func TestIdleModuleFreed(t *testing.T) {
	dir := t.TempDir()
	s := newSandbox(t, func(c *Config) { c.CacheDir = dir; c.IdleModuleTTL = 50 * time.Millisecond })
	ctx := context.Background()
	if err := s.Compile(ctx, echoModule()); err != nil {
		t.Fatal(err)
	}
	if n := s.CompiledModules(); n != 1 {
		t.Fatalf("%d compiled modules after a compilation", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.CompiledModules() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle module still compiled in memory after 10 s (TTL 50 ms)")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out, _, err := s.Run(ctx, echoModule(), []byte("again"), testLimits()); err != nil || string(out) != "again" {
		t.Fatalf("a freed module run again: %q, %v", out, err)
	}
	// An invalid module is remembered past the TTL (it holds no code).
	bad := []byte("\x00asm\x01\x00\x00\x00\x01\x01")
	if err := s.Compile(ctx, bad); !errors.Is(err, ErrInvalidModule) {
		t.Fatal(err)
	}
	for s.CompiledModules() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("module still compiled in memory")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.modules.mu.Lock()
	_, remembered := s.modules.entries[sha(bad)]
	s.modules.mu.Unlock()
	if !remembered {
		t.Error("an invalid module was forgotten by the idle sweep")
	}
}
