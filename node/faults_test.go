package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/store"
)

// putFirst returns a rank hook that moves id to the front.
func putFirst(id string) func([]string) []string {
	return func(c []string) []string {
		out := []string{id}
		for _, x := range c {
			if x != id {
				out = append(out, x)
			}
		}
		return out
	}
}

// The chosen executor is killed mid-task: the next candidate takes over
// after the lease and the task is accepted from it.
func TestKilledExecutorTakenOver(t *testing.T) {
	t.Parallel() // mostly waiting out leases
	tn := startTestnet(t, 3, nil)
	sub, victim := tn.Nodes[0], tn.Nodes[2]
	sub.rankHook = putFirst(victim.ID().String())
	// The victim dies the moment it has its result, before publishing.
	victim.tamper = func(*protocol.Result) { go victim.Kill(); <-victim.ctx.Done() }
	start := time.Now()
	id := submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"7"}`)})
	v := waitTask(t, sub, id, 3*testLease)
	if v.State != protocol.StateAccepted {
		t.Fatalf("task %s: %s", v.State, v.Reason)
	}
	if v.Candidates[0] != victim.ID().String() {
		t.Fatal("victim was not the first candidate")
	}
	last := v.Timeline[len(v.Timeline)-1]
	if last.Peer == victim.ID().String() || strings.Contains(last.Detail, victim.ID().String()[len(victim.ID().String())-8:]) {
		t.Fatalf("accepted from the dead victim: %+v", last)
	}
	if took := time.Since(start); took < testLease {
		t.Fatalf("accepted after %s, before the lease of %s ran out", took, testLease)
	}
	var takeover bool
	for _, e := range v.Timeline {
		takeover = takeover || strings.Contains(e.Detail, "takes over")
	}
	if !takeover {
		t.Errorf("timeline shows no takeover: %+v", v.Timeline)
	}
}

// An executor that publishes a wrong output with its proof is rejected by
// every node (it never counts as verified anywhere), and the task completes
// on the next candidate.
func TestWrongOutputRejectedEverywhere(t *testing.T) {
	t.Parallel() // mostly waiting out leases
	tn := startTestnet(t, 3, nil)
	sub, cheat := tn.Nodes[0], tn.Nodes[1]
	sub.rankHook = putFirst(cheat.ID().String())
	cheat.skipSelfCheck = true
	cheat.tamper = func(r *protocol.Result) {
		r.Output = []byte(`{"y":"12345"}`)
		r.OutputHash = protocol.HashHex(r.Output)
	}
	id := submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"8"}`)})
	v := waitTask(t, sub, id, 3*testLease)
	if v.State != protocol.StateAccepted || strings.Contains(string(v.Output), "12345") {
		t.Fatalf("task %s: %s %s", v.State, v.Reason, v.Output)
	}
	for _, n := range tn.Nodes {
		if n == cheat {
			continue
		}
		_, rejected := n.rep.get(cheat.ID())
		if rejected < 1 {
			t.Errorf("node %s did not reject the cheat's result", n.ID())
		}
		if results, _ := n.db.Results(id); results[cheat.ID().String()] != nil {
			t.Errorf("node %s stored the cheat's result", n.ID())
		}
	}
	if p, err := sub.Peer(cheat.ID().String()); err != nil || p.Rejected < 1 {
		t.Errorf("API shows cheat with %d rejected results (%v)", p.Rejected, err)
	}
}

