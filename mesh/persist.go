package mesh

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Changes returns the peer-table rows that changed (a new row, a heartbeat
// with new settings or bringing the peer back, a Leave, a down mark,
// MarkChanged; a row that only routine heartbeats changed once
// routinePersistEvery has passed since it was last written) and the ids of the rows that left the table
// (evicted, purged, or not restored for lack of room) since the last call,
// and forgets them: the caller persists them behind the table, in one
// batch, instead of rewriting every row. An id in both was removed and
// admitted again: delete it, then write it. Only a Mesh configured with
// TrackChanges records them.
func (m *Mesh) Changes() (changed []PeerInfo, removed []peer.ID) {
	return m.table.changes(time.Now())
}

// AllChanges is Changes including every row that only routine heartbeats
// changed since it was last written, which Changes holds back for up to
// routinePersistEvery: the last batch before the node stops.
func (m *Mesh) AllChanges() (changed []PeerInfo, removed []peer.ID) {
	return m.table.allChanges(time.Now())
}

// ChangesPending is signalled when enough rows have changed that they
// should be persisted before the caller's next timed flush.
func (m *Mesh) ChangesPending() <-chan struct{} { return m.table.pending }

// MarkChanged reports a change of a peer's row made outside the mesh
// (its score), so that the next Changes includes it.
func (m *Mesh) MarkChanged(id peer.ID) { m.table.touch(id) }
