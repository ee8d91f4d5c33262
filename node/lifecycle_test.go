package node

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
)

// sybilHost is issue 11's attacker: one libp2p host, one connection to
// its victim, speaking on gossip for identities it made up (gossipsub
// lets a peer publish messages signed by any key it holds).
type sybilHost struct {
	keys   []crypto.PrivKey
	ids    []peer.ID
	topics map[string]*pubsub.Topic
}

func startSybilHost(t *testing.T, victim *Node, identities int) *sybilHost {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hostKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	h, err := libp2p.New(libp2p.Identity(hostKey), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	s := &sybilHost{topics: map[string]*pubsub.Topic{}}
	for _, kind := range []string{mesh.KindHeartbeat, mesh.KindTasks, mesh.KindResults} {
		if s.topics[kind], err = ps.Join(mesh.TopicName(victim.network.NetworkID, kind)); err != nil {
			t.Fatal(err)
		}
	}
	// The host's own identity first: the one its connection proves.
	s.keys = append(s.keys, hostKey)
	for len(s.keys) < identities {
		k, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		s.keys = append(s.keys, k)
	}
	for _, k := range s.keys {
		id, _ := peer.IDFromPrivateKey(k)
		s.ids = append(s.ids, id)
	}
	if err := h.Connect(ctx, peer.AddrInfo{ID: victim.ID(), Addrs: victim.mesh.Addrs()}); err != nil {
		t.Fatal(err)
	}
	go func() { // heartbeats for every identity: healthy, idle, capable
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			for i, k := range s.keys {
				now := time.Now()
				hb := protocol.Heartbeat{NodeID: s.ids[i].String(), Seq: uint64(now.UnixMicro()), Time: now.UnixMilli(),
					Capabilities:  protocol.Capabilities{protocol.CapNodeType: "compute", protocol.CapCPUCores: int64(64), protocol.CapMemoryGB: int64(256)},
					PolicyVersion: victim.network.Policy.Version, NodeType: "compute", Load: 0, Health: 1, Version: "dev",
					TaskTypes: victim.reg.IDs(), IntervalMS: 300}
				data, _ := hb.Encode()
				_ = s.topics[mesh.KindHeartbeat].Publish(ctx, data, pubsub.WithSecretKeyAndPeerId(k, s.ids[i]))
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// forge publishes, for every identity, a signed result with output out.
func (s *sybilHost) forge(ctx context.Context, t *protocol.Task, out []byte) {
	for i, k := range s.keys {
		r := &protocol.Result{TaskID: t.ID, Type: t.Type, Executor: s.ids[i].String(), InputHash: t.InputHash,
			Output: out, OutputHash: protocol.HashHex(out), Time: time.Now().UnixMilli()}
		env, err := protocol.Seal(r, k)
		if err == nil {
			_ = s.topics[mesh.KindResults].Publish(ctx, env, pubsub.WithSecretKeyAndPeerId(k, s.ids[i]))
		}
	}
}

// One host behind one connection speaks for ten identities: the victim
// lists them, but ranks at most the one its connection proves, so the
// forged outputs its identities publish for wasm.exec.v1 tasks (at once,
// before any turn) never reach a quorum, and every task is accepted with
// the honest output.
func TestSybilsBehindOneConnectionCannotReachQuorum(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	sub := tn.Nodes[0]
	syb := startSybilHost(t, sub, 10)
	deadline := time.Now().Add(20 * time.Second)
	for {
		listed := 0
		for _, id := range syb.ids {
			if p, ok := sub.mesh.Peer(id); ok && p.Status == protocol.StatusOnline {
				listed++
			}
		}
		if listed == len(syb.ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("victim lists %d of %d sybil identities: the attack did not take place", listed, len(syb.ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ids []string
	for range 5 {
		ids = append(ids, submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("honest"), Module: echoModule(t), Replicas: 2}))
	}
	for _, id := range ids {
		rec, err := sub.db.GetTask(id)
		if err != nil {
			t.Fatal(err)
		}
		syb.forge(context.Background(), &rec.Task, []byte("forged"))
	}
	want, _ := json.Marshal(base64.StdEncoding.EncodeToString([]byte("honest")))
	for _, id := range ids {
		v := waitTask(t, sub, id, 3*testLease)
		if v.State != protocol.StateAccepted || string(v.Output) != string(want) {
			t.Fatalf("task %s: %s %q %s", id[:8], v.State, v.Reason, v.Output)
		}
		n := 0
		for _, c := range v.Candidates {
			if slices.Contains(syb.ids, peer.ID(mustDecode(t, c))) {
				n++
			}
		}
		if n > 1 {
			t.Fatalf("task %s has %d sybil candidates of %d: %v", id[:8], n, len(v.Candidates), v.Candidates)
		}
		for _, e := range v.Settled {
			if slices.Contains(syb.ids, mustDecode(t, e)) {
				t.Fatalf("task %s settled by a sybil identity %s", id[:8], e)
			}
		}
	}
}

// waitSeen waits until node n has recorded task id.
func waitSeen(t *testing.T, n *Node, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := n.db.GetTask(id); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s never saw task %s", n.ID(), id[:8])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustDecode(t *testing.T, s string) peer.ID {
	t.Helper()
	id, err := peer.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A backup candidate's result before its turn is REJECTED by every
// validator, even when it is right; the task settles on the turn's rules.
func TestResultBeforeTurnRefused(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	sub, first, backup := tn.Nodes[0], tn.Nodes[1], tn.Nodes[2]
	sub.rankHook = func([]string) []string {
		return []string{first.ID().String(), backup.ID().String(), sub.ID().String()}
	}
	// The first candidate sits on its result until the test ends.
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	t.Cleanup(release)
	first.tamper = func(*protocol.Result) { <-hold }
	id := submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"5"}`)})
	rec, err := sub.db.GetTask(id)
	if err != nil {
		t.Fatal(err)
	}
	waitSeen(t, backup, id)
	out := []byte(`{"y":"1"}`)
	r := &protocol.Result{TaskID: id, Type: rec.Task.Type, Executor: backup.ID().String(), InputHash: rec.Task.InputHash,
		Input: rec.Task.Input, Output: out, OutputHash: protocol.HashHex(out), Time: time.Now().UnixMilli()}
	env, err := protocol.Seal(r, backup.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.validateResult(context.Background(), backup.ID(), env); err == nil || protocol.Ignorable(err) || !strings.Contains(err.Error(), "turn has not come") {
		t.Fatalf("early result from the backup: %v, want a REJECT naming the turn", err)
	}
	// Published anyway (its own validator refuses it first): nobody counts it.
	if err := backup.mesh.Publish(context.Background(), mesh.KindResults, env); err == nil {
		t.Fatal("the backup's own validator let its early result through")
	}
	if v, _ := sub.Task(id); v.State.Terminal() || slices.Contains(v.Settled, backup.ID().String()) {
		t.Fatalf("early result counted: %+v", v)
	}
	release()
	if v := waitTask(t, sub, id, 2*testLease); v.State != protocol.StateAccepted || v.Settled[0] != first.ID().String() {
		t.Fatalf("task %s settled by %v", v.State, v.Settled)
	}
}

// A module that exits with code 3 and writes its reason to stderr: every
// replica reports the failure, the quorum confirms it, and the submitter
// has the exit code and stderr in seconds, not at the deadline, on every
// node.
func TestDeterministicFailureReachesSubmitterInSeconds(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	sub := tn.Nodes[0]
	mod := exitWithStderr(3, "input rejected: want JSON\n")
	start := time.Now()
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("nope"), Module: mod, Replicas: 2})
	v := waitTask(t, sub, id, testLease)
	if v.State != protocol.StateFailed || v.Failure == nil || v.Failure.ExitCode != 3 || !strings.Contains(string(v.Failure.Stderr), "input rejected") {
		t.Fatalf("task %s: %q %+v", v.State, v.Reason, v.Failure)
	}
	if !strings.Contains(v.Reason, "exit code 3") || !strings.Contains(v.Reason, "input rejected") {
		t.Fatalf("reason %q names neither the code nor stderr", v.Reason)
	}
	if took := time.Since(start); took > testLease/2 {
		t.Fatalf("failure reached the submitter after %s", took)
	}
	if len(v.Results) < 2 || v.Results[0].ExitCode != 3 || !strings.Contains(string(v.Results[0].Stderr), "input rejected") {
		t.Fatalf("each executor's report (proofmesh logs): %+v", v.Results)
	}
	for _, n := range tn.Nodes[1:] {
		waitSeen(t, n, id)
		if got := waitTask(t, n, id, 5*time.Second); got.State != protocol.StateFailed || got.Failure == nil {
			t.Fatalf("node %s: %s", n.ID(), got.State)
		}
	}
	// The confirmed failure can be audited offline: its bundle holds the
	// equal signed reports.
	bun, err := sub.Bundle(id)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := VerifyBundle(bun, sub.reg, sub.keys); err != nil || !rep.Valid || rep.Failure == nil || rep.Failure.ExitCode != 3 {
		t.Fatalf("the failure's bundle: %v %+v", err, rep)
	}
}

// Every node follows the task: after the node it was submitted to dies,
// the others still reach accepted and serve the same verifiable bundle.
func TestResultServedAfterOriginDies(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	sub, a, b := tn.Nodes[0], tn.Nodes[1], tn.Nodes[2]
	sub.rankHook = func([]string) []string { return []string{a.ID().String(), b.ID().String()} }
	var once sync.Once
	a.tamper = func(*protocol.Result) { once.Do(sub.Kill) } // the origin dies before any result
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("survive"), Module: echoModule(t), Replicas: 2})
	var bundles [][]byte
	for _, n := range []*Node{a, b} {
		waitSeen(t, n, id)
		v := waitTask(t, n, id, 2*testLease)
		if v.State != protocol.StateAccepted {
			t.Fatalf("node %s: %s %q", n.ID(), v.State, v.Reason)
		}
		bun, err := n.Bundle(id)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := VerifyBundle(bun, n.reg, n.keys); err != nil || !rep.Valid {
			t.Fatalf("bundle from %s: %v", n.ID(), err)
		}
		bundles = append(bundles, bun)
	}
	if string(bundles[0]) != string(bundles[1]) {
		t.Fatal("the two nodes serve different bundles")
	}
}

// Cancel: the submitter's signed cancel stops the run and every node
// marks the task canceled within seconds.
func TestCancelStopsTheTaskEverywhere(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	sub := tn.Nodes[0]
	// The module spins in loop { br 0 }, never calling the host, until its
	// fuel or time is spent: cancel as soon as an executor says it runs,
	// so the cancel, not a confirmed failure, ends the task. Such a guest
	// once held up the Go runtime's stop-the-world, and so this test's
	// polling, until its fuel ran out (the test saw the task failed
	// without ever seeing it run, and spun calling the host instead); its
	// fuel checks now call into Go every 2^21 fuel (sandbox's refuel).
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: spinForever(), Replicas: 2})
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, _ := sub.Task(id)
		if v.State == protocol.StateRunning {
			break
		}
		if time.Now().After(deadline) || v.State.Terminal() {
			t.Fatalf("no executor started: %s %q", v.State, v.Reason)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := sub.Cancel(context.Background(), id, "key pmk_other", "no"); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("cancel by another key: %v", err)
	}
	start := time.Now()
	if err := sub.Cancel(context.Background(), id, api.ScopeAdmin, "changed my mind"); err != nil {
		t.Fatal(err)
	}
	for _, n := range tn.Nodes {
		waitSeen(t, n, id)
		v := waitTask(t, n, id, 5*time.Second)
		if v.State != protocol.StateCanceled || !strings.Contains(v.Reason, "changed my mind") {
			t.Fatalf("node %s: %s %q", n.ID(), v.State, v.Reason)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("canceled after %s", took)
	}
	for _, n := range tn.Nodes {
		deadline := time.Now().Add(5 * time.Second)
		for {
			running, _ := n.sb.Load()
			if running == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s still runs the canceled task", n.ID())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A stopped run is not a failed one: no execution failure counted
	// (nor logged as a WARN "context canceled", as a walkthrough saw).
	time.Sleep(300 * time.Millisecond) // the runs' goroutines end after their slots
	for _, n := range tn.Nodes {
		if c := testutil.CollectAndCount(n.met.execFailed); c != 0 {
			t.Errorf("node %s counted %d kinds of execution failure for a canceled run", n.ID(), c)
		}
	}
}

// Empty input works for every type that takes raw bytes, inline.
func TestEmptyInputAccepted(t *testing.T) {
	tn := startTestnet(t, 2, nil)
	id := submit(t, tn.Nodes[0], api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json(""), Module: echoModule(t), Replicas: 2})
	if v := waitTask(t, tn.Nodes[0], id, 2*testLease); v.State != protocol.StateAccepted || string(v.Output) != `""` {
		t.Fatalf("empty input: %s %q %s", v.State, v.Reason, v.Output)
	}
}

// Reputation farming: a node that submits tasks to itself and proves them
// earns no reputation on the nodes that verify its proofs; a proof for
// another peer's task does.
func TestSelfSubmittedTaskEarnsNoReputation(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	farmer, other := tn.Nodes[1], tn.Nodes[2]
	farmer.rankHook = putFirst(farmer.ID().String())
	id := submit(t, farmer, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"21"}`)})
	if v := waitTask(t, farmer, id, 3*testLease); v.State != protocol.StateAccepted || v.Settled[0] != farmer.ID().String() {
		t.Fatalf("self-submitted task %s settled by %v", v.State, v.Settled)
	}
	waitSeen(t, other, id)
	waitTask(t, other, id, 10*time.Second)
	if verified, _ := other.rep.get(farmer.ID()); verified != 0 {
		t.Fatalf("self-dealing earned %d verified results on another node", verified)
	}
	// The same work for someone else's task counts.
	sub := tn.Nodes[0]
	sub.rankHook = putFirst(farmer.ID().String())
	id = submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"22"}`)})
	waitSeen(t, other, id)
	if v := waitTask(t, other, id, 3*testLease); v.State != protocol.StateAccepted {
		t.Fatalf("task %s", v.State)
	}
	if verified, _ := other.rep.get(farmer.ID()); verified != 1 {
		t.Fatalf("a proof for another peer's task earned %d verified results, want 1", verified)
	}
}

// Compile bomb: a module of 200,000 nested blocks is refused at submission
// at once, naming the bound, without compiling; a mimc task submitted
// beside it completes.
func TestCompileBombRefusedAtOnceWhileOthersRun(t *testing.T) {
	tn := startTestnet(t, 2, nil)
	sub := tn.Nodes[0]
	mimc := submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"31"}`)})
	bomb := nestedBlocks(200_000)
	start := time.Now()
	_, err := sub.Submit(context.Background(), api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("x"), Module: bomb, Replicas: 2})
	if !errors.Is(err, protocol.ErrBadInput) || !strings.Contains(err.Error(), "nests blocks 200000 deep") {
		t.Fatalf("bomb: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("refusing the bomb took %s", took)
	}
	if v := waitTask(t, sub, mimc, 3*testLease); v.State != protocol.StateAccepted {
		t.Fatalf("mimc beside the bomb: %s %q", v.State, v.Reason)
	}
}

