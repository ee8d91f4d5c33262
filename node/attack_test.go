package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pprotocol "github.com/libp2p/go-libp2p/core/protocol"

	"github.com/proofmesh/proofmesh/internal/testkeys"
	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
)

// forgedTask is a wasm.exec.v1 task that passes CheckTask, signed by a
// key anybody can make up, naming made-up candidates: nobody will ever
// run it, so it lives until its deadline (32 candidates: 32 leases).
func forgedTask(t *testing.T, n *Node, key crypto.PrivKey, cands []string, i int) []byte {
	t.Helper()
	id, _ := peer.IDFromPrivateKey(key)
	input := []byte(fmt.Sprintf("flood %d", i))
	tt, err := n.reg.Lookup("wasm.exec.v1")
	if err != nil {
		t.Fatal(err)
	}
	task := protocol.Task{Type: tt.ID, Input: input, InputHash: protocol.HashHex(input), InputSize: len(input),
		ModuleHash: protocol.HashHex([]byte("no such module")), ModuleSize: 100, Submitter: id.String(),
		Created: time.Now().UnixMilli(), Replicas: 2, Candidates: cands, LeaseMS: tt.SLO.LeaseMS}
	task.Deadline = protocol.MaxDeadline(task.Created, len(cands), task.Replicas, tt.Lease())
	return sealTaskMessage(t, key, task)
}

// madeUpPeers returns n peer ids of fresh keys nobody runs.
func madeUpPeers(n int) []string {
	var ids []string
	for range n {
		k, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		id, _ := peer.IDFromPrivateKey(k)
		ids = append(ids, id.String())
	}
	return ids
}

