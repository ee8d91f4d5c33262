package node

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/store"
)

// Attacks on the task lifecycle from a review of 2026-12-07, on real
// hosts, real bbolt and real wazero.

// forgedMiMC is a mimc.chain.v1 task signed by key (a stranger: no
// connection, never seen) naming cands, with a short deadline.
func forgedMiMC(t *testing.T, n *Node, key crypto.PrivKey, cands []string, i int, life time.Duration) []byte {
	t.Helper()
	id, _ := peer.IDFromPrivateKey(key)
	input := []byte(fmt.Sprintf(`{"x":"%d"}`, 1000+i))
	tt, err := n.reg.Lookup("mimc.chain.v1")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	task := protocol.Task{Type: tt.ID, Input: input, InputHash: protocol.HashHex(input), InputSize: len(input),
		Submitter: id.String(), Created: now, Deadline: now + life.Milliseconds(), Replicas: 1, Candidates: cands, LeaseMS: tt.SLO.LeaseMS}
	return sealTaskMessage(t, key, task)
}

// strangerWasmTask is an unsigned wasm.exec.v1 task of 2 replicas by
// submitter, naming cands, with a random inline input of size bytes and a
// module nobody holds, living life from now.
func strangerWasmTask(tt protocol.TaskType, submitter string, size int, cands []string, life time.Duration) protocol.Task {
	input := make([]byte, size)
	_, _ = rand.Read(input)
	now := time.Now().UnixMilli()
	return protocol.Task{Type: tt.ID, Input: input, InputHash: protocol.HashHex(input), InputSize: len(input),
		ModuleHash: protocol.HashHex([]byte("none")), ModuleSize: 100, Submitter: submitter,
		Created: now, Deadline: now + life.Milliseconds(), Replicas: 2, Candidates: cands, LeaseMS: tt.SLO.LeaseMS}
}

