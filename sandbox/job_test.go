package sandbox

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/internal/testguest"
)

// jobGuest is a Go WASI program that reads its arguments, an environment
// variable and /in/data.txt, writes /out/result.txt (and OUT_KB KiB to
// /out/big.bin), and tries what it must not be able to do.
const jobGuest = `package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	in, err := os.ReadFile("/in/data.txt")
	if err != nil {
		fmt.Fprintln(os.Stderr, "read /in/data.txt:", err)
		os.Exit(2)
	}
	out := strings.Join(os.Args[1:], ",") + "|" + os.Getenv("GREETING") + "|" + string(in)
	if err := os.WriteFile("/out/result.txt", []byte(out), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "write result:", err)
		os.Exit(3)
	}
	if kb, _ := strconv.Atoi(os.Getenv("OUT_KB")); kb > 0 {
		if err := os.WriteFile("/out/big.bin", make([]byte, kb<<10), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write big:", err)
			os.Exit(4)
		}
	}
	if os.WriteFile("/in/data.txt", []byte("x"), 0o644) == nil {
		fmt.Fprintln(os.Stderr, "/in is writable")
		os.Exit(5)
	}
	if os.WriteFile("/out/../escaped.txt", []byte("x"), 0o644) == nil {
		if _, err := os.Stat("/escaped.txt"); err == nil {
			fmt.Fprintln(os.Stderr, "escaped /out")
			os.Exit(6)
		}
	}
	if fi, err := os.Stat("/out/result.txt"); err != nil || !fi.ModTime().Equal(fi.ModTime().Truncate(0)) || fi.ModTime().Unix() != 0 {
		fmt.Fprintln(os.Stderr, "output times are not stable:", fi.ModTime(), err)
		os.Exit(7)
	}
	fmt.Print(out)
}
`

// buildJobGuest compiles jobGuest with GOOS=wasip1.
func buildJobGuest(t *testing.T) []byte { return testguest.Build(t, jobGuest) }

func jobLimits() Limits {
	l := DefaultLimits()
	l.Timeout, l.Fuel, l.MaxMemoryPages = 60*time.Second, 1<<40, 1024
	l.MaxModuleBytes = 16 << 20
	return l
}

// A job's arguments, environment and input file reach the guest; its
// output file comes back; /in is read-only; /out cannot be escaped; file
// times read the same everywhere.
func TestJobArgsEnvFilesAndOutputs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go WASI guest")
	}
	s := newSandbox(t)
	guest := buildJobGuest(t)
	job := Job{
		Args:        []string{"alpha", "beta"},
		Env:         map[string]string{"GREETING": "hello", "OUT_KB": "200"},
		Files:       map[string][]byte{"/in/data.txt": []byte("input file")},
		Outputs:     []string{"/out/result.txt", "/out/big.bin", "/out/never-written.txt"},
		MaxOutBytes: 1 << 20,
	}
	out, files, st, err := s.RunJob(context.Background(), guest, nil, jobLimits(), job)
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, st.Stderr)
	}
	want := "alpha,beta|hello|input file"
	if string(out) != want || string(files["/out/result.txt"]) != want {
		t.Fatalf("stdout %q, result.txt %q, want %q", out, files["/out/result.txt"], want)
	}
	if len(files["/out/big.bin"]) != 200<<10 {
		t.Fatalf("big.bin: %d bytes", len(files["/out/big.bin"]))
	}
	if _, ok := files["/out/never-written.txt"]; ok || len(files) != 2 {
		t.Fatalf("files %v", len(files))
	}
	// The same job again gives the same bytes (replicas agree).
	out2, files2, _, err := s.RunJob(context.Background(), guest, nil, jobLimits(), job)
	if err != nil || !bytes.Equal(out, out2) || !bytes.Equal(files["/out/big.bin"], files2["/out/big.bin"]) {
		t.Fatalf("a second run differs: %v", err)
	}
}

// Writing past /out's quota fails inside the guest; the run reports it.
func TestJobOutputQuota(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go WASI guest")
	}
	s := newSandbox(t)
	job := Job{Env: map[string]string{"OUT_KB": "200"}, Files: map[string][]byte{"/in/data.txt": nil},
		Outputs: []string{"/out/big.bin"}, MaxOutBytes: 100 << 10}
	_, _, _, err := s.RunJob(context.Background(), buildJobGuest(t), nil, jobLimits(), job)
	var f *Failure
	if !errors.As(err, &f) || f.ExitCode != 4 || !strings.Contains(string(f.Stderr), "write big") {
		t.Fatalf("a write past the quota: %v", err)
	}
}

// Paths outside /in and /out, and bad environment names, are refused
// before anything runs.
func TestJobPathsChecked(t *testing.T) {
	s := newSandbox(t)
	for _, job := range []Job{
		{Files: map[string][]byte{"/etc/passwd": nil}},
		{Files: map[string][]byte{"/in/../etc/passwd": nil}},
		{Files: map[string][]byte{"/in/": nil}},
		{Outputs: []string{"/out/../x"}, MaxOutBytes: 1},
		{Outputs: []string{"/out/x"}},
		{Env: map[string]string{"A=B": "c"}},
	} {
		if _, _, _, err := s.RunJob(context.Background(), echoModule(), nil, testLimits(), job); !errors.Is(err, ErrBadJob) {
			t.Errorf("%+v: %v", job, err)
		}
	}
}