// sealTaskMessage gives task its id, seals it with key and encodes its
// message for the tasks topic.
func sealTaskMessage(t *testing.T, key crypto.PrivKey, task protocol.Task) []byte {
	t.Helper()
	task.ID = task.ContentID()
	env, err := protocol.Seal(&task, key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := (&protocol.TaskMessage{Task: env}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// followForgedTask has n take a task forgedTask makes and returns it once
// n follows it.
func followForgedTask(t *testing.T, n *Node, key crypto.PrivKey, cands []string) *protocol.Task {
	t.Helper()
	ctx := context.Background()
	id, _ := peer.IDFromPrivateKey(key)
	data := forgedTask(t, n, key, cands, 0)
	v, err := n.validateTaskMessage(ctx, id, data)
	if err != nil {
		t.Fatal(err)
	}
	n.onTaskMessage(mesh.Message{From: id, Data: data, Value: v})
	task := v.(taskSeen).t
	n.lc.do(ctx, func() {})
	if _, ok := n.lc.followed(task.ID); !ok {
		t.Fatal("task not followed")
	}
	return task
}

// Anyone can sign a task (the submitter is any key, the gossip origin any
// identity a Sybil host makes up, each with its own 50/s budget), and
// every validator ACCEPTS and forwards a well-formed one naming made-up
// candidates. Each such task is followed until its deadline (32 leases).
// maxLiveTasks of them fill the driver's table on every node, and from
// then on no honest task is followed anywhere (driver.track refuses it,
// and the submitting node's own task stays pending, never run).
func TestTaskFloodCannotCrowdOutHonestTasks(t *testing.T) {
	tn := startTestnet(t, 2, nil)
	victim := tn.Nodes[0]
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	origin, _ := peer.IDFromPrivateKey(key)
	var cands []string
	for range protocol.MaxCandidates {
		k, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		id, _ := peer.IDFromPrivateKey(k)
		cands = append(cands, id.String())
	}
	ctx := context.Background()
	for i := range maxLiveTasks {
		data := forgedTask(t, victim, key, cands, i)
		v, err := victim.validateTaskMessage(ctx, origin, data)
		if err != nil {
			t.Fatalf("forged task %d refused: %v", i, err) // refusing it is one fix
		}
		victim.onTaskMessage(mesh.Message{From: origin, Data: data, Value: v})
	}
	victim.lc.do(ctx, func() {}) // let the loop catch up
	id := submit(t, victim, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("hello"), Module: echoModule(t), Replicas: 2})
	if v := waitTask(t, victim, id, 3*testLease); v.State != protocol.StateAccepted {
		t.Fatalf("honest task after a flood of forged ones: %s %q", v.State, v.Reason)
	}
}

// A result that arrives before its task (or before this node saw its turn
// come) is REJECTED, so not forwarded, and kept in the early buffer: that
// copy is the only one this node will ever get. Anyone can fill the
// buffer: progress messages for made-up task ids from made-up gossip
// identities are IGNOREd (no penalty) and kept, 16 per id, 1,024 in all,
// oldest evicted first. The honest result is evicted, and when its task
// arrives this node never counts it (the others do: the nodes disagree).
func TestEarlyBufferFloodCannotEvictHonestResult(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	victim := tn.Nodes[0]
	ctx := context.Background()
	subKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	execKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	exec, _ := peer.IDFromPrivateKey(execKey)
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	otherID, _ := peer.IDFromPrivateKey(other)
	subID, _ := peer.IDFromPrivateKey(subKey)
	data := forgedTask(t, victim, subKey, []string{exec.String(), otherID.String()}, 0)
	msg, err := protocol.DecodeTaskMessage(data)
	if err != nil {
		t.Fatal(err)
	}
	task := msg.Task
	out := []byte("hello")
	env, err := protocol.Seal(&protocol.Result{TaskID: task.ID, Type: task.Type, Executor: exec.String(), InputHash: task.InputHash,
		Output: out, OutputHash: protocol.HashHex(out), Time: time.Now().UnixMilli()}, execKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := victim.validateResult(ctx, exec, env); !protocol.Ignorable(err) {
		t.Fatalf("result before its task: %v, want kept (not yet)", err)
	}
	// The flood: one made-up identity, progress for made-up task ids.
	floodKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	flooder, _ := peer.IDFromPrivateKey(floodKey)
	for i := range maxEarlyMessages {
		p := protocol.Progress{TaskID: protocol.HashHex([]byte(fmt.Sprint("junk", i))), Executor: flooder.String(),
			State: protocol.StateRunning, Time: time.Now().UnixMilli()}
		b, _ := (&protocol.TaskMessage{Progress: &p}).Encode()
		if _, err := victim.validateTaskMessage(ctx, flooder, b); !protocol.Ignorable(err) {
			t.Fatalf("junk progress %d: %v", i, err)
		}
	}
	v, err := victim.validateTaskMessage(ctx, subID, data)
	if err != nil {
		t.Fatal(err)
	}
	victim.onTaskMessage(mesh.Message{From: subID, Data: data, Value: v})
	deadline := time.Now().Add(5 * time.Second)
	for {
		var counted bool
		victim.lc.do(ctx, func() {
			if lt := victim.lc.live[task.ID]; lt != nil {
				counted = lt.lc.HasDelivered(exec.String())
			}
		})
		if counted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the honest result kept before its task was evicted by junk and never counted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Attack (issue 13 surface): a peer this node found by discovery and
// dialed says it serves our network only at protocol major 2. Any host
// can say so in identify. When the node is joined (it has compatible
// peers), one such peer must not put protocol_mismatch ("upgrade this
// node") in its problems: that told a healthy node's operator to upgrade
// on one stranger's word. A node that has no compatible peer still
// explains itself with it.
func TestOneDiscoveredPeerCannotClaimOurJoinIsWrong(t *testing.T) {
	honest := startNode(t, testConfig(t, t.TempDir()))
	start := func(bootstrap bool) *Node {
		cfg := testConfig(t, t.TempDir())
		cfg.ProblemInterval = 50 * time.Millisecond
		cfg.NoPeersAfter = time.Hour
		if bootstrap {
			cfg.Bootstrap = honest.Addrs()[:1]
		}
		return startNode(t, cfg)
	}
	joined, alone := start(true), start(false)

	liar, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.UserAgent("proofmesh/2.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = liar.Close() })
	liar.SetStreamHandler(libp2pprotocol.ID(protocol.MarkerProtocolID(joined.network.NetworkID, 2)), func(s network.Stream) { _ = s.Reset() })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !joined.hasPeers() {
		if ctx.Err() != nil {
			t.Fatal("the node never joined its bootstrap peer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range []*Node{joined, alone} {
		// What discovery does with a peer it found.
		if err := n.Mesh().Connect(ctx, peer.AddrInfo{ID: liar.ID(), Addrs: liar.Addrs()}); err != nil {
			t.Fatal(err)
		}
		for len(n.Peers(protocol.StatusIncompatible)) == 0 {
			if ctx.Err() != nil {
				t.Fatal("the liar was never identified")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitProblem(t, alone, protocol.ProblemProtocolMismatch, true)
	time.Sleep(300 * time.Millisecond) // several problem rounds
	if p, ok := problem(joined, protocol.ProblemProtocolMismatch); ok {
		t.Fatalf("a joined node reports one discovered peer's major as its problem: %q", p.Message)
	}
}

// A result from an identity that is no candidate of a followed task is
// refused without the lifecycle's goroutine: a sybil flood of them held
// gossipsub's four result validators while each waited its turn there,
// and gossipsub dropped the honest results that found no validator free.
// Here the goroutine is held busy; the refusal must not wait for it.
func TestForgedResultRefusedWithoutTheLoop(t *testing.T) {
	tn := startTestnet(t, 2, nil)
	sub := tn.Nodes[0]
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	t.Cleanup(release)
	for _, n := range tn.Nodes { // nobody delivers: the task stays live
		n.tamper = func(*protocol.Result) { <-hold }
	}
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("x"), Module: echoModule(t), Replicas: 2})
	rec, err := sub.db.GetTask(id)
	if err != nil {
		t.Fatal(err)
	}
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	forger, _ := peer.IDFromPrivateKey(key)
	out := []byte("forged")
	env, err := protocol.Seal(&protocol.Result{TaskID: id, Type: rec.Task.Type, Executor: forger.String(), InputHash: rec.Task.InputHash,
		Output: out, OutputHash: protocol.HashHex(out), Time: time.Now().UnixMilli()}, key)
	if err != nil {
		t.Fatal(err)
	}
	busy, unblock := make(chan struct{}), make(chan struct{})
	sub.lc.post(func() { close(busy); <-unblock })
	<-busy
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sub.validateResult(ctx, forger, env); !errors.Is(err, protocol.ErrExecutorNotAllowed) {
		t.Fatalf("forged result while the lifecycle's goroutine is busy: err = %v, want %v", err, protocol.ErrExecutorNotAllowed)
	}
	close(unblock)

	// A peer answering a results request hands over only results of the
	// task asked for: a candidate's valid result offered for another id
	// is refused, and taken for its own.
	var exec *Node
	for _, n := range tn.Nodes {
		if n != sub && rec.Task.CandidateIndex(n.ID().String()) >= 0 {
			exec = n
		}
	}
	out = []byte(`"eA=="`)
	env, err = protocol.Seal(&protocol.Result{TaskID: id, Type: rec.Task.Type, Executor: exec.ID().String(), InputHash: rec.Task.InputHash,
		Output: out, OutputHash: protocol.HashHex(out), Time: time.Now().UnixMilli()}, exec.key)
	if err != nil {
		t.Fatal(err)
	}
	if r := sub.synced(ctx, protocol.HashHex([]byte("another task")), exec.ID(), env); r != nil {
		t.Fatal("a result of another task than the one asked for was taken")
	}
	if r := sub.synced(ctx, id, exec.ID(), env); r == nil {
		t.Fatal("a candidate's result of the task asked for was refused")
	}
}

// Gossipsub forgets a message id about a minute after it passed
// (mesh.seenTTL), and a replayed copy is then validated again. A progress
// or cancel of a live task used to be accepted again and forwarded to every
// node, and a replayed "running" from a candidate that had been taken over
// from moved the task back to it; a replayed invalid result had its proof
// verified again and counted against its executor again. All are now
// refused (IGNORE) once their time is more than the clock skew from their
// arrival; one kept early is judged at the time it arrived.
func TestReplayedTaskMessagesRefusedByTheirTime(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	victim := tn.Nodes[0]
	ctx := context.Background()
	subKey, subID := testkeys.New(t)
	execKey, exec := testkeys.New(t)
	_, otherID := testkeys.New(t)
	taskID := followForgedTask(t, victim, subKey, []string{exec.String(), otherID.String()}).ID

	skew := victim.mesh.ClockSkew()
	now := time.Now()
	old, ahead := now.Add(-skew-5*time.Second), now.Add(skew+5*time.Second)
	progress := func(at time.Time) []byte {
		b, err := (&protocol.TaskMessage{Progress: &protocol.Progress{TaskID: taskID, Executor: exec.String(),
			State: protocol.StateRunning, Time: at.UnixMilli()}}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cancel := func(at time.Time) []byte {
		env, err := protocol.Seal(&protocol.Cancel{TaskID: taskID, Submitter: subID.String(), Time: at.UnixMilli(), Reason: "replayed"}, subKey)
		if err != nil {
			t.Fatal(err)
		}
		b, err := (&protocol.TaskMessage{Cancel: env}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	result := func(at time.Time) []byte {
		out := []byte("wrong")
		env, err := protocol.Seal(&protocol.Result{TaskID: taskID, Type: "wasm.exec.v1", Executor: exec.String(), InputHash: protocol.HashHex(nil),
			Output: out, OutputHash: protocol.HashHex(out), Time: at.UnixMilli()}, execKey)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	for _, tc := range []struct {
		name    string
		from    peer.ID
		data    []byte
		arrived time.Time
		skewed  bool
	}{
		{"progress sent now", exec, progress(now), now, false},
		{"progress replayed after the skew", exec, progress(old), now, true},
		{"progress from beyond the skew ahead", exec, progress(ahead), now, true},
		{"progress kept early, judged at its arrival", exec, progress(old), old, false},
		{"cancel replayed after the skew", subID, cancel(old), now, true},
		{"cancel from beyond the skew ahead", subID, cancel(ahead), now, true},
		// An invalid result (its input hash is not the task's): refused
		// by its time before anything else once replayed, and rejected
		// on its merits when fresh.
		{"result sent now", exec, result(now), now, false},
		{"result replayed after the skew", exec, result(old), now, true},
		{"result from beyond the skew ahead", exec, result(ahead), now, true},
		{"result kept early, judged at its arrival", exec, result(old), old, false},
	} {
		var err error
		if strings.HasPrefix(tc.name, "result") {
			_, err = victim.checkResultMessage(ctx, tc.from, tc.data, gossiped(tc.arrived))
		} else {
			_, err = victim.checkTaskMessage(ctx, tc.from, tc.data, tc.arrived)
		}
		switch {
		case tc.skewed && (!errors.Is(err, protocol.ErrClockSkew) || !protocol.Ignorable(err)):
			t.Errorf("%s: %v, want refused by its time (ignored)", tc.name, err)
		case !tc.skewed && strings.HasPrefix(tc.name, "result") && (err == nil || protocol.Ignorable(err)):
			t.Errorf("%s: %v, want rejected on its merits", tc.name, err)
		case !tc.skewed && !strings.HasPrefix(tc.name, "result") && err != nil:
			t.Errorf("%s: %v, want accepted", tc.name, err)
		}
	}
	// The cancels were refused: the task still runs.
	victim.lc.do(ctx, func() {})
	if _, ok := victim.lc.followed(taskID); !ok {
		t.Fatal("a refused cancel ended the task")
	}
}

// A result kept early keeps its first arrival however often it is looked
// at again, and one fetched from a peer (sync) is not held to the time
// rule of gossip at all. A second review found both refused by their time
// at a later look: a synced result kept early because its executor's turn
// had not come here, and a gossiped one kept again because the turn still
// had not come at its second look (its arrival replaced by that look's).
func TestEarlyResultKeepsItsArrival(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	victim := tn.Nodes[0]
	ctx := context.Background()
	subKey, subID := testkeys.New(t)
	var cands []string
	var lastKey crypto.PrivKey
	var last peer.ID
	for range 3 {
		lastKey, last = testkeys.New(t)
		cands = append(cands, last.String())
	}
	task := followForgedTask(t, victim, subKey, cands) // 2 replicas: the third candidate's turn comes a lease later
	result := func(at time.Time) []byte {
		out := []byte("out")
		env, err := protocol.Seal(&protocol.Result{TaskID: task.ID, Type: task.Type, Executor: last.String(), InputHash: task.InputHash,
			Output: out, OutputHash: protocol.HashHex(out), Time: at.UnixMilli()}, lastKey)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	kept := func(what string) earlyMessage {
		t.Helper()
		ms := victim.lc.early.take(task.ID)
		if len(ms) != 1 {
			t.Fatalf("%s: %d results kept early, want 1", what, len(ms))
		}
		return ms[0]
	}
	lookAgain := func(m earlyMessage) error {
		_, err := victim.checkResultMessage(ctx, m.from, m.data, arrival{at: m.at, synced: m.synced})
		return err
	}
	skew := victim.mesh.ClockSkew()

	if r := victim.synced(ctx, task.ID, subID, result(time.Now().Add(-skew-10*time.Second))); r != nil {
		t.Fatal("a synced result accepted before its executor's turn")
	}
	if err := lookAgain(kept("synced")); errors.Is(err, protocol.ErrClockSkew) {
		t.Errorf("a synced result kept early refused by its time when looked at again: %v", err)
	}
	victim.lc.early.take(task.ID)

	arrived := time.Now().Add(-skew + 5*time.Second) // within the skew when it came
	if _, err := victim.checkResultMessage(mesh.WithForwarder(ctx, last), last, result(arrived), gossiped(arrived)); err == nil {
		t.Fatal("a gossiped result accepted before its executor's turn")
	}
	first := kept("gossiped")
	time.Sleep(10 * time.Millisecond)
	if err := lookAgain(first); errors.Is(err, protocol.ErrClockSkew) {
		t.Errorf("a gossiped result refused by its time at its second look: %v", err)
	}
	if again := kept("gossiped, looked at again"); !again.at.Equal(first.at) {
		t.Errorf("kept again as arrived at %s, %s after its first arrival", again.at.Format(time.RFC3339Nano), again.at.Sub(first.at))
	}
}
