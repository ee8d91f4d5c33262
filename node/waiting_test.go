package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/store"
)

// waitingNode starts a node whose peer table holds ids as its store gave
// them at start: offline (heard from a minute ago) or left.
func waitingNode(t *testing.T, offline, left []string) *Node {
	t.Helper()
	tn := startTestnet(t, 1, nil)
	n := tn.Nodes[0]
	now := time.Now().UTC()
	for _, id := range offline {
		if err := n.db.PutPeer(store.Peer{ID: id, FirstSeen: now.Add(-time.Hour), LastSeen: now.Add(-time.Minute), Status: protocol.StatusOffline, IntervalMS: 300}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range left {
		if err := n.db.PutPeer(store.Peer{ID: id, FirstSeen: now.Add(-time.Hour), LastSeen: now.Add(-time.Minute), Status: protocol.StatusDeleted, DeletedAt: now.Add(-30 * time.Second), LeaveReason: "bye", IntervalMS: 300}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := n.cfg
	n.Kill()
	back, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = back.Close(context.Background()) })
	return back
}

// waitingTask is a task of one replica among three candidates, created
// half a lease ago: candidate 1's scheduled start is half a lease on.
func waitingTask(cands []string) store.TaskRecord {
	lease := 10 * time.Second
	created := time.Now().Add(-lease / 2).UnixMilli()
	t := protocol.Task{Type: "mimc.chain.v1", Candidates: cands, Replicas: 1, Created: created, LeaseMS: lease.Milliseconds()}
	t.Deadline = protocol.MaxDeadline(created, len(cands), 1, lease)
	return store.TaskRecord{Task: t, State: protocol.StateRunning}
}

// Candidate 0 left with a signed Leave, so candidate 1's turn came at once
// (before its scheduled start) and it ran; then it died. The view says
// candidate 1 is offline, and does not name it as the one that takes over
// at its scheduled start: the lifecycle starts candidate 2 at its own
// start (a review of 2026-12-07 found the dead one named its own
// successor).
func TestWaitingDoesNotNameAnExecutorItsOwnSuccessor(t *testing.T) {
	c := madeUpPeers(3)
	n := waitingNode(t, []string{c[1]}, []string{c[0]})
	rec := waitingTask(c)
	rec.Executors = []string{c[1]}
	w := n.waiting(rec, map[string][]byte{}, time.Now())
	if !strings.Contains(w, "candidate 1 ("+protocol.ShortPeer(c[1])+") is listed offline here") {
		t.Fatalf("the view does not say candidate 1 is offline: %q", w)
	}
	if strings.Contains(w, "candidate 1 ("+protocol.ShortPeer(c[1])+") takes over") {
		t.Fatalf("the view names the offline candidate as its own successor: %q", w)
	}
}

// Candidate 0 is offline; candidate 1 left with a signed Leave: the
// lifecycle never starts a candidate that left (protocol/lifecycle.go
// advance: no takeover of a gone one), so the view does not promise it.
func TestWaitingDoesNotPromiseACandidateThatLeft(t *testing.T) {
	c := madeUpPeers(3)
	n := waitingNode(t, []string{c[0]}, []string{c[1]})
	w := n.waiting(waitingTask(c), map[string][]byte{}, time.Now())
	if !strings.Contains(w, "candidate 0 ("+protocol.ShortPeer(c[0])+") is listed offline here") {
		t.Fatalf("the view does not say candidate 0 is offline: %q", w)
	}
	if strings.Contains(w, "candidate 1 ("+protocol.ShortPeer(c[1])+") takes over") {
		t.Fatalf("the view says a candidate that left takes over: %q", w)
	}
}
