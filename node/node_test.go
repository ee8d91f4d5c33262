package node

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/sandbox"
	"github.com/proofmesh/proofmesh/tasks"
)

func TestInitCreatesPrivateFilesAndKeepsThem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	res, err := Init(dir)
	if err != nil || !res.KeyCreated || !res.TokenCreated {
		t.Fatalf("init = %+v, %v", res, err)
	}
	for _, f := range []string{IdentityFile, TokenFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v", f, err, st.Mode())
		}
	}
	again, err := Init(dir)
	if err != nil || again.KeyCreated || again.PeerID != res.PeerID {
		t.Fatalf("second init = %+v, %v", again, err)
	}
}

func TestBadIdentityFilesStopTheNode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(path string)
		want  string
	}{
		{"corrupt", func(p string) { _ = os.WriteFile(p, []byte("not a key"), 0o600) }, "corrupt"},
		{"group readable", func(p string) { _ = os.Chmod(p, 0o640) }, "chmod 600"},
		{"unreadable", func(p string) { _ = os.Remove(p); _ = os.Mkdir(p, 0o700) }, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Init(dir); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, IdentityFile)
			tc.spoil(path)
			before, _ := os.ReadFile(path)
			cfg := testConfig(t, dir)
			_, err := New(context.Background(), cfg)
			if !errors.Is(err, ErrBadKeyFile) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q naming %s", err, tc.want, path)
			}
			after, _ := os.ReadFile(path)
			if string(before) != string(after) {
				t.Fatal("key file was replaced")
			}
		})
	}
}

func testConfig(t *testing.T, dir string) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.APIAddr = "127.0.0.1:0"
	cfg.HeartbeatInterval = 200 * time.Millisecond
	cfg.Colocation = true
	cfg.SyncWrites = false
	cfg.Declared = Declared{CPUCores: 2, MemoryGB: 2, NodeType: "compute"}
	cfg.WasmCacheDir = wasmCache
	return cfg
}

func TestOwnCapabilitiesCheckedAtStart(t *testing.T) {
	for _, tc := range []struct {
		d    Declared
		want string
	}{
		{Declared{CPUCores: 1000}, "cpu_cores"},
		{Declared{Region: "Not Valid!"}, "region"},
		{Declared{NodeType: "miner"}, "node_type"},
		{Declared{BandwidthMbps: 1}, "bandwidth_mbps"},
	} {
		cfg := testConfig(t, t.TempDir())
		cfg.Declared = tc.d
		_, err := New(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("declared %+v: err = %v, want mention of %s", tc.d, err, tc.want)
		}
	}
}

func TestAPIBeyondLoopbackNeedsToken(t *testing.T) {
	if loopbackOnly("0.0.0.0:8080") || !loopbackOnly("127.0.0.1:1") || !loopbackOnly("[::1]:1") {
		t.Fatal("loopbackOnly wrong")
	}
}

// A node restarted on the same data dir comes back with its identity and
// its peer table.
func TestRestartKeepsIdentityAndPeers(t *testing.T) {
	ctx := context.Background()
	tn := startTwoOnDisk(t)
	n1 := tn.Nodes[1]
	id, other := n1.ID(), tn.Nodes[0].ID()
	cfg := n1.cfg
	n1.Kill()
	_ = tn.Nodes[0].Close(ctx)
	back, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close(ctx)
	if back.ID() != id {
		t.Fatalf("identity changed: %s -> %s", id, back.ID())
	}
	if _, err := back.Peer(other.String()); err != nil {
		// node 0 left gracefully... but only after node 1 was killed, so
		// node 1 still knows it (now offline)
		t.Fatalf("peer table lost: %v", err)
	}
	if p, _ := back.Peer(other.String()); p.Status != protocol.StatusOffline && p.Status != protocol.StatusStale && p.Status != protocol.StatusOnline {
		t.Fatalf("restored peer status %s", p.Status)
	}
}

// wasmCache is shared by the tests' nodes: compiling the Go guests under
// the race detector takes tens of seconds, once.
var wasmCache string

