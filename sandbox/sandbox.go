package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/proofmesh/proofmesh/sandbox/internal/meter"
)

// wasiModule is the only module a guest may import from.
const wasiModule = wasi_snapshot_preview1.ModuleName

// maxBudget caps the fuel budget so that the fuel spent (budget plus the
// cost of one region at most) cannot overflow the guest's int64 counter.
const maxBudget = math.MaxInt64 / 2

// stopBudget is the budget the watchdog sets to stop a run: below any fuel
// spent, so the guest's next check calls refuel, which ends the run.
const stopBudget = -1

// refuelChunk is the fuel a guest gets at a time: the budget global the
// guest checks against is raised by at most this much at each call of
// refuel, the Go function its fuel checks call past that global. A guest
// compiled to machine code offers the Go runtime no safepoint, so a stop
// of the world (a GC) waits for it to call into Go; refuel is such a
// call, at least once per chunk even in a loop that never calls the host.
// A fuel unit is about one wasm instruction. The tightest loop, loop
// { br 0 }, runs 0.8-1·10^9 fuel/s here (BenchmarkRefuelInterval: the
// check dominates it), real guests more (the mimc guest 4-8·10^9), so
// 2^21 fuel is at most 2-2.5 ms of guest time between two safepoints (0.3
// ms for mimc), and the call, once per chunk, costs nothing measurable
// (BenchmarkLoopMetering, BenchmarkGuestMetering). 2^22 measured 4-5 ms
// for the tight loop: the edge of what a pause should be.
const refuelChunk = 1 << 21

// Errors with which refuel ends a run. The run's error is classified by
// the watchdog's reason and the fuel spent, as before refuel existed, so
// that neither reaches a caller.
var (
	errRefuelStop  = errors.New("sandbox: run stopped at a fuel check")
	errRefuelSpent = errors.New("sandbox: fuel budget spent")
	errRefuelNoRun = errors.New("sandbox: refuel called outside a run")
)

// fuel is the host side of a run's fuel meter: the whole budget, of
// which the guest's budget global holds a chunk at a time.
type fuel struct {
	used, limit   api.MutableGlobal
	budget, chunk int64

	mu      sync.Mutex // orders refuel and the watchdog's stop
	stopped bool       // the watchdog has stopped the run
	refuels int        // calls of refuel, for the benchmarks
}

// fuelKey holds a run's *fuel in the context of its calls.
type fuelKey struct{}

// refuel is the meter's import: the guest calls it at a fuel check that
// took the fuel spent past its budget global, and before a bulk memory
// or table instruction that took the bytes moved past
// meter.BulkBytesPerRefuel (the guest resets that count itself). It ends
// the run if the watchdog stopped it or the whole budget is spent
// (exactly where a check against the whole budget would have trapped:
// the fuel spent is the same), and otherwise grants the next chunk. A
// call for the bytes finds the fuel spent within the budget global, so
// it ends only a stopped run, and the chunk it grants moves no fuel
// figure: only the point of the next fuel check's call.
func refuel(ctx context.Context, _ api.Module, _ []uint64) {
	f, _ := ctx.Value(fuelKey{}).(*fuel)
	if f == nil {
		panic(errRefuelNoRun)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuels++
	if f.stopped {
		panic(errRefuelStop)
	}
	used := int64(f.used.Get())
	if used > f.budget {
		panic(errRefuelSpent)
	}
	f.limit.Set(uint64(min(f.budget, used+f.chunk)))
}

// stop makes the guest call refuel at its next check, which ends the
// run, and returns the fuel spent so far. Under f.mu, so that refuel
// cannot raise the budget global back after this lowered it.
func (f *fuel) stop() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	stop := int64(stopBudget)
	f.limit.Set(uint64(stop))
	return int64(f.used.Get())
}

// instantiateRefuel provides the meter's import in r.
func instantiateRefuel(ctx context.Context, r wazero.Runtime) error {
	_, err := r.NewHostModuleBuilder(meter.RefuelModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(refuel), nil, nil).
		Export(meter.RefuelName).Instantiate(ctx)
	return err
}

