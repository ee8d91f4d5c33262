package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/internal/testguest"
	"github.com/proofmesh/proofmesh/node"
)

// cliGuest is a user's Go WASI program: it reads its arguments, $MODE and
// /in/data.txt, and writes /out/result.txt and 200 KB to /out/big.bin;
// with $SPIN set it loops until stopped.
const cliGuest = `package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

func main() {
	if os.Getenv("SPIN") != "" {
		n := 0
		for {
			n++
		}
	}
	data, err := os.ReadFile("/in/data.txt")
	if err != nil {
		fmt.Fprintln(os.Stderr, "read /in/data.txt:", err)
		os.Exit(2)
	}
	out := strings.Join(os.Args[1:], "+") + "|" + os.Getenv("MODE") + "|" + string(data)
	_ = os.WriteFile("/out/result.txt", []byte(out), 0o644)
	_ = os.WriteFile("/out/big.bin", bytes.Repeat([]byte("b"), 200<<10), 0o644)
	fmt.Print(out)
}
`

// A new user's job through the real CLI against a real testnet:
// arguments, environment, an input file, a 200 KB output file written to
// --output-dir; a running job canceled by its id's prefix; and a batch
// verify that names the bad bundle.
func TestJobThroughTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go WASI guest and runs a testnet")
	}
	ctx := context.Background()
	work := t.TempDir()
	module := filepath.Join(work, "app.wasm")
	if err := os.WriteFile(module, testguest.Build(t, cliGuest), 0o600); err != nil {
		t.Fatal(err)
	}
	// Leases long enough to compile a 2 MB Go module under the race
	// detector on a loaded machine.
	net := bootstrap.DefaultNetwork()
	for i := range net.TaskTypes {
		net.TaskTypes[i].SLO.LeaseMS = (2 * time.Minute).Milliseconds()
	}
	tn, err := node.StartTestnet(ctx, node.TestnetConfig{Nodes: 2, DataDir: filepath.Join(work, "net"), HeartbeatInterval: 300 * time.Millisecond, Network: net})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tn.Close(context.Background()) })
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tn.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	apiAddr, dataDir := tn.Nodes[0].APIAddr(), filepath.Join(tn.Dir(), "node-0")
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, append(args, "--api", apiAddr, "--data-dir", dataDir)...)
	}
	write := func(name, content string) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	in, data, outDir := write("in.txt", ""), write("data.txt", "from a file"), filepath.Join(work, "results")

	code, out, errs := cli("submit", "--type", "wasm.exec.v1", "--module", module, "--input-file", in, "--replicas", "2",
		"--arg", "one", "--arg", "two words", "--env", "MODE=fast", "--file", data+"=/in/data.txt",
		"--output", "/out/result.txt", "--output", "/out/big.bin", "--output-dir", outDir, "--timeout", "15s")
	if code != 0 {
		t.Fatalf("submit: %d\n%s\n%s", code, out, errs)
	}
	var v struct {
		TaskID string `json:"task_id"`
		State  string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.State != "accepted" {
		t.Fatalf("submit printed %q (%v)", out, err)
	}
	if b, err := os.ReadFile(filepath.Join(outDir, "result.txt")); err != nil || string(b) != "one+two words|fast|from a file" {
		t.Fatalf("result.txt: %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(outDir, "big.bin")); err != nil || fi.Size() != 200<<10 {
		t.Fatalf("big.bin: %v %v", fi, err)
	}

	// A running job, canceled by the first 8 characters of its id.
	code, out, errs = cli("submit", "--type", "wasm.exec.v1", "--module", module, "--input-file", in, "--replicas", "2",
		"--env", "SPIN=1", "--file", data+"=/in/data.txt", "--detach")
	var d struct {
		TaskID string `json:"task_id"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil || len(d.TaskID) != 64 {
		t.Fatalf("detached submit: %d %q %q", code, out, errs)
	}
	if code, _, errs := cli("cancel", d.TaskID[:8], "--reason", "enough"); code != 0 {
		t.Fatalf("cancel: %d %s", code, errs)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, out, _ := cli("task", d.TaskID[:8])
		if strings.Contains(out, `"state":"canceled"`) || strings.Contains(out, `"state": "canceled"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not canceled: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Batch verify: the good bundle verifies, the edited one is named.
	token, err := os.ReadFile(filepath.Join(dataDir, node.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+apiAddr+"/api/v1/tasks/"+v.TaskID+"/bundle", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	good := write("good.json", string(bundle))
	bad := write("bad.json", strings.Replace(string(bundle), `"results": [`, `"results": ["AAAA",`, 1))
	netJSON, err := json.Marshal(net)
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "verify", "--network", write("network.json", string(netJSON)), good, bad)
	if code != 1 || !strings.Contains(out, "FAIL  "+bad) || strings.Contains(out, "FAIL  "+good) || !strings.Contains(out, "1 of 2 bundles verify") {
		t.Fatalf("batch verify: %d\n%s", code, out)
	}
}