// Restart mid-task: a node that follows a task (not its executor) is
// killed and restarted while the task is in flight; it restores the
// lifecycle with the result it had stored, counts the one that comes
// after, and reaches accepted like everyone else.
func TestRestartMidTaskRestoresTheLifecycle(t *testing.T) {
	tn := startTestnet(t, 4, nil)
	sub, a, b, watcher := tn.Nodes[0], tn.Nodes[1], tn.Nodes[2], tn.Nodes[3]
	sub.rankHook = func([]string) []string { return []string{a.ID().String(), b.ID().String()} }
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	t.Cleanup(release)
	a.tamper = func(*protocol.Result) { <-hold }
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("restart"), Module: echoModule(t), Replicas: 2})
	waitSeen(t, watcher, id)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rs, _ := watcher.db.Results(id); rs[b.ID().String()] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher never stored b's result")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cfg := watcher.cfg
	watcher.Kill()
	back, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = back.Close(context.Background()) })
	deadline = time.Now().Add(20 * time.Second)
	for !back.mesh.Connected(a.ID()) || len(back.mesh.Peers()) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the restarted watcher did not rejoin")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, _ := back.Task(id); v.State.Terminal() {
		t.Fatalf("settled before a's result: %s", v.State)
	}
	time.Sleep(2 * time.Second) // the gossip mesh forms around the newcomer
	release()
	v := waitTask(t, back, id, 2*testLease)
	if v.State != protocol.StateAccepted || len(v.Settled) != 2 {
		t.Fatalf("restarted watcher: %s %q settled by %v", v.State, v.Reason, v.Settled)
	}
}