// A replica that disagrees is outvoted: the split starts the next
// candidate at once, two of three agree, the task is accepted with the
// truth, and the liar is recorded and loses score on every node.
func TestDisagreeingReplicaOutvoted(t *testing.T) {
	t.Parallel()
	tn := startTestnet(t, 3, nil)
	sub, liar := tn.Nodes[0], tn.Nodes[1]
	liar.skipSelfCheck = true
	liar.tamper = func(r *protocol.Result) {
		r.Output = []byte("lies")
		r.OutputHash = protocol.HashHex(r.Output)
	}
	sub.rankHook = putFirst(liar.ID().String())
	start := time.Now()
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("truth"), Module: echoModule(t), Replicas: 2})
	v := waitTask(t, sub, id, 2*testLease)
	if v.State != protocol.StateAccepted || string(v.Output) != `"`+base64.StdEncoding.EncodeToString([]byte("truth"))+`"` {
		t.Fatalf("task %s: %q %s", v.State, v.Reason, v.Output)
	}
	if took := time.Since(start); took > testLease {
		t.Errorf("a split waited %s: the third candidate should start at once, not after the lease", took)
	}
	if slices.Contains(v.Settled, liar.ID().String()) || len(v.Settled) != 2 {
		t.Fatalf("settled by %v (liar %s)", v.Settled, liar.ID())
	}
	for _, n := range []*Node{tn.Nodes[0], tn.Nodes[2]} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, rejected := n.rep.get(liar.ID()); rejected >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s did not penalize the liar", n.ID())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// A custom module whose bytes do not match its hash is refused by the
// executor: the submitter here serves other bytes under the hash, and the
// executor never runs them.
func TestModuleHashMismatchRefused(t *testing.T) {
	t.Parallel() // mostly waiting out leases
	tn := startTestnet(t, 2, nil)
	sub, exec := tn.Nodes[0], tn.Nodes[1]
	mod := echoModule(t)
	sub.blobHook = func(hash string) ([]byte, bool) {
		lies := slices.Clone(mod)
		lies[len(lies)-1] ^= 1
		return lies, true
	}
	id := submit(t, sub, api.SubmitRequest{Type: "wasm.exec.v1", Input: b64json("x"), Module: mod, Replicas: 2})
	deadline := time.Now().Add(testLease)
	for testutil.ToFloat64(exec.met.execFailed.WithLabelValues("blob_hash_mismatch")) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("executor did not refuse the substituted module")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if results, _ := sub.db.Results(id); results[exec.ID().String()] != nil {
		t.Fatal("executor published a result for a module it could not verify")
	}
}

// A node whose key directory lacks the proving keys fetches the one it
// needs from a peer by its manifest hash, and proves with it.
func TestProvingKeyFetchedFromPeer(t *testing.T) {
	t.Parallel() // mostly waiting out leases
	dir := t.TempDir()
	for _, f := range []string{"manifest.json", "mimc.chain.v1.vk", "mlp.infer.v1.vk"} {
		b, err := os.ReadFile(filepath.Join("..", "zk", "keys", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tn := startTestnet(t, 2, func(i int, c *Config) {
		if i == 1 {
			c.KeysDir = dir
		}
	})
	sub, lacking := tn.Nodes[0], tn.Nodes[1]
	if lacking.keys.HasProvingKey("mimc.chain.v1") {
		t.Fatal("the node already has the proving key")
	}
	sub.rankHook = putFirst(lacking.ID().String())
	id := submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"9"}`)})
	v := waitTask(t, sub, id, 3*testLease)
	if v.State != protocol.StateAccepted {
		t.Fatalf("task %s: %s", v.State, v.Reason)
	}
	if !lacking.keys.HasProvingKey("mimc.chain.v1") {
		t.Fatal("proving key not fetched")
	}
	if last := v.Timeline[len(v.Timeline)-1]; last.Peer != lacking.ID().String() {
		t.Fatalf("accepted from %s, not from the node that fetched the key", last.Peer)
	}
}

// A verifier executes nothing, verifies every result it sees and keeps
// per-executor counts that the API shows. A node restarted after its task
// was accepted still reports it, with its bundle.
func TestVerifierCountsAndRestartKeepsAccepted(t *testing.T) {
	tn := startTestnet(t, 3, func(i int, c *Config) {
		if i == 2 {
			c.Declared.NodeType = "verifier"
		}
	})
	sub, verifier := tn.Nodes[0], tn.Nodes[2]
	// Another node executes: a node proving its own task earns nothing.
	sub.rankHook = putFirst(tn.Nodes[1].ID().String())
	id := submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"11"}`)})
	v := waitTask(t, sub, id, 3*testLease)
	if v.State != protocol.StateAccepted || slices.Contains(v.Candidates, verifier.ID().String()) {
		t.Fatalf("task %s, candidates %v (verifier %s)", v.State, v.Candidates, verifier.ID())
	}
	executor := v.Executors[0]
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := verifier.Peer(executor)
		if err == nil && p.Verified >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verifier's view of the executor: %+v %v", p, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	cfg := sub.cfg
	sub.Kill()
	back, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close(context.Background())
	again, err := back.Task(id)
	if err != nil || again.State != protocol.StateAccepted || string(again.Output) != string(v.Output) {
		t.Fatalf("after restart: %+v %v", again, err)
	}
	if _, err := back.Bundle(id); err != nil {
		t.Fatalf("bundle after restart: %v", err)
	}
}

