package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/internal/testguest"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
)

// argsGuest is a Go WASI program that prints its arguments, $MODE and
// stdin; given /in/data.txt it writes it back, upper-cased, to
// /out/result.txt, and $OUT_KB KiB to /out/big.bin.
const argsGuest = `package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
)

func main() {
	in, _ := io.ReadAll(os.Stdin)
	fmt.Printf("%q %q %s", os.Args[1:], os.Getenv("MODE"), in)
	fmt.Fprintln(os.Stderr, "note: read", len(in), "bytes")
	if data, err := os.ReadFile("/in/data.txt"); err == nil {
		if err := os.WriteFile("/out/result.txt", bytes.ToUpper(data), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write result:", err)
			os.Exit(3)
		}
	}
	if kb, _ := strconv.Atoi(os.Getenv("OUT_KB")); kb > 0 {
		if err := os.WriteFile("/out/big.bin", bytes.Repeat([]byte("z"), kb<<10), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write big:", err)
			os.Exit(4)
		}
	}
}
`

// startJobTestnet starts a testnet for jobs of a Go guest: a lease long
// enough for a 2 MB module under the race detector on a loaded machine,
// and the module compiled on every node first (compiling is not what
// these tests measure).
func startJobTestnet(t *testing.T, nodes int, guest []byte) *Testnet {
	t.Helper()
	net := shortLeaseNetwork(60 * time.Second)
	tn := startTestnet(t, nodes, func(_ int, c *Config) { c.Network = net })
	var wg sync.WaitGroup
	for _, n := range tn.Nodes {
		wg.Go(func() {
			if err := n.sb.Compile(t.Context(), guest); err != nil {
				t.Errorf("compile the guest: %v", err)
			}
		})
	}
	wg.Wait()
	return tn
}

// buildArgsGuest compiles argsGuest with GOOS=wasip1.
func buildArgsGuest(t *testing.T) []byte { return testguest.Build(t, argsGuest) }

// A job's arguments and environment reach a Go WASI module on every
// replica, and its own fuel limit ends a spinning module with a confirmed
// "fuel" failure far below the type's budget (fuel, unlike time, fails
// every replica the same way).
func TestJobSpecArgsEnvAndLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go WASI guest")
	}
	guest := buildArgsGuest(t)
	tn := startJobTestnet(t, 2, guest)
	sub := tn.Nodes[0]
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("stdin!"), Module: guest, Replicas: 2,
		Args: []string{"--verbose", "x y"}, Env: map[string]string{"MODE": "fast"}, Limits: &protocol.JobLimits{TimeoutMS: 15000}})
	v := waitTask(t, sub, id, 2*time.Minute)
	var out string
	_ = json.Unmarshal(v.Output, &out)
	got, _ := base64.StdEncoding.DecodeString(out)
	if v.State != protocol.StateAccepted || string(got) != `["--verbose" "x y"] "fast" stdin!` {
		t.Fatalf("task %s %q: output %q", v.State, v.Reason, got)
	}
	if len(v.Results) < 2 || string(v.Results[0].Stderr) != "note: read 6 bytes\n" {
		t.Fatalf("the replicas' stderr (agreed on with the output): %+v", v.Results)
	}
	// Any node shows the job asked for (a new user's walkthrough of
	// 2026-12-07 found no job in another node's view).
	other, err := tn.Nodes[1].Task(id)
	if err != nil || other.Job == nil || strings.Join(other.Job.Args, "|") != "--verbose|x y" || other.Job.Env["MODE"] != "fast" || other.Job.Limits == nil || other.Job.Limits.TimeoutMS != 15000 {
		t.Fatalf("the job in another node's view: %+v, %v", other.Job, err)
	}

	start := time.Now()
	id = submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: spinForever(), Replicas: 2,
		Limits: &protocol.JobLimits{Fuel: 1_000_000}})
	v = waitTask(t, sub, id, 2*time.Minute)
	if v.State != protocol.StateFailed || v.Failure == nil || v.Failure.Trap != protocol.TrapFuel || !strings.Contains(v.Reason, "budget 1000000") {
		t.Fatalf("a spinning job with a fuel limit of 1,000,000: %s %q", v.State, v.Reason)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the job's own limit took %s to end it", took)
	}
}