// A result that gossip lost on its way to a node (here the submitter's
// validator drops it, as gossipsub drops a message whose validation a
// flood throttled) is asked of its executor before the lease runs out:
// the task settles on the two results the first candidates delivered,
// and no backup runs. Without the sync the submitter waited out the lease
// and ran the task itself (issue 15's CI failure).
func TestLostResultRecoveredBeforeLeaseEnds(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	sub, a, b := tn.Nodes[0], tn.Nodes[1], tn.Nodes[2]
	sub.rankHook = func([]string) []string {
		return []string{a.ID().String(), b.ID().String(), sub.ID().String()}
	}
	sub.dropResult = func(r *protocol.Result) bool { return r.Executor == b.ID().String() }
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("hello"), Module: echoModule(t), Replicas: 2})
	v := waitTask(t, sub, id, 3*testLease)
	want := []string{a.ID().String(), b.ID().String()}
	if v.State != protocol.StateAccepted || !slices.Equal(v.Settled, want) {
		t.Fatalf("task %s: %s %q settled by %v, want accepted by %v; timeline %+v", id[:8], v.State, v.Reason, v.Settled, want, v.Timeline)
	}
	if slices.Contains(v.Executors, sub.ID().String()) {
		t.Fatalf("the submitter ran the task itself: the lost result was not recovered (executors %v)", v.Executors)
	}
}

