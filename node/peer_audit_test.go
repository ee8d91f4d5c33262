package node

import (
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/protocol"
)

// The mesh tells the node of a row it marks up after a probe answered
// (mesh/liveness.go ActUp -> markUp -> notify): the down mark is cleared
// (DownAt zero), but the status is computed from the last heartbeat, which
// for a peer silent more than ten intervals is still offline. That is
// peer.up, not peer.down (a review of 2026-12-07 found it audited as the
// detector's verdict).
func TestProbeAnsweredIsNotAuditedAsDown(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	n := tn.Nodes[0]
	p := madeUpPeers(1)[0]
	pid, err := peer.Decode(p)
	if err != nil {
		t.Fatal(err)
	}
	// What markUp hands on: no down mark, heartbeats a minute old.
	n.persistPeer(mesh.PeerInfo{ID: pid, Status: protocol.StatusOffline, LastSeen: time.Now().Add(-time.Minute), Interval: time.Second})
	es, err := n.Audit(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Actor == p && e.Kind == "peer.down" && strings.Contains(e.Detail, "suspicion not refuted") {
			t.Fatalf("a row with no down mark (a probe answered) audited as %s: %s", e.Kind, e.Detail)
		}
	}
}
