package node

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/store"
)

// TestIdleNodeHoldsNoProvingKeyOrModule: a node that has not proved or run
// anything holds no proving key and no compiled module in memory (they are
// megabytes each); they load at the first proof or run that needs them.
func TestIdleNodeHoldsNoProvingKeyOrModule(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.KeysDir = "../zk/keys" // a key set of its own: other tests prove with the shared default one
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	for _, c := range n.keys.Circuits() {
		if !n.keys.HasProvingKey(c) {
			t.Errorf("%s: the node has no proving key", c)
		}
		if n.keys.ProvingKeyLoaded(c) {
			t.Errorf("%s: proving key in memory on a node that never proved", c)
		}
	}
	if m := n.sb.CompiledModules(); m != 0 {
		t.Errorf("%d modules compiled in memory on a node that never ran one", m)
	}
}

// TestPeerTableWriteBehind: the peer table is written behind, in batches;
// a graceful stop writes the last batch, so the store holds every live row
// as the table last had it (seq and all). A crash (Kill) may lose the last
// second of peer rows, but what was committed before it survives: the
// peer's row written when it joined and the audit chain.
func TestPeerTableWriteBehind(t *testing.T) {
	ctx := context.Background()
	tn := startTwoOnDisk(t)
	n0, n1 := tn.Nodes[0], tn.Nodes[1]
	deadline := time.Now().Add(30 * time.Second)
	for {
		p0, ok0 := n0.mesh.Peer(n1.ID())
		p1, ok1 := n1.mesh.Peer(n0.ID())
		if ok0 && ok1 && p0.Seq != 0 && p1.Seq != 0 && time.Since(p0.FirstSeen) > time.Second && time.Since(p1.FirstSeen) > time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the nodes did not hear each other for a second")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A crash: n1 stops without a flush.
	cfg1 := n1.cfg
	n1.Kill()
	db, err := store.Open(filepath.Join(cfg1.DataDir, StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if row, err := db.GetPeer(n0.ID().String()); err != nil || row.Seq == 0 {
		t.Errorf("after a crash: the row of a peer that joined before it: %+v, %v", row, err)
	}
	if n, err := db.VerifyAudit(); err != nil || n < 2 {
		t.Errorf("after a crash: audit chain of %d entries, %v; want node.start and peer.joined at least", n, err)
	}
	_ = db.Close()

	// A graceful stop: the store holds the live table's last batch.
	cfg0 := n0.cfg
	if err := n0.Close(ctx); err != nil {
		t.Fatal(err)
	}
	live, ok := n0.mesh.Peer(n1.ID())
	if !ok {
		t.Fatal("n1 left n0's table")
	}
	db, err = store.Open(filepath.Join(cfg0.DataDir, StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	row, err := db.GetPeer(n1.ID().String())
	if err != nil {
		t.Fatal(err)
	}
	if row.Seq != live.Seq || !row.LastSeen.Equal(live.LastSeen) {
		t.Errorf("stored row seq %d last seen %s; the live table had seq %d last seen %s", row.Seq, row.LastSeen, live.Seq, live.LastSeen)
	}
}

// coreRecorder is a CoreClaimer that counts the claims held and taken,
// and remembers when the oldest held claim was taken.
type coreRecorder struct {
	mu           sync.Mutex
	held, claims int
	since        time.Time
}

func (c *coreRecorder) Claim() func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == 0 {
		c.since = time.Now()
	}
	c.held++
	c.claims++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.held--
	}
}

func (c *coreRecorder) counts() (held, claims int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held, c.claims
}

// heldFor is how long claims have been held without a break (0: none
// held).
func (c *coreRecorder) heldFor() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == 0 {
		return 0
	}
	return time.Since(c.since)
}

// TestExecutionClaimsEveryCore: a node tells its CoreClaimer when it
// runs a guest and proves (so `proofmesh node`, which keeps one P while it
// only gossips, takes every core for that): the claim covers the run and
// the proof, is held until the proven result is sealed, and is released
// after.
func TestExecutionClaimsEveryCore(t *testing.T) {
	recs := []*coreRecorder{{}, {}}
	tn := startTestnet(t, 2, func(i int, c *Config) { c.Cores = recs[i] })
	type seal struct {
		held    int
		heldFor time.Duration
		stats   protocol.ExecStats
	}
	seals := make(chan seal, 4)
	for i, n := range tn.Nodes {
		n.tamper = func(r *protocol.Result) {
			held, _ := recs[i].counts()
			seals <- seal{held, recs[i].heldFor(), r.Stats}
		}
	}
	id := submit(t, tn.Nodes[0], api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x": "5"}`)})
	if v := waitTask(t, tn.Nodes[0], id, 2*time.Minute); v.State != protocol.StateAccepted {
		t.Fatalf("task %s: %s", v.State, v.Reason)
	}
	s := <-seals
	if s.held != 1 {
		t.Fatalf("%d claims held when the proven result was sealed, want 1", s.held)
	}
	// Both times are measured inside the claim, so it has been held at
	// least as long as they add up to.
	if ran := time.Duration(s.stats.WallMS+s.stats.ProveMS) * time.Millisecond; s.heldFor < ran || s.stats.ProveMS == 0 {
		t.Fatalf("the claim was held %v at the seal; the run and the proof took %v (proof %d ms)", s.heldFor, ran, s.stats.ProveMS)
	}
	claims := 0
	for _, r := range recs {
		// The executor releases once its publish returns, which may be
		// after the submitter accepted the result.
		deadline := time.Now().Add(10 * time.Second)
		for held, _ := r.counts(); held != 0; held, _ = r.counts() {
			if time.Now().After(deadline) {
				t.Fatalf("%d claims still held 10 s after the task", held)
			}
			time.Sleep(10 * time.Millisecond)
		}
		_, c := r.counts()
		claims += c
	}
	if claims != 1 {
		t.Fatalf("%d claims for one execution, want 1", claims)
	}

	// Verifying a bundle through the API checks its proofs in a batch,
	// which also wants every core.
	bundle, err := tn.Nodes[0].Bundle(id)
	if err != nil {
		t.Fatal(err)
	}
	_, before := recs[0].counts()
	if rep, err := tn.Nodes[0].VerifyBundle(bundle); err != nil || !rep.Valid {
		t.Fatalf("verify bundle: %v %+v", err, rep)
	}
	if held, after := recs[0].counts(); after != before+1 || held != 0 {
		t.Fatalf("verifying a bundle: %d claims taken, %d held after, want 1 and 0", after-before, held)
	}
}