// The driver sleeps until the earliest wake-up a live task asked for, and
// not at all when none did: an idle node has no timer armed (a fixed
// 100 ms tick was half of an idle node's CPU).
func TestDriverSleepsUntilTheEarliestWake(t *testing.T) {
	d := &driver{live: map[string]*liveTask{}}
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	if armed := d.rearm(wake, time.Unix(1, 0), time.Time{}); !armed.IsZero() {
		t.Fatalf("no task asked to wake, yet armed for %s", armed)
	}
	select {
	case <-wake.C:
		t.Fatal("the stopped timer fired")
	case <-time.After(50 * time.Millisecond):
	}
	now := time.Now()
	d.live["later"] = &liveTask{wake: now.Add(time.Hour)}
	d.live["soon"] = &liveTask{wake: now.Add(10 * time.Millisecond)}
	d.live["never"] = &liveTask{}
	armed := d.rearm(wake, time.Time{}, time.Time{})
	if !armed.Equal(now.Add(10 * time.Millisecond)) {
		t.Fatalf("armed for %s, want the earliest wake-up %s", armed, now.Add(10*time.Millisecond))
	}
	select {
	case <-wake.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the earliest wake-up never came")
	}
	delete(d.live, "soon")
	if armed := d.rearm(wake, time.Time{}, time.Time{}); !armed.Equal(now.Add(time.Hour)) {
		t.Fatalf("armed for %s, want the next wake-up %s", armed, now.Add(time.Hour))
	}
	// A task still due after its step is not woken in a busy loop.
	d.live["due"] = &liveTask{wake: now.Add(-time.Second)}
	floor := now.Add(minWakeGap)
	if armed := d.rearm(wake, time.Time{}, floor); !armed.Equal(floor) {
		t.Fatalf("a task due since a second ago armed for %s, want %s (minWakeGap after the last wake-up)", armed, floor)
	}
}

