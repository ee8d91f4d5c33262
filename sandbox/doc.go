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
//     instrumented when it is loaded (package sandbox/internal/meter): a
//     mutable i64 global is decremented at every function entry and loop
//     header by the size of the code region that follows, and the module
//     traps when it goes negative. The budget runs out after the same work
//     on every node, and it stops loops and call chains of any shape.
//   - wall-clock time (ErrTimeout) and cancellation of the caller's
//     context: wazero's WithCloseOnContextDone makes loops 16–89× slower
//     (it exits to Go on every back edge, wazero issue 2466), so it is off.
//     Instead a watchdog goroutine writes a large negative value into the
//     fuel global when the time is up; the guest's next fuel check traps.
//     The guest's own read-modify-write of the global can overwrite that
//     store in the few instructions between its load and its store, so the
//     watchdog repeats it every millisecond until the run returns. The
//     store is a plain 8-byte store into the instance's global slot made by
//     wazero's MutableGlobal.Set, racing with the guest's compiled code by
//     design; the race detector does not see machine code, and every Go
//     access to the global is ordered by the watchdog's stop channel.
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
