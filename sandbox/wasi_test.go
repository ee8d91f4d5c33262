package sandbox

import (
	"time"

	wt "github.com/proofmesh/proofmesh/sandbox/internal/wasmtest"
)

// Hand-assembled WASI commands for the tests. Every command imports the
// same WASI functions, so the index of the first defined function (its
// _start) is fixed.
var (
	i32x2 = []byte{wt.I32, wt.I32}
	i32x4 = []byte{wt.I32, wt.I32, wt.I32, wt.I32}
	i32r  = []byte{wt.I32}
)

const (
	fnFdWrite = iota
	fnFdRead
	fnProcExit
	fnEnvironSizesGet
	fnArgsSizesGet
	fnClockTimeGet
	fnRandomGet
	fnPathOpen
	fnArgsGet
	fnPollOneoff
	fnStart // the first defined function
)

var wasiTypes = []wt.Type{
	{},                             // 0: _start and helpers
	{Params: i32x4, Results: i32r}, // 1: fd_write, fd_read
	{Params: []byte{wt.I32}},       // 2: proc_exit
	{Params: i32x2, Results: i32r}, // 3: *_sizes_get, random_get, args_get
	{Params: []byte{wt.I32, wt.I64, wt.I32}, Results: i32r},                                                 // 4: clock_time_get
	{Params: []byte{wt.I32, wt.I32, wt.I32, wt.I32, wt.I32, wt.I64, wt.I64, wt.I32, wt.I32}, Results: i32r}, // 5: path_open
}

var wasiImports = []wt.Import{
	{Module: wasiModule, Name: "fd_write", Type: 1},
	{Module: wasiModule, Name: "fd_read", Type: 1},
	{Module: wasiModule, Name: "proc_exit", Type: 2},
	{Module: wasiModule, Name: "environ_sizes_get", Type: 3},
	{Module: wasiModule, Name: "args_sizes_get", Type: 3},
	{Module: wasiModule, Name: "clock_time_get", Type: 4},
	{Module: wasiModule, Name: "random_get", Type: 3},
	{Module: wasiModule, Name: "path_open", Type: 5},
	{Module: wasiModule, Name: "args_get", Type: 3},
	{Module: wasiModule, Name: "poll_oneoff", Type: 1},
}

// command returns a WASI command whose _start runs code (end included),
// with one page of memory (or pages) holding data at their offsets.
func command(code []byte, data ...wt.Data) wt.Module {
	return wt.Module{
		Types:     wasiTypes,
		Imports:   wasiImports,
		Funcs:     []wt.Func{{Type: 0, Code: code}},
		MemoryMin: 1,
		Exports: []wt.Export{
			{Name: "_start", Kind: wt.KindFunc, Index: fnStart},
			{Name: "memory", Kind: wt.KindMemory, Index: 0},
		},
		Data: data,
	}
}

// store32 stores v at addr.
func store32(addr, v int32) []byte {
	return wt.Cat(wt.I32Const(addr), wt.I32Const(v), wt.I32Store(0))
}

// writeOut writes memory[ptr:ptr+n] to fd, exiting with 5 when that fails.
func writeOut(fd, ptr, n int32) []byte {
	return wt.Cat(
		store32(0, ptr), store32(4, n),
		wt.I32Const(fd), wt.I32Const(0), wt.I32Const(1), wt.I32Const(8), wt.Call(fnFdWrite),
		wt.If, wt.I32Const(5), wt.Call(fnProcExit), wt.End,
	)
}

// exit exits with code.
func exit(code int32) []byte { return wt.Cat(wt.I32Const(code), wt.Call(fnProcExit)) }

// echoModule copies stdin (up to 60000 bytes, one read) to stdout.
func echoModule() []byte {
	return command(wt.Cat(
		store32(0, 64), store32(4, 60000),
		wt.I32Const(0), wt.I32Const(0), wt.I32Const(1), wt.I32Const(8), wt.Call(fnFdRead), wt.Drop,
		wt.I32Const(4), wt.I32Const(8), wt.I32Load(0), wt.I32Store(0), // iov.len = nread
		wt.I32Const(1), wt.I32Const(0), wt.I32Const(1), wt.I32Const(12), wt.Call(fnFdWrite),
		wt.If, wt.I32Const(5), wt.Call(fnProcExit), wt.End,
		wt.End,
	)).Bytes()
}