// Who a node asks for missing results: a participant asks the silent
// executors, then the submitter; an observer asks the submitter alone, so
// a forged task naming a victim as candidate cannot turn every node of
// the network on it.
func TestSyncTargets(t *testing.T) {
	task := &protocol.Task{Submitter: "s", Candidates: []string{"a", "b", "c"}}
	for _, tc := range []struct {
		executors []string
		observed  bool
		want      []string
	}{
		{[]string{"b"}, false, []string{"b", "s"}},
		{[]string{"a", "c"}, false, []string{"a", "c", "s"}},
		{[]string{"s", "a"}, false, []string{"s", "a"}}, // the submitter is a silent candidate: asked once
		{[]string{"a", "b"}, true, []string{"s"}},
	} {
		if got := syncTargets(task, tc.executors, tc.observed); !slices.Equal(got, tc.want) {
			t.Errorf("silent %v, observed %v: asks %v, want %v", tc.executors, tc.observed, got, tc.want)
		}
	}
}

// A silent candidate that stalls the results protocol must not keep a
// node from asking the others: the asks go out at once, each bounded by
// the silence they precede. Here candidate a never delivers and holds
// every results request open; b's result is lost on its way to the
// submitter. The submitter gets b's result from b, takes a's turn over at
// the lease's end, and the task settles on b and itself. Asked one after
// another, a held the sync for its whole 10 s, b was never asked, and the
// task failed at its deadline.
func TestStallingCandidateCannotBlockResultSync(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	sub, a, b := tn.Nodes[0], tn.Nodes[1], tn.Nodes[2]
	hold := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(hold) }) })
	sub.rankHook = func([]string) []string {
		return []string{a.ID().String(), b.ID().String(), sub.ID().String()}
	}
	a.tamper = func(*protocol.Result) { <-hold }
	stalled := false
	for _, p := range a.mesh.Host().Mux().Protocols() {
		if strings.HasSuffix(string(p), "/results/1") {
			a.mesh.Host().SetStreamHandler(p, func(s network.Stream) { <-hold; _ = s.Reset() })
			stalled = true
		}
	}
	if !stalled {
		t.Fatal("no results protocol to stall")
	}
	sub.dropResult = func(r *protocol.Result) bool { return r.Executor == b.ID().String() }
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("hello"), Module: echoModule(t), Replicas: 2})
	v := waitTask(t, sub, id, 4*testLease)
	if v.State != protocol.StateAccepted || !slices.Contains(v.Settled, b.ID().String()) {
		t.Fatalf("task %s: %s %q settled by %v, want accepted with b's recovered result; timeline %+v", id[:8], v.State, v.Reason, v.Settled, v.Timeline)
	}
}