func TestMain(m *testing.M) {
	// The same per-user cache as the sandbox and tasks tests: wazero
	// keys it by its version and the module's hash.
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	wasmCache = filepath.Join(base, "proofmesh", "test-wazero-cache")
	if err := prewarm(wasmCache); err != nil {
		fmt.Fprintln(os.Stderr, "prewarm:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// prewarm compiles the built-in guests into the shared cache once, before
// any node races to do it.
func prewarm(dir string) error {
	ctx := context.Background()
	cfg := sandbox.DefaultConfig()
	cfg.CacheDir = dir
	sb, err := sandbox.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer sb.Close(ctx)
	for _, id := range tasks.TypeIDs() {
		m, _ := tasks.Module(id)
		if err := sb.Compile(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// testLogger logs to stderr when PROOFMESH_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("PROOFMESH_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func shortLeaseNetwork(lease time.Duration) *bootstrap.Network {
	n := bootstrap.DefaultNetwork()
	for i := range n.TaskTypes {
		n.TaskTypes[i].SLO.LeaseMS = lease.Milliseconds()
	}
	return n
}

// testLease is the lease of the tests' network: long enough for a proof
// under the race detector on a loaded 2-core machine.
const testLease = 12 * time.Second

func startTestnet(t *testing.T, nodes int, configure func(i int, c *Config)) *Testnet {
	t.Helper()
	ctx := context.Background()
	tn, err := StartTestnet(ctx, TestnetConfig{
		Nodes: nodes, DataDir: t.TempDir(), HeartbeatInterval: 300 * time.Millisecond,
		Network: shortLeaseNetwork(testLease), Logger: testLogger(), Configure: func(i int, c *Config) {
			c.WasmCacheDir = wasmCache
			if configure != nil {
				configure(i, c)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tn.Close(context.Background()) })
	// A node compiles a built-in module at its first run: under the race
	// detector on a loaded machine that takes seconds (instrumenting a
	// 3 MB Go guest, loading it from the shared on-disk cache), which the
	// tests' short leases do not leave. Compile them before the tests
	// start their clocks, on every node at once.
	var wg sync.WaitGroup
	errs := make(chan error, len(tn.Nodes)*len(tasks.TypeIDs()))
	for _, n := range tn.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, id := range tasks.TypeIDs() {
				m, _ := tasks.Module(id)
				if err := n.sb.Compile(ctx, m); err != nil {
					errs <- fmt.Errorf("compile %s: %w", id, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tn.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	return tn
}

func waitTask(t *testing.T, n *Node, id string, d time.Duration) api.TaskView {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v, err := n.Task(id)
		if err != nil {
			t.Fatal(err)
		}
		if v.State.Terminal() {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still %s after %s: %+v", id, v.State, d, v.Timeline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func submit(t *testing.T, n *Node, req api.SubmitRequest) string {
	t.Helper()
	id, err := n.Submit(context.Background(), req)
	if err != nil {
		t.Fatalf("submit %s: %v", req.Type, err)
	}
	return id
}

// The same job submitted several times in a row is several tasks, each
// with its own id: the ids hash the content, creation time included, and
// submissions within one millisecond used to collide ("already exists").
func TestIdenticalSubmissionsAreDistinctTasks(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	sub := tn.Nodes[0]
	seen := map[string]bool{}
	for range 20 {
		id := submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x": "7"}`)})
		if seen[id] {
			t.Fatalf("task id %s given twice", id)
		}
		seen[id] = true
	}
}

// Each built-in type is accepted with a verified result; the bundle of a
// proven task verifies offline and fails when tampered with.
func TestEveryBuiltinTypeAccepted(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	sub := tn.Nodes[0]
	mimc := submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x": "42"}`)})
	mlp := submit(t, sub, api.SubmitRequest{Type: "mlp.infer.v1", Input: json.RawMessage(`{"x":[1,-2,3,-4,5,-6,7,-8,9,-10,11,-12,13,-14,15,-16]}`)})
	echo := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("hello"), Module: echoModule(t), Replicas: 2})

	v := waitTask(t, sub, mimc, 2*time.Minute)
	if v.State != protocol.StateAccepted || !strings.Contains(string(v.Output), `"y"`) {
		t.Fatalf("mimc: %s %s %s", v.State, v.Reason, v.Output)
	}
	if !strings.Contains(v.Verification, "groth16") {
		t.Fatalf("verification = %q", v.Verification)
	}
	states := []protocol.TaskState{}
	for _, e := range v.Timeline {
		states = append(states, e.State)
	}
	for _, want := range []protocol.TaskState{protocol.StatePending, protocol.StateAssigned, protocol.StateVerifying, protocol.StateAccepted} {
		if !slices.Contains(states, want) {
			t.Errorf("timeline %v lacks %s", states, want)
		}
	}
	v = waitTask(t, sub, mlp, 2*time.Minute)
	if v.State != protocol.StateAccepted || !strings.Contains(string(v.Output), `"class"`) {
		t.Fatalf("mlp: %s %s %s", v.State, v.Reason, v.Output)
	}
	// Only the GPU node (odd index) may run mlp.
	for _, c := range v.Candidates {
		if c != tn.Nodes[1].ID().String() {
			t.Fatalf("mlp candidate %s has no GPU", c)
		}
	}
	v = waitTask(t, sub, echo, 2*time.Minute)
	want, _ := json.Marshal(base64.StdEncoding.EncodeToString([]byte("hello")))
	if v.State != protocol.StateAccepted || string(v.Output) != string(want) {
		t.Fatalf("wasm.exec: %s %s %s", v.State, v.Reason, v.Output)
	}

	if byPrefix, err := sub.Task(mimc[:8]); err != nil || byPrefix.TaskID != mimc {
		t.Fatalf("task by its 8-character prefix: %v %v", byPrefix.TaskID, err)
	}
	bundle, err := sub.Bundle(mimc[:12])
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyBundle(bundle, sub.reg, sub.keys)
	if err != nil || !rep.Valid {
		t.Fatalf("bundle: %+v %v", rep, err)
	}
	var b Bundle
	_ = json.Unmarshal(bundle, &b)
	// A signature that does not match.
	sig := slices.Clone(b.Results[0])
	sig[len(sig)-3] ^= 0x01
	badSig, _ := json.Marshal(Bundle{Format: BundleFormat, Task: b.Task, Results: [][]byte{sig}})
	if _, err := VerifyBundle(badSig, sub.reg, sub.keys); !errors.Is(err, ErrBadBundle) || !strings.Contains(err.Error(), "result 0") {
		t.Fatalf("bundle with a broken signature: %v", err)
	}
	// Several bundles in one batch: each bad one is named, the good ones
	// verify. The bad proof is signed by its executor, so only the proof
	// check (in the batch) can catch it.
	var mb Bundle
	_ = json.Unmarshal(bundle, &mb)
	r, err := protocol.OpenResult(mb.Results[0])
	if err != nil {
		t.Fatal(err)
	}
	r.Proof = slices.Clone(r.Proof)
	r.Proof[len(r.Proof)/2] ^= 0x01
	var execKey crypto.PrivKey
	for _, n := range tn.Nodes {
		if n.ID().String() == r.Executor {
			execKey = n.key
		}
	}
	env, err := protocol.Seal(r, execKey)
	if err != nil {
		t.Fatal(err)
	}
	badProof, _ := json.Marshal(Bundle{Format: BundleFormat, Task: mb.Task, Results: [][]byte{env}})
	mlpBundle, err := sub.Bundle(mlp)
	if err != nil {
		t.Fatal(err)
	}
	reps, errs := VerifyBundles([][]byte{bundle, badSig, mlpBundle, badProof}, sub.reg, sub.keys)
	for i, wantBad := range []bool{false, true, false, true} {
		if (errs[i] != nil) != wantBad || reps[i].Valid == wantBad {
			t.Errorf("bundle %d in a batch: valid %v, err %v", i, reps[i].Valid, errs[i])
		}
	}
	if errs[3] == nil || !strings.Contains(errs[3].Error(), "proof") {
		t.Errorf("bad proof named as: %v", errs[3])
	}
	// The task edited (another input) and signed again by someone else
	// than the submitter it names.
	if _, err := VerifyBundle(resealTask(t, bundle, func(tk *protocol.Task) {
		tk.Input = []byte(`{"x":"43"}`)
		tk.InputHash = protocol.HashHex(tk.Input)
	}), sub.reg, sub.keys); !errors.Is(err, ErrBadBundle) || !strings.Contains(err.Error(), "signed by") {
		t.Fatalf("bundle for another input verified: %v", err)
	}
	eb, err := sub.Bundle(echo)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = VerifyBundle(eb, sub.reg, sub.keys)
	if err != nil || len(rep.Executors) != 2 || !strings.Contains(rep.Trust, "chosen by node "+sub.ID().String()) {
		t.Fatalf("replicated bundle: %+v %v", rep, err)
	}
	// Candidates swapped, and a wasm bundle written from scratch in the
	// honest submitter's name: both need the submitter's signature.
	if _, err := VerifyBundle(resealTask(t, eb, func(tk *protocol.Task) { slices.Reverse(tk.Candidates) }), sub.reg, sub.keys); !errors.Is(err, ErrBadBundle) {
		t.Fatalf("candidate-swapped bundle verified: %v", err)
	}
	if _, err := VerifyBundle(forgedWasmBundle(t, sub.ID().String()), sub.reg, sub.keys); !errors.Is(err, ErrBadBundle) || !strings.Contains(err.Error(), "signed by") {
		t.Fatalf("bundle from scratch verified: %v", err)
	}
}

// resealTask edits a bundle's task, gives it its new content id and seals
// it with a fresh key (anyone's but its submitter's).
func resealTask(t *testing.T, bundle []byte, edit func(*protocol.Task)) []byte {
	t.Helper()
	var b Bundle
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	tk, err := protocol.OpenTask(b.Task)
	if err != nil {
		t.Fatal(err)
	}
	edit(tk)
	tk.ID = tk.ContentID()
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	if b.Task, err = protocol.Seal(tk, key); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(b)
	return out
}

// forgedWasmBundle is what the attacker of issue 11 wrote: a wasm.exec.v1
// task naming an honest submitter, two made-up executors agreeing on an
// output of its choice.
func forgedWasmBundle(t *testing.T, honest string) []byte {
	t.Helper()
	var keys []crypto.PrivKey
	var ids []string
	for range 3 {
		k, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		id, _ := peer.IDFromPrivateKey(k)
		keys, ids = append(keys, k), append(ids, id.String())
	}
	in := []byte("x")
	now := time.Now()
	tk := &protocol.Task{Type: "wasm.exec.v1", Input: in, InputHash: protocol.HashHex(in), InputSize: 1, ModuleHash: protocol.HashHex([]byte("m")), ModuleSize: 1,
		Submitter: honest, Created: now.UnixMilli(), Replicas: 2, Candidates: ids[1:], LeaseMS: 30000}
	tk.Deadline = protocol.MaxDeadline(tk.Created, 2, 2, 30*time.Second)
	tk.ID = tk.ContentID()
	b := Bundle{Format: BundleFormat}
	var err error
	if b.Task, err = protocol.Seal(tk, keys[0]); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys[1:] {
		out := []byte("forged")
		r := &protocol.Result{TaskID: tk.ID, Type: tk.Type, Executor: ids[i+1], InputHash: tk.InputHash, Output: out, OutputHash: protocol.HashHex(out)}
		env, err := protocol.Seal(r, k)
		if err != nil {
			t.Fatal(err)
		}
		b.Results = append(b.Results, env)
	}
	data, _ := json.Marshal(b)
	return data
}

func b64json(s string) json.RawMessage {
	b, _ := json.Marshal(base64.StdEncoding.EncodeToString([]byte(s)))
	return b
}

// A task whose type needs a GPU fails at once, naming why, when no GPU
// node is online.
func TestNoCapablePeerFailsAtOnce(t *testing.T) {
	tn := startTestnet(t, 2, func(i int, c *Config) { c.Declared.GPU = false })
	id, err := tn.Nodes[0].Submit(context.Background(), api.SubmitRequest{Type: "mlp.infer.v1", Input: json.RawMessage(`{"x":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}`)})
	if !errors.Is(err, protocol.ErrNoCapablePeer) || !strings.Contains(err.Error(), "gpu_available") {
		t.Fatalf("err = %v", err)
	}
	v, _ := tn.Nodes[0].Task(id)
	if v.State != protocol.StateFailed || !strings.Contains(v.Reason, "gpu_available") {
		t.Fatalf("task = %s %q", v.State, v.Reason)
	}
}

func TestSubmissionRefusals(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	n := tn.Nodes[0]
	big := strings.Repeat("1", 300)
	for _, tc := range []struct {
		req  api.SubmitRequest
		want error
	}{
		{api.SubmitRequest{Type: "nope.v1", Input: json.RawMessage(`{}`)}, protocol.ErrUnknownTaskType},
		{api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"` + big + `"}`)}, protocol.ErrInputTooLarge},
		{api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"abc"}`)}, protocol.ErrBadInput},
		{api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"1"}`), Replicas: 9}, protocol.ErrBadReplicas},
		{api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("x"), Module: make([]byte, 9<<20)}, protocol.ErrModuleTooLarge},
		{api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("x"), Module: []byte("not wasm")}, protocol.ErrBadInput},
	} {
		if _, err := n.Submit(context.Background(), tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.req.Type, err, tc.want)
		}
	}
}

func echoModule(t *testing.T) []byte {
	t.Helper()
	return tasks.EchoModule()
}

// startTwoOnDisk starts two connected nodes whose data dirs the test may
// reopen (restarts, crashes); the test stops or kills them itself.
func startTwoOnDisk(t *testing.T) *Testnet {
	t.Helper()
	ctx := context.Background()
	tn, err := StartTestnet(ctx, TestnetConfig{Nodes: 2, DataDir: t.TempDir(), HeartbeatInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tn.WaitConnected(waitCtx); err != nil {
		t.Fatal(err)
	}
	return tn
}
