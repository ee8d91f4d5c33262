// Package sandbox owns the execution of untrusted WebAssembly on a node:
// a wazero runtime that runs a WASI command module as a pure function of
// its input, under hard limits, with a cache of compiled modules.
//
// A run gives the guest its input on stdin and takes its output from
// stdout; args are ["task"], and there is no environment, no filesystem,
// no network. The clocks and the random source are virtual and the same on
// every node (walltime and nanotime advance by 1 µs per read and by the
// requested time per sleep, from a fixed epoch; randomness is a ChaCha8
// stream with a fixed seed), so the same module and input give the same
// output everywhere: replicated verification compares output hashes.
//
// Limits, each enforced by the runtime and reported by a sentinel error
// that names it and its value:
//
//   - fuel (ErrFuelExhausted): wazero has no fuel, so every module is
//     instrumented when it is loaded (package sandbox/internal/meter): an
//     i64 counter is charged at every function entry and loop header with
//     the size of the code region that follows, and the module traps when
//     it passes the budget, another global. The budget runs out after the
//     same work on every node, and it stops loops and call chains of any
//     shape. Measured cost: 1.6× on an empty loop, 1.06× on the mimc guest.
//   - wall-clock time (ErrTimeout) and cancellation of the caller's
//     context or Close: wazero's WithCloseOnContextDone makes loops 16–89×
//     slower (80× measured here: it exits to Go on every back edge, wazero
//     issue 2466), so it is off. Instead a watchdog goroutine sets the
//     budget global to -1 when the time is up; the guest's next fuel check
//     traps, microseconds later. The guest only reads the budget, so the
//     store cannot be lost (a first design that overwrote the counter lost
//     the race against the guest's own read-modify-write of it and took
//     3–30 ms to stop a loop). That store, by wazero's MutableGlobal.Set,
//     races with the guest's compiled code by design; the race detector
//     does not see machine code, and every Go access to the globals is
//     ordered by the watchdog's WaitGroup.
//   - memory (ErrMemoryLimit): a per-run allocator refuses to grow linear
//     memory past the limit (memory.grow returns -1); a run that then fails
//     is reported as out of memory, and a module whose initial memory is
//     already too large does not start.
//   - input, output and module size (ErrInputTooLarge, ErrOutputTooLarge,
//     ErrModuleTooLarge): checked before the run, and stdout is written
//     through a bounded buffer. Stderr keeps only a bounded tail.
//
// A module is addressed by the SHA-256 of its bytes. Compiled modules are
// kept in an in-memory LRU, and in wazero's compilation cache on disk when
// Config.CacheDir is set, so a node compiles a module once. Runs are
// bounded by Config.Workers; more wait in line. Every run gets a fresh
// instance, closed afterwards, so nothing a guest does outlives its run.
package sandbox
