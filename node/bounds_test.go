package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/internal/testkeys"
	"github.com/proofmesh/proofmesh/protocol"
)

// Review of the bounds a peer or a submitter can push on (memory per
// identity or address).
//
// Reputation: anyone can sign a task naming made-up candidates, and each
// such candidate's result with a junk proof is rejected (checkResult:
// rep.rejected), making a row that was never removed. Here more made-up
// executors than the bound are rejected on a real node: the rows stay
// within maxReputationRows, and a connected, listed peer's row survives.
//
// Successful authentications: auditAuthSuccess remembered every
// credential@address pair for ever; a key holder with many source
// addresses (an IPv6 /64) grew it without end.
func TestReputationAndAuthRowsBounded(t *testing.T) {
	tn := startTestnet(t, 2, nil)
	n, other := tn.Nodes[0], tn.Nodes[1]
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p, ok := n.mesh.Peer(other.ID()); ok && p.Status == protocol.StatusOnline && n.mesh.Connected(other.ID()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other node is not listed online")
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.rep.rejected(other.ID())
	for range maxReputationRows + 500 {
		_, id := testkeys.New(t)
		n.rep.rejected(id)
	}
	if rows := n.rep.len(); rows > maxReputationRows {
		t.Fatalf("reputation holds %d rows, bound %d", rows, maxReputationRows)
	}
	if _, rejected := n.rep.get(other.ID()); rejected != 1 {
		t.Fatalf("a listed, connected peer's rejections lost: %d", rejected)
	}

	for i := range maxAuthSeen + 100 {
		n.auditAuthSuccess(fmt.Sprintf("2001:db8::%x", i), "key-prefix")
	}
	n.authSeenMu.Lock()
	rows := len(n.authSeen)
	n.authSeenMu.Unlock()
	if rows > maxAuthSeen {
		t.Fatalf("%d credential@address pairs remembered, bound %d", rows, maxAuthSeen)
	}
}