// Job specs past their bounds are refused at submission, naming the bound.
func TestJobSpecRefusals(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	sub := tn.Nodes[0]
	for _, c := range []struct {
		req  api.SubmitRequest
		want string
	}{
		{api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: echoModule(t), Limits: &protocol.JobLimits{TimeoutMS: 10 * 60 * 1000}}, "limits.timeout_ms"},
		{api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: echoModule(t), Limits: &protocol.JobLimits{Fuel: 1 << 62}}, "limits.fuel"},
		{api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: echoModule(t), Env: map[string]string{"1BAD": "x"}}, "environment variable name"},
		{api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: echoModule(t), Args: make([]string, 65)}, "arguments"},
		{api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: echoModule(t), Args: []string{strings.Repeat("a", 5000)}}, "argument 1"},
		{api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"1"}`), Args: []string{"a"}}, "takes no job spec"},
		{api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: echoModule(t), Files: map[string]json.RawMessage{"/etc/passwd": json.RawMessage(`"eA=="`)}}, "not a file path under /in"},
		{api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: echoModule(t), Files: map[string]json.RawMessage{"/in/x": json.RawMessage(`"%%%"`)}}, "not base64"},
		{api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: echoModule(t), Files: map[string]json.RawMessage{"/in/x": json.RawMessage(`{"hash":"` + strings.Repeat("ab", 32) + `"}`)}}, "holds no blob"},
		{api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: echoModule(t), Outputs: []string{"/out/../x"}}, "not a file path under /out"},
	} {
		_, err := sub.Submit(t.Context(), c.req)
		if !errors.Is(err, protocol.ErrBadInput) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "job spec: ") {
			t.Errorf("%s: %v, want %q, said to be the job spec's", c.want, err, c.want)
		}
	}
}

// A job's input file reaches every replica, its output files come back
// by hash, and a node that ran nothing serves them (fetched from an
// executor and checked): a 200 KB output included.
func TestJobFilesInAndOut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go WASI guest")
	}
	guest := buildArgsGuest(t)
	tn := startJobTestnet(t, 3, guest)
	sub, a, b := tn.Nodes[0], tn.Nodes[1], tn.Nodes[2]
	sub.rankHook = func([]string) []string { return []string{a.ID().String(), b.ID().String()} }
	data, _ := json.Marshal([]byte("hello files"))
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: guest, Replicas: 2,
		Env: map[string]string{"OUT_KB": "200"}, Files: map[string]json.RawMessage{"/in/data.txt": data},
		Outputs: []string{"/out/result.txt", "/out/big.bin"}})
	v := waitTask(t, sub, id, 2*time.Minute)
	if v.State != protocol.StateAccepted || len(v.Files) != 2 {
		t.Fatalf("task %s %q, files %+v", v.State, v.Reason, v.Files)
	}
	res, err := sub.TaskFile(t.Context(), id[:10], "/out/result.txt")
	if err != nil || string(res) != "HELLO FILES" {
		t.Fatalf("result.txt from a node that ran nothing: %q %v", res, err)
	}
	big, err := sub.TaskFile(t.Context(), id, "/out/big.bin")
	if err != nil || len(big) != 200<<10 || protocol.HashHex(big) != v.Files[0].Hash && protocol.HashHex(big) != v.Files[1].Hash {
		t.Fatalf("big.bin: %d bytes, %v", len(big), err)
	}
	if _, err := sub.TaskFile(t.Context(), id, "/out/nope"); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "/out/big.bin") {
		t.Fatalf("an output the task lacks: %v", err)
	}
	bundle, err := sub.Bundle(id)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := VerifyBundle(bundle, sub.reg, sub.keys); err != nil || !rep.Valid {
		t.Fatalf("bundle of a job with files: %v", err)
	}
}

// A wasm.exec.v1 task may name a module this node holds by its hash
// (DESIGN.md's "module_hash"; the API had refused the field, a new user's
// walkthrough of 2026-12-07).
func TestSubmitByModuleHash(t *testing.T) {
	tn := startTestnet(t, 2, nil)
	sub := tn.Nodes[0]
	h, err := sub.db.PutBlob(echoModule(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := sub.Submit(ctx, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("by hash"), ModuleHash: h, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if v := waitTask(t, sub, id, 4*testLease); v.State != protocol.StateAccepted || v.ModuleHash != h {
		t.Fatalf("task by module hash: %s %q, module %s", v.State, v.Reason, v.ModuleHash)
	}
	unknown := protocol.HashHex([]byte("no such module"))
	if _, err := sub.Submit(ctx, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("x"), ModuleHash: unknown}); !errors.Is(err, protocol.ErrBadInput) || !strings.Contains(err.Error(), "holds no module") {
		t.Fatalf("an unknown module hash: %v", err)
	}
	if _, err := sub.Submit(ctx, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("x"), ModuleHash: h, Module: echoModule(t)}); !errors.Is(err, protocol.ErrBadInput) || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("module and module_hash: %v", err)
	}
}