// Sandbox runs WebAssembly modules under limits. It is safe for
// concurrent use.
type Sandbox struct {
	cfg     Config
	runtime wazero.Runtime
	ccache  wazero.CompilationCache
	wasi    map[string]api.FunctionDefinition
	modules *moduleCache
	slots   chan struct{} // one token per worker
	comps   chan struct{} // one token per compiler
	chunk   int64         // fuel per refuel: refuelChunk (benchmarks change it)

	closing   chan struct{} // closed by Close: watchdogs stop their runs
	closeOnce sync.Once
	mu        sync.Mutex // guards closed and the start of runs
	closed    bool
	runs      sync.WaitGroup

	running     atomic.Int32 // runs holding a worker slot
	waiting     atomic.Int32 // runs waiting for one
	peakRunning atomic.Int32 // high-water mark of running, for tests
	compiling   atomic.Int32 // compilations holding a compiler, for tests
}

// New creates a sandbox. Close releases it.
func New(ctx context.Context, cfg Config) (*Sandbox, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var ccache wazero.CompilationCache
	if cfg.CacheDir != "" {
		var err error
		if ccache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("sandbox: compilation cache in %s: %w", cfg.CacheDir, err)
		}
	} else {
		ccache = wazero.NewCompilationCache()
	}
	rcfg := wazero.NewRuntimeConfig(). // the compiler where the platform has one
						WithCoreFeatures(api.CoreFeaturesV2). // what package meter understands
						WithCloseOnContextDone(false).        // see the package comment: the watchdog stops runs
						WithMemoryLimitPages(65536).          // the per-run allocator enforces Limits
						WithCustomSections(false).
						WithCompilationCache(ccache)
	r := wazero.NewRuntimeWithConfig(ctx, rcfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		_ = r.Close(ctx)
		_ = ccache.Close(ctx)
		return nil, fmt.Errorf("sandbox: instantiate WASI: %w", err)
	}
	if err := instantiateRefuel(ctx, r); err != nil {
		_ = r.Close(ctx)
		_ = ccache.Close(ctx)
		return nil, fmt.Errorf("sandbox: instantiate the meter's import: %w", err)
	}
	s := &Sandbox{
		cfg:     cfg,
		runtime: r,
		ccache:  ccache,
		wasi:    r.Module(wasiModule).ExportedFunctionDefinitions(),
		modules: newModuleCache(cfg.CachedModules, cfg.IdleModuleTTL),
		slots:   make(chan struct{}, cfg.Workers),
		comps:   make(chan struct{}, cfg.Compilers),
		chunk:   refuelChunk,
		closing: make(chan struct{}),
	}
	return s, nil
}

// Close stops the runs in progress (they end with ErrClosed), waits for
// them, and frees the compiled modules and the runtime. The on-disk
// compilation cache stays.
func (s *Sandbox) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeOnce.Do(func() { close(s.closing) })
	done := make(chan struct{})
	go func() {
		s.runs.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("sandbox: close: runs still ending: %w", ctx.Err())
	}
	s.modules.close()
	err := s.runtime.Close(ctx)
	if cerr := s.ccache.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sandbox: close: %w", err)
	}
	return nil
}

// CompiledModules reports how many compiled modules the sandbox holds in
// memory (the on-disk compilation cache aside).
func (s *Sandbox) CompiledModules() int { return s.modules.compiledLen() }

// Load reports the runs executing and the runs waiting for a worker.
func (s *Sandbox) Load() (running, waiting int) {
	return int(s.running.Load()), int(s.waiting.Load())
}

// begin registers a run, unless the sandbox is closed.
func (s *Sandbox) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.runs.Add(1)
	return nil
}

// acquireSlot waits for a worker.
func (s *Sandbox) acquireSlot(ctx context.Context) error {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("sandbox: waiting for a worker: %w", ctx.Err())
	case <-s.closing:
		return ErrClosed
	}
	n := s.running.Add(1)
	for {
		p := s.peakRunning.Load()
		if n <= p || s.peakRunning.CompareAndSwap(p, n) {
			break
		}
	}
	return nil
}

func (s *Sandbox) releaseSlot() {
	s.running.Add(-1)
	<-s.slots
}

// Compile checks and compiles a module into the cache without running
// it, so that a later Run starts warm. Its errors are Run's: a *Failure
// of kind TrapBadModule, ErrClosed, or the context's.
func (s *Sandbox) Compile(ctx context.Context, module []byte) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.runs.Done()
	e, err := s.load(ctx, module)
	if err != nil {
		return err
	}
	s.modules.release(e)
	return nil
}

