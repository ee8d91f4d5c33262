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
//     the size of the code region that follows, and when it passes
//     another global the module calls refuel, a Go function of the
//     sandbox. That global holds 2^21 fuel at a time (refuelChunk), of
//     the run's budget kept in Go: refuel grants the next chunk, or ends
//     the run once the fuel spent passes the budget, at the check where a
//     budget set whole would have stopped it. The budget runs out after
//     the same work on every node, and it stops loops and call chains of
//     any shape. Refuel is also the guest's safepoint: compiled guest code
//     never yields to the Go runtime, so without it a garbage collection's
//     stop of the world waited for a spinning guest to end (seconds, the
//     whole node paused); now it waits a chunk at most, 2.5–3 ms of the
//     tightest loop, loop { br 0 }, and 0.25 ms of the mimc guest
//     (TestGCDoesNotWaitForGuest, BenchmarkRefuelInterval). Bulk memory
//     and table instructions (memory.copy, memory.fill, memory.init,
//     table.copy, table.fill, table.init) cost one fuel whatever their
//     length and run as one memmove without a safepoint, so the meter
//     also adds their length (8 bytes a table entry) plus 1 KiB to a
//     counter of bytes moved, apart from fuel, and calls refuel past 4
//     MiB (meter.BulkBytesPerRefuel): a loop of fills reaches a safepoint
//     every 0.02–0.2 ms for fills of 1 B to 64 KiB, before each fill for
//     longer ones (2.0–2.9 ms for 32 MiB), where it held a GC, and the
//     watchdog with it, for its whole run (TestGCDoesNotWaitForBulkGuest,
//     TestBulkGuestStopsUnderGC, BenchmarkBulkMetering). One instruction
//     is not split: a fill of a 64 MiB memory runs 10 ms without a
//     safepoint (43–110 ms on fresh memory), more under a larger memory
//     limit. Fuel figures do not change (TestBulkFuelUnchanged). Measured
//     cost of the meter, on 2 shared cores: 2.3–2.5× on an empty
//     countdown loop, 1.0–1.3× on the mimc guest, 0.9–1.1× on loops of
//     fills, the same with refuel as with the whole budget at once: a
//     refuel costs 0.1–0.4 µs, once per chunk (BenchmarkLoopMetering,
//     BenchmarkGuestMetering, BenchmarkBulkMetering).
//   - wall-clock time (ErrTimeout) and cancellation of the caller's
//     context or Close: wazero's WithCloseOnContextDone makes loops 16–89×
//     slower (80× measured here: it exits to Go on every back edge, wazero
//     issue 2466), so it is off. Instead a watchdog goroutine sets the
//     budget global to -1 when the time is up; the guest's next fuel check
//     calls refuel, which sees the stop and ends the run, microseconds
//     later. The guest only reads the budget, so the store cannot be lost
//     (a first design that overwrote the counter lost the race against the
//     guest's own read-modify-write of it and took 3–30 ms to stop a
//     loop); refuel, the other writer, takes the same lock as the stop, so
//     it cannot raise the global back after it. That store, by wazero's
//     MutableGlobal.Set, races with the guest's compiled code by design;
//     the race detector does not see machine code, and every Go access to
//     the globals is ordered by that lock or the watchdog's WaitGroup.
//   - memory (ErrMemoryLimit): a per-run allocator refuses to grow linear
//     memory past the limit (memory.grow returns -1); a run that then fails
//     is reported as out of memory, and a module whose initial memory is
//     already too large does not start.
//   - tables: wazero keeps a table on the Go heap, 8 bytes an entry,
//     outside the memory limit, so a table.grow by 400 million entries
//     on a table declared without a maximum allocated 3.2 GB (and 2^31
//     would have killed the node). The meter gives every table a guest
//     defines a maximum of at most Config.MaxTableEntries, 2^16 entries
//     (8·2^16 bytes, 512 KiB, each), so table.grow past it returns -1,
//     on every node alike, and a table.fill or table.copy moves 512 KiB
//     at most; a table whose minimum is above it, or more than
//     Config.MaxTables (16) tables, is refused (ErrInvalidModule), and an
//     imported table too, like any import but WASI's functions
//     (TestTableGrowIsBounded, TestTableFillOfLargestTable,
//     TestTablesOutOfBounds). Element segments and their entries are
//     bounded too, Config.MaxElements (2^16) for all together: wazero
//     keeps tens of bytes of Go heap for each in the compiled module and
//     8 bytes of each passive one in every instance, so a 4 MiB module of
//     one-byte entries had the heap grow by 386 MiB (TestElementsBounded).
//     So are types, globals and data segments (Config.MaxTypes,
//     MaxGlobals, MaxDataSegments), tens of bytes of heap each
//     (TestDeclarationsBounded).
//   - input, output and module size (ErrInputTooLarge, ErrOutputTooLarge,
//     ErrModuleTooLarge): checked before the run, and stdout is written
//     through a bounded buffer. Stderr keeps only a bounded tail.
//   - module structure (ErrInvalidModule): wazero's compile time grows
//     faster than linearly (with the square of a function's blocks and
//     branches, nested or not: 10,000 nested blocks 0.7 s, 12,000 ifs in a
//     row 6.3 s on 2 cores) and a compilation cannot be interrupted. So the
//     pass that instruments the module, linear in its size, also bounds
//     the nesting of blocks, the functions, the locals and body size of a
//     function, the instructions, the control weight (the sum over
//     functions of their control instructions squared) and the tables
//     (above), each a Config
//     field with a default, before wazero sees the module: the issue's
//     200,000 nested blocks are refused in about 25 ms, and the heaviest
//     module allowed compiles in seconds. The Go guests use under half of
//     every bound (they nest 549 deep: Go opens a block per call site).
//
// A module that fails makes Run return a *Failure: its TrapKind (fuel,
// memory, time, stack, output_limit, bad_module, trap, or "" for a clean
// exit with a non-zero code), the guest's exit code (-1 when it trapped)
// and the last Config.StderrTail bytes of its stderr, for a failure
// report; it wraps the sentinel above. Being stopped (the caller's
// context, Close) is not a Failure. Stats carry the exit code and the
// stderr tail of successful runs too.
//
// A module is addressed by the SHA-256 of its bytes. Compiled modules are
// kept in an in-memory LRU, and in wazero's compilation cache on disk when
// Config.CacheDir is set, so a node compiles a module once; a refused
// module is remembered too. Compilations are bounded by Config.Compilers
// and runs by Config.Workers, apart, so compile work cannot keep runs of
// compiled modules waiting; a caller whose context ends while it waits
// for either leaves at once (a compilation under way finishes for the
// next caller). Every run gets a fresh instance, closed afterwards, so
// nothing a guest does outlives its run.
package sandbox