// Conscription: any key can sign a task naming any node as its first
// candidate, and the node runs it (a module run and a Groth16 proof for
// the typed types). A review of 2026-12-07 had one stranger's key queue
// 100 such runs on a node's two sandbox workers, its honest submitters'
// runs behind them all. Runs now take turns across submitters
// (runGate): an honest submitter's task is accepted while the stranger's
// runs still wait.
func TestStrangersFloodOfRunsDoesNotDelayAnotherSubmitter(t *testing.T) {
	tn := startTestnet(t, 2, nil)
	victim, honest := tn.Nodes[0], tn.Nodes[1]
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	stranger, _ := peer.IDFromPrivateKey(key)
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	otherID, _ := peer.IDFromPrivateKey(other)
	cands := []string{victim.ID().String(), otherID.String()}
	ctx := context.Background()
	const n = 40
	for i := range n {
		data := forgedMiMC(t, victim, key, cands, i, 3*testLease)
		v, err := victim.validateTaskMessage(ctx, stranger, data)
		if err != nil {
			t.Fatalf("forged task %d refused: %v", i, err)
		}
		victim.onTaskMessage(mesh.Message{From: stranger, Data: data, Value: v})
	}
	victim.lc.do(ctx, func() {})
	deadline := time.Now().Add(10 * time.Second)
	for victim.runs.waitingFor(stranger.String()) < n/2 {
		if time.Now().After(deadline) {
			t.Fatalf("the stranger's runs did not queue: %d waiting", victim.runs.waitingFor(stranger.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The victim alone is the honest task's candidate: its run is the one
	// that must not wait for the flood.
	honest.rankHook = func([]string) []string { return []string{victim.ID().String()} }
	id := submit(t, honest, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"77"}`)})
	v := waitTask(t, honest, id, 4*testLease)
	if v.State != protocol.StateAccepted || !slices.Contains(v.Settled, victim.ID().String()) {
		t.Fatalf("honest task: %s %q, settled by %v", v.State, v.Reason, v.Settled)
	}
	if w := victim.runs.waitingFor(stranger.String()); w == 0 {
		t.Fatal("the honest task was accepted only after the stranger's flood had drained")
	} else {
		t.Logf("honest task accepted with %d of the stranger's %d runs still waiting", w, n)
	}
}

// Storage: a node stores every task it follows, inline input (up to 64
// KiB) and envelope included. The bounds on observed tasks (1,024, 64 per
// submitter) count live tasks only, and a stranger sets the deadline: a
// review of 2026-12-07 had one key, with 1.2 s deadlines, have a node
// store 320 tasks (65 MiB) in 22 s, for the 7 days' retention. New
// observed tasks now spend a store budget (storeBudget: 64, then one per
// 10 s per submitter; bytes overall) and go after an hour.
func TestStrangersTasksDoNotPileUpInTheStore(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	victim := tn.Nodes[0]
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	stranger, _ := peer.IDFromPrivateKey(key)
	tt, err := victim.reg.Lookup("wasm.exec.v1")
	if err != nil {
		t.Fatal(err)
	}
	cands := madeUpPeers(2)
	ctx := context.Background()
	before := fileSize(t, victim.db.Path())
	const waves = 5
	sent := 0
	start := time.Now()
	for w := range waves {
		for range maxObservedPerSubmitter {
			// 48 KiB: the most a task message carries is below MaxInlineInput
			// (see TestSubmitRefusesAnInlineInputThatCannotTravel).
			data := sealTaskMessage(t, key, strangerWasmTask(tt, stranger.String(), 48<<10, cands, 1200*time.Millisecond))
			v, err := victim.validateTaskMessage(ctx, stranger, data)
			if err != nil {
				t.Fatalf("wave %d: forged task refused: %v", w, err)
			}
			victim.onTaskMessage(mesh.Message{From: stranger, Data: data, Value: v})
			sent++
		}
		// The stranger's slots free at its deadlines.
		deadline := time.Now().Add(30 * time.Second)
		for {
			live := -1
			victim.lc.do(ctx, func() { live = victim.lc.observedBySubmitter[stranger.String()] })
			if live == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("wave %d: %d tasks still live", w, live)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	recs, err := victim.db.ListTasks(store.TaskFilter{})
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, r := range recs {
		if r.Task.Submitter == stranger.String() {
			stored++
		}
	}
	after := fileSize(t, victim.db.Path())
	t.Logf("%d tasks sent in %s by one key; %d stored; store %d -> %d bytes", sent, elapsed.Round(time.Millisecond), stored, before, after)
	if limit := observedPerSubmitterBurst + int(elapsed.Seconds()*observedPerSubmitterRate) + 1; stored > limit {
		t.Fatalf("one stranger key left %d tasks in the store in %s; its budget is %d", stored, elapsed.Round(time.Second), limit)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// Forgery of lifecycle messages by a peer that is not the submitter or
// the executor: a cancel signed by another key, a progress whose executor
// is not its gossip origin, a result published for another executor, and
// a cancel replayed past the clock skew. All must be refused.
func TestForgedLifecycleMessagesRefused(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	victim := tn.Nodes[0]
	ctx := context.Background()
	subKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	subID, _ := peer.IDFromPrivateKey(subKey)
	execKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	exec, _ := peer.IDFromPrivateKey(execKey)
	evilKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	evil, _ := peer.IDFromPrivateKey(evilKey)
	task := followForgedTask(t, victim, subKey, []string{exec.String(), evil.String()})

	// Cancel signed by another key (naming itself the submitter).
	env, _ := protocol.Seal(&protocol.Cancel{TaskID: task.ID, Submitter: evil.String(), Time: time.Now().UnixMilli(), Reason: "x"}, evilKey)
	data, _ := (&protocol.TaskMessage{Cancel: env}).Encode()
	if _, err := victim.validateTaskMessage(ctx, evil, data); err == nil || protocol.Ignorable(err) {
		t.Errorf("cancel by another key: %v, want REJECT", err)
	}
	// Cancel by the submitter, replayed after the skew.
	env, _ = protocol.Seal(&protocol.Cancel{TaskID: task.ID, Submitter: subID.String(), Time: time.Now().Add(-time.Hour).UnixMilli()}, subKey)
	data, _ = (&protocol.TaskMessage{Cancel: env}).Encode()
	if _, err := victim.validateTaskMessage(ctx, evil, data); !errors.Is(err, protocol.ErrClockSkew) {
		t.Errorf("old cancel: %v, want clock skew", err)
	}
	// Progress for the executor, sent by another origin.
	p := protocol.Progress{TaskID: task.ID, Executor: exec.String(), State: protocol.StateProving, Time: time.Now().UnixMilli()}
	data, _ = (&protocol.TaskMessage{Progress: &p}).Encode()
	if _, err := victim.validateTaskMessage(ctx, evil, data); !errors.Is(err, protocol.ErrForged) {
		t.Errorf("progress of another executor: %v, want forged", err)
	}
	// Result signed by evil naming exec as executor.
	out := []byte("x")
	renv, _ := protocol.Seal(&protocol.Result{TaskID: task.ID, Type: task.Type, Executor: exec.String(), InputHash: task.InputHash,
		Output: out, OutputHash: protocol.HashHex(out), Time: time.Now().UnixMilli()}, evilKey)
	if _, err := victim.validateResult(ctx, evil, renv); !errors.Is(err, protocol.ErrForged) {
		t.Errorf("result signed for another executor: %v, want forged", err)
	}
	var state protocol.TaskState
	victim.lc.do(ctx, func() {
		if lt := victim.lc.live[task.ID]; lt != nil {
			state = lt.lc.State()
		}
	})
	if state != protocol.StateAssigned {
		t.Errorf("state after the forgeries: %q", state)
	}
}

// Protocol major 1 base64s an inline input twice (in the task, then the
// task in its envelope) within a message bound that allows it once, so
// inline inputs from about 56 KiB to MaxInlineInput cannot be published
// (docs/PROTOCOL.md). Submit refuses them at once as bad input, naming
// the bound, and records nothing; a smaller input goes through.
func TestSubmitRefusesAnInlineInputThatCannotTravel(t *testing.T) {
	tn := startTestnet(t, 2, nil)
	sub := tn.Nodes[0]
	inputOf := func(size int) json.RawMessage {
		input := make([]byte, size)
		for i := range input {
			input[i] = byte('a' + i%26)
		}
		raw, _ := json.Marshal(base64.StdEncoding.EncodeToString(input))
		return raw
	}
	_, err := sub.Submit(context.Background(), api.SubmitRequest{Type: "wasm.exec.v1", Input: inputOf(60 << 10), Module: echoModule(t), Replicas: 2})
	if !errors.Is(err, protocol.ErrBadInput) || !strings.Contains(err.Error(), "61440 bytes") || !strings.Contains(err.Error(), "base64-encoded twice") {
		t.Fatalf("a 60 KiB inline input: %v, want ErrBadInput naming its size and why", err)
	}
	if tasks, err := sub.Tasks(api.TaskQuery{}); err != nil || len(tasks) != 0 {
		t.Fatalf("a refused task was recorded: %+v, %v", tasks, err)
	}
	id, err := sub.Submit(context.Background(), api.SubmitRequest{Type: "wasm.exec.v1", Input: inputOf(48 << 10), Module: echoModule(t), Replicas: 2})
	if err != nil {
		t.Fatalf("a 48 KiB inline input: %v", err)
	}
	if v := waitTask(t, sub, id, 4*testLease); v.State != protocol.StateAccepted {
		t.Fatalf("task: %s %q", v.State, v.Reason)
	}
}

// A finished task this node only observed goes after
// ObservedTaskRetention; one it submitted stays for TaskRetention.
func TestObservedTasksPrunedSooner(t *testing.T) {
	tn := startTestnet(t, 2, nil)
	n := tn.Nodes[0]
	ctx := context.Background()
	own := submit(t, n, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"8"}`)})
	if v := waitTask(t, n, own, 4*testLease); v.State != protocol.StateAccepted {
		t.Fatalf("own task: %s %q", v.State, v.Reason)
	}
	seen := observeFinishedStrangerTask(t, n)
	n.lc.do(ctx, func() { // the loop goroutine reads the config when it prunes
		n.cfg.ObservedTaskRetention = time.Millisecond
		n.lc.prune()
	})
	if _, err := n.db.GetTask(seen); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the observed task after its retention: %v", err)
	}
	if _, err := n.db.GetTask(own); err != nil {
		t.Fatalf("the node's own task: %v", err)
	}
}

// observeFinishedStrangerTask has n observe a stranger's task (a
// candidate made up, so nobody runs it) and returns its id once it has
// ended (at its deadline, a second on).
func observeFinishedStrangerTask(t *testing.T, n *Node) string {
	t.Helper()
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	stranger, _ := peer.IDFromPrivateKey(key)
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	otherID, _ := peer.IDFromPrivateKey(other)
	data := forgedMiMC(t, n, key, []string{otherID.String()}, 1, time.Second)
	v, err := n.validateTaskMessage(context.Background(), stranger, data)
	if err != nil {
		t.Fatal(err)
	}
	seen := v.(taskSeen).t.ID
	n.onTaskMessage(mesh.Message{From: stranger, Data: data, Value: v})
	n.lc.do(context.Background(), func() {}) // followed and stored
	if v := waitTask(t, n, seen, 4*testLease); !v.State.Terminal() {
		t.Fatalf("observed task: %s", v.State)
	}
	time.Sleep(10 * time.Millisecond) // its last update is in the past
	return seen
}
