package tasks

import _ "embed"

// echoWasm is a 400-byte hand-assembled WASI command that copies up to
// 60000 bytes of stdin to stdout: the sandbox tests build it instruction
// by instruction (sandbox/wasi_test.go, echoModule), and it is kept here
// as bytes so that the demo and the node tests can submit a custom
// wasm.exec.v1 module without a toolchain.
//
//go:embed examples/echo.wasm
var echoWasm []byte

// EchoModule returns the example wasm.exec.v1 module (a copy).
func EchoModule() []byte { return append([]byte(nil), echoWasm...) }