// With a lease of a minute, a lost result is not left until the lease's
// end: the submitter asks once the second replica is as late as the first
// result was (at least protocol.SyncLead after it), and the task settles
// in seconds on the two results the first candidates delivered.
func TestLostResultRecoveredEarly(t *testing.T) {
	const lease = time.Minute
	tn := startTestnet(t, 3, func(_ int, c *Config) { c.Network = shortLeaseNetwork(lease) })
	sub, a, b := tn.Nodes[0], tn.Nodes[1], tn.Nodes[2]
	sub.rankHook = func([]string) []string {
		return []string{a.ID().String(), b.ID().String(), sub.ID().String()}
	}
	sub.dropResult = func(r *protocol.Result) bool { return r.Executor == b.ID().String() }
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("hello"), Module: echoModule(t), Replicas: 2})
	// A third of the lease: the sync before the lease's end would come at
	// lease − SyncLead.
	v := waitTask(t, sub, id, lease/3)
	want := []string{a.ID().String(), b.ID().String()}
	if v.State != protocol.StateAccepted || !slices.Equal(v.Settled, want) {
		t.Fatalf("task %s: %s %q settled by %v, want accepted by %v; timeline %+v", id[:8], v.State, v.Reason, v.Settled, want, v.Timeline)
	}
}

