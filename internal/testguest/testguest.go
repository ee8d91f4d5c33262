// Package testguest builds Go programs as WASI command modules for tests
// (GOOS=wasip1 GOARCH=wasm), each source once per test binary: the guests
// a submitter would write, built with the same toolchain as the node.
package testguest

import (
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	mu     sync.Mutex
	built  = map[[32]byte][]byte{}
	failed = map[[32]byte]error{}
)

// Build compiles src (a main package) and returns the module's bytes.
func Build(tb testing.TB, src string) []byte {
	tb.Helper()
	key := sha256.Sum256([]byte(src))
	mu.Lock()
	defer mu.Unlock()
	if b, ok := built[key]; ok {
		return b
	}
	if err, ok := failed[key]; ok {
		tb.Fatalf("build the Go WASI guest: %v", err)
	}
	b, err := build(src)
	if err != nil {
		failed[key] = err
		tb.Fatalf("build the Go WASI guest: %v", err)
	}
	built[key] = b
	return b
}

func build(src string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "proofmesh-guest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	main, out := filepath.Join(dir, "main.go"), filepath.Join(dir, "guest.wasm")
	if err := os.WriteFile(main, []byte(src), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "build", "-o", out, main)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, errors.New(string(b))
	}
	return os.ReadFile(out)
}