// load returns the cached compiled module, compiling it on a miss with
// a compiler (not a worker). The caller has registered with begin. A
// compilation outlives a caller that stops waiting for it: wazero cannot
// interrupt one, and the next run of the module finds it done.
func (s *Sandbox) load(ctx context.Context, module []byte) (*cacheEntry, error) {
	key := sha256.Sum256(module)
	e, err := s.modules.acquire(ctx, key, compiler{
		wait: s.acquireCompiler,
		start: func(f func()) {
			s.runs.Add(1) // the caller's registration keeps the count above 0
			go func() {
				defer s.runs.Done()
				defer s.releaseCompiler()
				f()
			}()
		},
		compile: func() (*compiled, error) { return s.compile(module) },
	})
	if errors.Is(err, ErrInvalidModule) {
		return nil, &Failure{Kind: TrapBadModule, ExitCode: -1, Err: err}
	}
	return e, err
}

// acquireCompiler waits for a compiler.
func (s *Sandbox) acquireCompiler(ctx context.Context) error {
	select {
	case s.comps <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("sandbox: waiting for a compiler: %w", ctx.Err())
	case <-s.closing:
		return ErrClosed
	}
	s.compiling.Add(1)
	return nil
}

func (s *Sandbox) releaseCompiler() {
	s.compiling.Add(-1)
	<-s.comps
}

// compile instruments, checks and compiles a module. The structure
// bounds are checked by meter.Instrument, before wazero sees the module.
func (s *Sandbox) compile(module []byte) (*compiled, error) {
	ctx := context.Background() // wazero does not stop a compilation anyway
	res, err := s.check(module)
	if err != nil {
		return nil, err
	}
	cm, err := s.runtime.CompileModule(ctx, res.Module)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModule, err)
	}
	fail := func(format string, args ...any) (*compiled, error) {
		_ = cm.Close(context.Background())
		return nil, fmt.Errorf("%w: %s", ErrInvalidModule, fmt.Sprintf(format, args...))
	}
	for _, f := range cm.ImportedFunctions() {
		module, name, _ := f.Import()
		if module == meter.RefuelModule && name == meter.RefuelName {
			continue // the meter's own: Instrument refuses it in a module
		}
		want := s.wasi[name]
		if !sameTypes(f.ParamTypes(), want.ParamTypes()) || !sameTypes(f.ResultTypes(), want.ResultTypes()) {
			return fail("import %s.%s has type %v -> %v, WASI's is %v -> %v", wasiModule, name,
				f.ParamTypes(), f.ResultTypes(), want.ParamTypes(), want.ResultTypes())
		}
	}
	start, ok := cm.ExportedFunctions()["_start"]
	if !ok {
		return fail("no _start export: the sandbox runs WASI commands")
	}
	if len(start.ParamTypes()) != 0 || len(start.ResultTypes()) != 0 {
		return fail("_start must take and return nothing")
	}
	return &compiled{cm: cm, hasStart: res.HasStart, memoryMin: res.MemoryMin}, nil
}

// check reads and instruments a module under the structure bounds and
// checks its imports: linear in the module's size, no compilation.
func (s *Sandbox) check(module []byte) (*meter.Result, error) {
	res, err := meter.Instrument(module, s.cfg.bounds())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModule, err)
	}
	for _, im := range res.Imports {
		if im.Module != wasiModule || im.Kind != meter.KindFunc {
			return nil, fmt.Errorf("%w: imports %s.%s (kind %d): only %s functions are provided",
				ErrInvalidModule, im.Module, im.Name, im.Kind, wasiModule)
		}
		if _, ok := s.wasi[im.Name]; !ok {
			return nil, fmt.Errorf("%w: imports %s.%s, which WASI preview 1 does not have", ErrInvalidModule, im.Module, im.Name)
		}
	}
	return res, nil
}

