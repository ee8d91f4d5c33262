package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/protocol"
)

// Issue 12, attack 4: every new identity was persisted and offline peers
// were never purged (proofmesh.db grew to 16 MiB). SyncPeers keeps the
// store to the bounded live table; PurgeOffline drops offline rows past
// their retention and leaves tombstones to PurgeDeleted.
func TestIdentityFloodStoreBoundedBySyncAndRetention(t *testing.T) {
	db, _ := openT(t)
	now := time.Now().UTC()
	var flood []Peer
	for i := range 5000 {
		flood = append(flood, Peer{ID: fmt.Sprintf("sybil-%04d", i), LastSeen: now.Add(-48 * time.Hour), Status: protocol.StatusOffline})
	}
	if err := db.PutPeers(flood); err != nil {
		t.Fatal(err)
	}
	live := []Peer{
		{ID: "honest", LastSeen: now, Status: protocol.StatusOnline},
		{ID: "gone", LastSeen: now.Add(-72 * time.Hour), Status: protocol.StatusOffline},
		{ID: "left", LastSeen: now.Add(-72 * time.Hour), DeletedAt: now.Add(-time.Hour), Status: protocol.StatusDeleted},
	}
	if err := db.SyncPeers(live); err != nil {
		t.Fatal(err)
	}
	list, err := db.ListPeers()
	if err != nil || len(list) != 3 {
		t.Fatalf("after sync: %d rows, %v; want the 3 live rows", len(list), err)
	}
	n, err := db.PurgeOffline(now.Add(-24 * time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PurgeOffline = %d, %v; want 1", n, err)
	}
	if _, err := db.GetPeer("gone"); err == nil {
		t.Fatal("offline peer past retention kept")
	}
	for _, id := range []string{"honest", "left"} {
		if _, err := db.GetPeer(id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
}