// Regression (found by the docker e2e run): a backup candidate restarted
// after a task was accepted must not take it over when its turn comes:
// the results it had seen are in its store.
func TestRestartedBackupDoesNotRerunSettledTask(t *testing.T) {
	t.Parallel() // waits out a lease
	tn := startTestnet(t, 3, nil)
	sub, first, backup := tn.Nodes[0], tn.Nodes[1], tn.Nodes[2]
	sub.rankHook = func([]string) []string {
		return []string{first.ID().String(), backup.ID().String(), sub.ID().String()}
	}
	id := submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"12"}`)})
	v := waitTask(t, sub, id, 3*testLease)
	if v.State != protocol.StateAccepted || len(v.Candidates) < 2 {
		t.Fatalf("task %s with %d candidates", v.State, len(v.Candidates))
	}
	eventuallyStored := time.Now().Add(5 * time.Second)
	for {
		if r, _ := backup.db.Results(id); len(r) > 0 {
			break
		}
		if time.Now().After(eventuallyStored) {
			t.Fatal("backup never stored the accepted result")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Under load (a slow proof on a busy CI machine) the backup's turn
	// may come before the first candidate's result, so that it ran
	// legitimately before the restart: what must not happen is a run
	// after it.
	before, err := backup.db.GetTask(id)
	if err != nil {
		t.Fatal(err)
	}
	cfg := backup.cfg
	backup.Kill()
	back, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close(context.Background())
	idx := slices.Index(v.Candidates, back.ID().String())
	task := protocol.Task{Created: v.Created.UnixMilli(), Replicas: v.Replicas, LeaseMS: testLease.Milliseconds()}
	time.Sleep(time.Until(task.StartAt(idx)) + 2*time.Second)
	rec, err := back.db.GetTask(id)
	if err != nil {
		t.Fatal(err)
	}
	self := back.ID().String()
	if slices.Contains(rec.Executors, self) && !slices.Contains(before.Executors, self) {
		t.Fatal("restarted backup candidate re-ran a settled task")
	}
	if n, m := runsBy(rec.Timeline, self), runsBy(before.Timeline, self); n > m {
		t.Fatalf("restarted backup candidate ran the settled task again: %d runs recorded, %d before the restart", n, m)
	}
}

// runsBy counts the timeline's running events of peer.
func runsBy(tl []store.Event, peer string) int {
	n := 0
	for _, e := range tl {
		if e.State == protocol.StateRunning && e.Peer == peer {
			n++
		}
	}
	return n
}

// An executor that leaves gracefully mid-task (signed Leave) is taken over
// at once by the next candidate, not after its lease.
func TestLeavingExecutorTakenOverAtOnce(t *testing.T) {
	t.Parallel()
	tn := startTestnet(t, 3, nil)
	sub, leaver := tn.Nodes[0], tn.Nodes[2]
	sub.rankHook = putFirst(leaver.ID().String())
	leaver.tamper = func(*protocol.Result) { <-leaver.ctx.Done() } // still busy when it leaves
	id := submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"13"}`)})
	deadline := time.Now().Add(testLease)
	for {
		v, _ := sub.Task(id)
		if slices.Contains(v.Executors, leaver.ID().String()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the leaver never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := leaver.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	v := waitTask(t, sub, id, 3*testLease)
	if v.State != protocol.StateAccepted {
		t.Fatalf("task %s: %s", v.State, v.Reason)
	}
	// The next candidate started before its lease-based turn (created +
	// one lease): the Leave, not the clock, let it take over. Checked on
	// the start, not the acceptance, so a slow proof on a loaded machine
	// does not matter.
	next := v.Candidates[1]
	var started time.Time
	for _, e := range v.Timeline {
		if e.State == protocol.StateRunning && e.Peer == next && started.IsZero() {
			started = e.Time
		}
	}
	if started.IsZero() || !started.Before(v.Created.Add(testLease)) {
		t.Fatalf("next candidate started at %v, its lease-based turn is %v", started, v.Created.Add(testLease))
	}
	if last := v.Timeline[len(v.Timeline)-1]; last.Peer == leaver.ID().String() {
		t.Fatal("accepted from the node that left")
	}
}

// An executor killed while it runs: while the task waits out its lease,
// the submitter's view says which candidate it waits for is offline here
// and when the next one takes over (an operator's walkthrough of
// 2026-12-07 heard nothing for the lease's 30 s).
func TestWaitingOnADeadExecutorIsSaid(t *testing.T) {
	t.Parallel() // waits for a failure detector
	tn := startTestnet(t, 3, nil)
	sub, victim := tn.Nodes[0], tn.Nodes[2]
	sub.rankHook = putFirst(victim.ID().String())
	id := submit(t, sub, api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"7"}`)})
	waitFor(t, 2*testLease, "the victim at work", func() bool {
		v, err := sub.Task(id)
		return err == nil && (v.State == protocol.StateRunning || v.State == protocol.StateProving) && slices.Contains(v.Executors, victim.ID().String())
	})
	victim.Kill()
	short := protocol.ShortPeer(victim.ID().String())
	var v api.TaskView
	waitFor(t, testLease, "the view waiting on the dead victim", func() bool {
		v, _ = sub.Task(id)
		return v.Waiting != "" || v.State.Terminal()
	})
	if !strings.Contains(v.Waiting, "candidate 0 ("+short+") is listed offline here") || !strings.Contains(v.Waiting, "candidate 1 (") || !strings.Contains(v.Waiting, "takes over at") {
		t.Fatalf("task %s waits with %q", v.State, v.Waiting)
	}
	if v := waitTask(t, sub, id, 3*testLease); v.State != protocol.StateAccepted || v.Waiting != "" {
		t.Fatalf("task %s %q, waiting %q", v.State, v.Reason, v.Waiting)
	}
}

// What the mesh reports of a peer is audited as what it is: the failure
// detector's verdict as peer.down (it was audited as peer.joined, found
// while building the test above); a probe answered for a peer whose
// heartbeats are old (markUp: no down mark, status still offline) as
// peer.up, not peer.down (a review of 2026-12-07); a return as peer.joined.
func TestPeerEventsAuditedAsWhatTheyAre(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	n := tn.Nodes[0]
	for _, c := range []struct {
		info      mesh.PeerInfo
		want, not string
	}{
		{mesh.PeerInfo{Status: protocol.StatusOffline, DownAt: time.Now()}, "peer.down", "peer.joined"},
		{mesh.PeerInfo{Status: protocol.StatusOffline, LastSeen: time.Now().Add(-time.Minute), Interval: time.Second}, "peer.up", "peer.down"},
		{mesh.PeerInfo{Status: protocol.StatusOnline}, "peer.joined", "peer.down"},
	} {
		p := madeUpPeers(1)[0]
		pid, err := peer.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		c.info.ID = pid
		n.persistPeer(c.info)
		if !auditHas(t, n, c.want, p) || auditHas(t, n, c.not, p) {
			t.Errorf("%s (down mark %v) not audited as %s alone", c.info.Status, !c.info.DownAt.IsZero(), c.want)
		}
	}
}

// auditHas reports whether n's audit log holds an entry of kind by actor.
func auditHas(t *testing.T, n *Node, kind, actor string) bool {
	t.Helper()
	es, err := n.Audit(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Kind == kind && e.Actor == actor {
			return true
		}
	}
	return false
}

// waitFor polls cond every 20 ms until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}