// spinModule loops forever.
func spinModule() []byte {
	return command(wt.Cat(wt.Loop, wt.Br(0), wt.End, wt.End)).Bytes()
}

// countModule loops n times, then writes "ok".
func countModule(n int32) []byte {
	return withLocals(command(wt.Cat(
		wt.I32Const(n), wt.LocalSet(0),
		wt.Loop,
		wt.LocalGet(0), wt.I32Const(1), wt.I32Sub, wt.LocalTee(0), wt.BrIf(0),
		wt.End,
		writeOut(1, 100, 2),
		wt.End,
	), wt.Data{Offset: 100, Bytes: []byte("ok")}), 1, wt.I32).Bytes()
}

// growModule grows memory a page at a time and, like a Go guest, traps
// when memory.grow fails.
func growModule() []byte {
	return command(wt.Cat(
		wt.Loop,
		wt.I32Const(1), wt.MemoryGrow, wt.I32Const(-1), []byte{0x46}, // i32.eq
		wt.If, wt.Unreachable, wt.End,
		wt.Br(0),
		wt.End,
		wt.End,
	)).Bytes()
}

// probeModule asks the host for its environment, a file, the clocks and
// randomness, and writes what it got to stdout as 64 bytes from offset 64:
//
//	64 environ count, 68 environ size, 72 errno
//	76 args count, 80 args size, 84 errno
//	88 fd of /etc (unset), 92 errno of path_open
//	96 realtime (8 bytes), 104 errno
//	108 monotonic time (8 bytes), 116 errno
//	120 random (4 bytes), 124 errno
//	128.. argv strings
func probeModule() []byte {
	errnoAt := func(addr int32, call ...[]byte) []byte {
		return wt.Cat(wt.I32Const(addr), wt.Cat(call...), wt.I32Store(0))
	}
	return command(wt.Cat(
		errnoAt(72, wt.I32Const(64), wt.I32Const(68), wt.Call(fnEnvironSizesGet)),
		errnoAt(84, wt.I32Const(76), wt.I32Const(80), wt.Call(fnArgsSizesGet)),
		errnoAt(92, wt.I32Const(3), wt.I32Const(0), wt.I32Const(200), wt.I32Const(4), wt.I32Const(0),
			wt.I64Const(0), wt.I64Const(0), wt.I32Const(0), wt.I32Const(88), wt.Call(fnPathOpen)),
		errnoAt(104, wt.I32Const(0), wt.I64Const(1), wt.I32Const(96), wt.Call(fnClockTimeGet)),
		errnoAt(116, wt.I32Const(1), wt.I64Const(1), wt.I32Const(108), wt.Call(fnClockTimeGet)),
		errnoAt(124, wt.I32Const(120), wt.I32Const(4), wt.Call(fnRandomGet)),
		wt.I32Const(300), wt.I32Const(128), wt.Call(fnArgsGet), wt.Drop,
		writeOut(1, 64, 72),
		wt.End,
	), wt.Data{Offset: 200, Bytes: []byte("/etc")}).Bytes()
}

// withLocals gives _start n locals of type typ.
func withLocals(m wt.Module, n, typ byte) wt.Module {
	m.Funcs[0].Locals = []byte{1, n, typ}
	return m
}

// sleepModule sleeps an hour with poll_oneoff, then writes the number of
// events (4 bytes), poll_oneoff's errno (4) and the monotonic clock (8).
func sleepModule() []byte {
	i64Store := []byte{0x37, 0x03, 0x00}
	return command(wt.Cat(
		// One subscription at 400: clock (tag 0 at 408), monotonic (id 1
		// at 416), relative timeout of an hour (424).
		store32(416, 1),
		wt.I32Const(424), wt.I64Const(int64(time.Hour)), i64Store,
		wt.I32Const(564), wt.I32Const(400), wt.I32Const(500), wt.I32Const(1), wt.I32Const(560), wt.Call(fnPollOneoff), wt.I32Store(0),
		wt.I32Const(1), wt.I64Const(1), wt.I32Const(568), wt.Call(fnClockTimeGet), wt.Drop,
		writeOut(1, 560, 16),
		wt.End,
	)).Bytes()
}