// Check refuses a module that Run would refuse before compiling it (not
// WebAssembly, past a structure bound, an import other than WASI preview
// 1), in time linear in its size and without compiling: what a submitter
// is told at once. Its errors are *Failure of kind TrapBadModule.
func (s *Sandbox) Check(module []byte) error {
	if _, err := s.check(module); err != nil {
		return &Failure{Kind: TrapBadModule, ExitCode: -1, Err: err}
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool { return bytes.Equal(a, b) }

// Run runs module with input on stdin under lim and returns what it wrote
// on stdout. It compiles the module unless it is cached (waiting for a
// compiler), then waits for a worker. When the module fails, the error is
// a *Failure (errors.As) that wraps a sentinel of this package (errors.Is);
// other errors are ErrClosed, ErrInvalidLimits, ErrInputTooLarge or the
// context's when ctx ends first. Stats are filled as far as the run got.
func (s *Sandbox) Run(ctx context.Context, module, input []byte, lim Limits) ([]byte, Stats, error) {
	out, _, st, err := s.RunJob(ctx, module, input, lim, Job{})
	return out, st, err
}

// RunJob is Run with a job: arguments, environment, read-only files under
// /in, and the files under /out it returns after a normal exit (by path).
func (s *Sandbox) RunJob(ctx context.Context, module, input []byte, lim Limits, job Job) ([]byte, map[string][]byte, Stats, error) {
	out, files, st, err := s.run(ctx, module, input, lim, &job)
	return out, files, st, err
}

func (s *Sandbox) run(ctx context.Context, module, input []byte, lim Limits, job *Job) ([]byte, map[string][]byte, Stats, error) {
	var st Stats
	if err := lim.Validate(); err != nil {
		return nil, nil, st, err
	}
	if err := job.validate(); err != nil {
		return nil, nil, st, err
	}
	if lim.MaxModuleBytes > 0 && len(module) > lim.MaxModuleBytes {
		return nil, nil, st, &Failure{Kind: TrapBadModule, ExitCode: -1,
			Err: fmt.Errorf("%w: %d bytes, limit %d", ErrModuleTooLarge, len(module), lim.MaxModuleBytes)}
	}
	if len(input) > lim.MaxInputBytes {
		return nil, nil, st, fmt.Errorf("%w: %d bytes, limit %d", ErrInputTooLarge, len(input), lim.MaxInputBytes)
	}
	if err := s.begin(); err != nil {
		return nil, nil, st, err
	}
	defer s.runs.Done()
	e, err := s.load(ctx, module)
	if err != nil {
		return nil, nil, st, err
	}
	defer s.modules.release(e)
	if err := s.acquireSlot(ctx); err != nil {
		return nil, nil, st, err
	}
	defer s.releaseSlot()
	return s.execute(ctx, e.mod, input, lim, job)
}

// stop reasons of the watchdog.
const (
	stopNone int32 = iota
	stopTimeout
	stopContext
	stopClosing
)

// execute instantiates the module afresh and runs it to its end.
func (s *Sandbox) execute(ctx context.Context, mod *compiled, input []byte, lim Limits, job *Job) ([]byte, map[string][]byte, Stats, error) {
	st := Stats{ExitCode: -1}
	fail := func(kind TrapKind, err error) ([]byte, map[string][]byte, Stats, error) {
		return nil, nil, st, &Failure{Kind: kind, ExitCode: st.ExitCode, Stderr: st.Stderr, Err: err}
	}
	if mod.memoryMin > lim.MaxMemoryPages {
		return fail(TrapMemory, fmt.Errorf("%w: the module starts with %d pages, limit %s",
			ErrMemoryLimit, mod.memoryMin, pages(lim.MaxMemoryPages)))
	}
	stdout := &boundedBuffer{max: lim.MaxOutputBytes}
	stderr := &tailBuffer{max: s.cfg.StderrTail}
	clock := &virtualClock{}
	mem := &memoryLimiter{limit: uint64(lim.MaxMemoryPages) << 16}
	mcfg := wazero.NewModuleConfig().
		WithName("").         // anonymous: one instance per run
		WithStartFunctions(). // the host sets the budget first
		WithArgs("task").     // argv; no environment, no filesystem
		WithStdin(bytes.NewReader(input)).
		WithStdout(stdout).
		WithStderr(stderr).
		WithWalltime(clock.walltime, 1000).
		WithNanotime(clock.nanotime, 1000).
		WithNanosleep(clock.nanosleep).
		WithOsyield(func() {}).
		WithRandSource(newRandSource())
	mcfg, collect, cleanup, err := job.configure(mcfg)
	if err != nil {
		return nil, nil, st, err
	}
	defer cleanup()

	started := time.Now()
	ictx := experimental.WithMemoryAllocator(ctx, mem)
	inst, err := s.runtime.InstantiateModule(ictx, mod.cm, mcfg)
	if err != nil {
		st.Wall = time.Since(started)
		st.Stderr = stderr.tail()
		if mem.refused {
			return fail(TrapMemory, fmt.Errorf("%w: limit %s", ErrMemoryLimit, pages(lim.MaxMemoryPages)))
		}
		return fail(TrapGuest, fmt.Errorf("%w: instantiate: %w", ErrTrap, describe(err, nil)))
	}
	defer inst.Close(context.Background())
	used, ok1 := inst.ExportedGlobal(meter.FuelUsedExport).(api.MutableGlobal)
	limit, ok2 := inst.ExportedGlobal(meter.FuelLimitExport).(api.MutableGlobal)
	if !ok1 || !ok2 {
		return fail(TrapBadModule, fmt.Errorf("%w: the metered module lacks its fuel globals", ErrInvalidModule))
	}
	budget := int64(min(lim.Fuel, maxBudget))
	fl := &fuel{used: used, limit: limit, budget: budget, chunk: s.chunk}
	limit.Set(uint64(min(budget, s.chunk))) // refuel grants the rest
	cctx := context.WithValue(ctx, fuelKey{}, fl)

	// The watchdog stops the run when the time is up, ctx ends or the
	// sandbox closes, by lowering the budget global below the fuel spent.
	// Only the host writes it (refuel, on the guest's goroutine, under
	// the same lock), so the store cannot be lost; the guest sees it at
	// its next fuel check and calls refuel, which ends the run.
	var (
		reason      = stopNone
		spentAtStop int64
		wd          sync.WaitGroup
	)
	done := make(chan struct{})
	wd.Go(func() {
		timer := time.NewTimer(lim.Timeout - time.Since(started))
		defer timer.Stop()
		select {
		case <-done:
			return
		case <-timer.C:
			reason = stopTimeout
		case <-ctx.Done():
			reason = stopContext
		case <-s.closing:
			reason = stopClosing
		}
		spentAtStop = fl.stop()
	})

	if mod.hasStart {
		_, err = inst.ExportedFunction(meter.StartExport).Call(cctx)
	}
	if err == nil {
		_, err = inst.ExportedFunction("_start").Call(cctx)
	}
	close(done)
	wd.Wait()
	st.Wall = time.Since(started)
	st.PeakMemoryPages = uint32(mem.peak >> 16)
	spent := int64(used.Get())
	if reason != stopNone {
		spent = spentAtStop
	}
	st.FuelUsed = uint64(min(max(spent, 0), budget))

	st.Stderr = stderr.tail()
	var exit *sys.ExitError
	switch {
	case err == nil:
		st.ExitCode = 0
	case errors.As(err, &exit):
		st.ExitCode = int(exit.ExitCode())
		if st.ExitCode == 0 {
			err = nil
		}
	}
	switch {
	case stdout.overflow:
		return fail(TrapOutputLimit, fmt.Errorf("%w: more than %d bytes", ErrOutputTooLarge, lim.MaxOutputBytes))
	case err == nil:
		st.OutputBytes = len(stdout.buf)
		files, err := collect()
		if err != nil {
			return nil, nil, st, err
		}
		return stdout.buf, files, st, nil
	case reason == stopTimeout:
		return fail(TrapTime, fmt.Errorf("%w: %s", ErrTimeout, lim.Timeout))
	case reason == stopContext: // not the module's doing: no Failure
		return nil, nil, st, fmt.Errorf("sandbox: run stopped: %w", context.Cause(ctx))
	case reason == stopClosing:
		return nil, nil, st, fmt.Errorf("%w: run stopped", ErrClosed)
	case spent > budget:
		return fail(TrapFuel, fmt.Errorf("%w: budget %d", ErrFuelExhausted, lim.Fuel))
	case mem.refused:
		return fail(TrapMemory, fmt.Errorf("%w: limit %s, memory.grow refused, then: %w", ErrMemoryLimit, pages(lim.MaxMemoryPages), describe(err, nil)))
	case exit != nil:
		msg := fmt.Errorf("%w: code %d", ErrExit, exit.ExitCode())
		if h := stderr.headBeyondClip(); h != nil {
			msg = fmt.Errorf("%w: stderr began %q", msg, h)
		}
		return fail(TrapNone, msg)
	}
	trap := describe(err, stderr)
	if strings.Contains(trap.Error(), "stack overflow") { // wazero's ErrRuntimeStackOverflow is internal
		return fail(TrapStack, fmt.Errorf("%w: %w", ErrTrap, trap))
	}
	return fail(TrapGuest, fmt.Errorf("%w: %w", ErrTrap, trap))
}

// describe shortens a runtime error to its first line (wazero appends a
// stack trace) and adds the start of stderr when the Failure's message,
// which shows its end, would not show it.
func describe(err error, stderr *tailBuffer) error {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if stderr != nil {
		if h := stderr.headBeyondClip(); h != nil {
			return fmt.Errorf("%s (stderr began %q)", msg, h)
		}
	}
	return errors.New(msg)
}

// pages describes a number of 64 KiB pages.
func pages(n uint32) string {
	return fmt.Sprintf("%d pages (%d KiB)", n, uint64(n)*64)
}
