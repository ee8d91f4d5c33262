package node

// Hand-assembled WASI command modules for the lifecycle tests (the
// sandbox's module builder is internal to it).

// leb encodes an unsigned LEB128 number.
func leb(v int) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, b|0x80)
			continue
		}
		return append(out, b)
	}
}

func wasmSection(id byte, content []byte) []byte {
	return append(append([]byte{id}, leb(len(content))...), content...)
}

func wasmName(s string) []byte { return append(leb(len(s)), s...) }

func wasmModule(sections ...[]byte) []byte {
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	for _, s := range sections {
		out = append(out, s...)
	}
	return out
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// exitWithStderr writes msg (under 64 bytes) to stderr and exits with code.
func exitWithStderr(code int, msg string) []byte {
	wasi := "wasi_snapshot_preview1"
	types := cat([]byte{0x03},
		[]byte{0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x01, 0x7f}, // fd_write
		[]byte{0x60, 0x01, 0x7f, 0x00},                         // proc_exit
		[]byte{0x60, 0x00, 0x00})                               // _start
	imports := cat([]byte{0x02},
		wasmName(wasi), wasmName("fd_write"), []byte{0x00, 0x00},
		wasmName(wasi), wasmName("proc_exit"), []byte{0x00, 0x01})
	exports := cat([]byte{0x02}, wasmName("memory"), []byte{0x02, 0x00}, wasmName("_start"), []byte{0x00, 0x02})
	body := cat([]byte{0x00},
		[]byte{0x41, 0x02, 0x41, 0x00, 0x41, 0x01, 0x41, 0x08, 0x10, 0x00, 0x1a}, // fd_write(2, iov 0, 1, nwritten 8); drop
		[]byte{0x41, byte(code), 0x10, 0x01},                                     // proc_exit(code)
		[]byte{0x0b})
	data := cat([]byte{16, 0, 0, 0, byte(len(msg)), 0, 0, 0}, make([]byte, 8), []byte(msg))
	return wasmModule(
		wasmSection(1, types),
		wasmSection(2, imports),
		wasmSection(3, []byte{0x01, 0x02}),
		wasmSection(5, []byte{0x01, 0x00, 0x01}),
		wasmSection(7, exports),
		wasmSection(10, cat([]byte{0x01}, leb(len(body)), body)),
		wasmSection(11, cat([]byte{0x01, 0x00, 0x41, 0x00, 0x0b}, leb(len(data)), data)),
	)
}

// spinForever loops until its fuel or time runs out, never calling the
// host (its fuel checks still reach Go: the sandbox's refuel).
func spinForever() []byte {
	body := []byte{0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b} // loop { br 0 }
	return wasmModule(
		wasmSection(1, []byte{0x01, 0x60, 0x00, 0x00}),
		wasmSection(3, []byte{0x01, 0x00}),
		wasmSection(5, []byte{0x01, 0x00, 0x01}),
		wasmSection(7, cat([]byte{0x02}, wasmName("memory"), []byte{0x02, 0x00}, wasmName("_start"), []byte{0x00, 0x00})),
		wasmSection(10, cat([]byte{0x01}, leb(len(body)), body)),
	)
}

// nestedBlocks is issue 12's compile bomb: _start opens depth blocks one
// inside the other (600 KB for 200,000).
func nestedBlocks(depth int) []byte {
	body := make([]byte, 0, 1+3*depth+1)
	body = append(body, 0x00)
	for range depth {
		body = append(body, 0x02, 0x40) // block (no result)
	}
	for range depth {
		body = append(body, 0x0b)
	}
	body = append(body, 0x0b)
	return wasmModule(
		wasmSection(1, []byte{0x01, 0x60, 0x00, 0x00}),
		wasmSection(3, []byte{0x01, 0x00}),
		wasmSection(5, []byte{0x01, 0x00, 0x01}),
		wasmSection(7, cat([]byte{0x02}, wasmName("memory"), []byte{0x02, 0x00}, wasmName("_start"), []byte{0x00, 0x00})),
		wasmSection(10, cat([]byte{0x01}, leb(len(body)), body)),
	)
}