// Syncs of tasks a node only observes (anyone can sign those, and a
// stalling submitter holds its asks open) have slots of their own: with
// every one of them taken, the submitter still recovers a result of its
// own task that gossip lost.
func TestObservedSyncsCannotTakeParticipantsSlots(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	sub, a, b := tn.Nodes[0], tn.Nodes[1], tn.Nodes[2]
	for range maxObservedSyncs {
		sub.lc.observedSyncs <- struct{}{} // held, as by stalled asks
	}
	sub.rankHook = func([]string) []string {
		return []string{a.ID().String(), b.ID().String(), sub.ID().String()}
	}
	sub.dropResult = func(r *protocol.Result) bool { return r.Executor == b.ID().String() }
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("hello"), Module: echoModule(t), Replicas: 2})
	v := waitTask(t, sub, id, 3*testLease)
	if want := []string{a.ID().String(), b.ID().String()}; v.State != protocol.StateAccepted || !slices.Equal(v.Settled, want) {
		t.Fatalf("task %s: %s %q settled by %v, want accepted by %v", id[:8], v.State, v.Reason, v.Settled, want)
	}
}

// A submitter down while its task settles asks for the results at once
// when it comes back, rather than at the next silence (a new user's
// walkthrough of 2026-12-07 saw a restarted submitter show "proving"
// for 25 s after the network had accepted the task): it shows the task
// accepted before the lease the executors had would have run out.
func TestRestartedSubmitterCatchesUpAtOnce(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	sub, a, b := tn.Nodes[0], tn.Nodes[1], tn.Nodes[2]
	sub.rankHook = func([]string) []string { return []string{a.ID().String(), b.ID().String()} }
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	t.Cleanup(release)
	a.tamper = func(*protocol.Result) { <-hold } // a delivers once sub is down
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("catch up"), Module: echoModule(t), Replicas: 2})
	waitSeen(t, b, id)
	cfg := sub.cfg
	sub.Kill()
	release()
	if v := waitTask(t, b, id, 2*testLease); v.State != protocol.StateAccepted {
		t.Fatalf("on b: %s %q", v.State, v.Reason)
	}
	back, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = back.Close(context.Background()) })
	v, err := back.Task(id)
	if err != nil {
		t.Fatal(err)
	}
	// The rule for a silence asks SyncLead before the lease's end: a
	// restarted node asks SyncLead after its restart, sooner here.
	silenceAsk := v.Created.Add(testLease - protocol.SyncLead)
	if time.Until(silenceAsk) < protocol.SyncLead+time.Second {
		t.Skipf("the machine took until %s before the silence's ask to get here: too late to tell", time.Until(silenceAsk))
	}
	for {
		v, _ := back.Task(id)
		if v.State == protocol.StateAccepted {
			return
		}
		if time.Now().After(silenceAsk) {
			t.Fatalf("the restarted submitter still shows %s when the silence's ask comes: it did not ask after its restart (syncs: recovered %v, error %v, none %v)", v.State,
				testutil.ToFloat64(back.met.synced.WithLabelValues("recovered")), testutil.ToFloat64(back.met.synced.WithLabelValues("error")), testutil.ToFloat64(back.met.synced.WithLabelValues("none")))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Every node lists the same executors: one that starts after another's
// result came (the task then verifying, not running) is listed too, as
// the lifecycle's Ran says (a walkthrough of 2026-12-07 found the
// submitter listing one of two replicas while the others listed both).
func TestExecutorsListedWhateverTheStateTheyStartedIn(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	n := tn.Nodes[0]
	id := observeFinishedStrangerTask(t, n)
	rec, err := n.db.GetTask(id)
	if err != nil {
		t.Fatal(err)
	}
	late := madeUpPeers(1)[0]
	if err := n.lc.commit(id, time.Now(), nil, []protocol.Persist{{State: rec.State, Peer: late, Ran: true, Detail: "running on " + late}}, nil, false); err != nil {
		t.Fatal(err)
	}
	if rec, err = n.db.GetTask(id); err != nil || !slices.Contains(rec.Executors, late) {
		t.Fatalf("an executor that started while the task was %s is not listed: %v (err %v)", rec.State, rec.Executors, err)
	}
}
