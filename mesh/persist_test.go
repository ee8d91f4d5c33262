package mesh

import (
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/internal/testkeys"
	"github.com/proofmesh/proofmesh/protocol"
)

// The table reports what to write behind it: each changed row once per
// batch however many heartbeats changed it, left rows, evicted and purged
// ids, rows restored beyond the bound, and a row removed then admitted
// again in both lists; a batch is forgotten once taken.
func TestPeerTableChangesWriteBehind(t *testing.T) {
	now := time.Now()
	tb := newBoundedTable(2, 1000, 1000, func(peer.ID) bool { return false })
	relay := peer.ID("relay")
	observe := func(id peer.ID, seq uint64, at time.Time) {
		t.Helper()
		hb := heartbeatFrom(id, seq, nil)
		if _, _, err := tb.observe(&hb, nil, relay, at); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(ps []PeerInfo) []peer.ID {
		var out []peer.ID
		for _, p := range ps {
			out = append(out, p.ID)
		}
		slices.Sort(out)
		return out
	}
	_, a := testkeys.New(t)
	_, b := testkeys.New(t)
	_, c := testkeys.New(t)
	for seq := uint64(1); seq <= 5; seq++ {
		observe(a, seq, now)
	}
	observe(b, 1, now)
	changed, removed := tb.changes(now)
	if got, want := ids(changed), sorted(a, b); !slices.Equal(got, want) || len(removed) != 0 {
		t.Fatalf("after heartbeats: changed %v removed %v, want %v and none", got, removed, want)
	}
	for _, p := range changed {
		if p.ID == a && p.Seq != 5 {
			t.Errorf("a's row has seq %d, want the last (5)", p.Seq)
		}
	}
	if changed, removed = tb.changes(now); len(changed)+len(removed) != 0 {
		t.Fatalf("a second batch with no change: %d changed, %d removed", len(changed), len(removed))
	}
	// A stale heartbeat changes nothing.
	hb := heartbeatFrom(a, 3, nil)
	if _, _, err := tb.observe(&hb, nil, relay, now); err == nil {
		t.Fatal("stale heartbeat accepted")
	}
	if changed, _ = tb.changes(now); len(changed) != 0 {
		t.Fatalf("a refused heartbeat marked %d rows changed", len(changed))
	}
	// a goes offline; a newcomer in the full table evicts it.
	tb.mu.Lock()
	tb.peers[a].info.LastSeen = now.Add(-time.Hour)
	tb.mu.Unlock()
	observe(c, 1, now)
	changed, removed = tb.changes(now)
	if !slices.Equal(ids(changed), []peer.ID{c}) || !slices.Equal(removed, []peer.ID{a}) {
		t.Fatalf("eviction: changed %v removed %v, want [c] and [a]", ids(changed), removed)
	}
	// A Leave is a change; purging the tombstone a removal.
	if _, err := tb.leave(b, &protocol.Leave{NodeID: b.String(), Time: time.Now().Add(time.Second).UnixMilli()}, now); err != nil {
		t.Fatal(err)
	}
	if changed, _ = tb.changes(now); !slices.Equal(ids(changed), []peer.ID{b}) {
		t.Fatalf("leave: changed %v, want [b]", ids(changed))
	}
	tb.purge(now.Add(48*time.Hour), now.Add(24*time.Hour), now)
	if _, removed = tb.changes(now); !slices.Contains(removed, b) {
		t.Fatalf("purge: removed %v, want b among them", removed)
	}
	// Removed, then back before the flush: in both lists.
	tb.mu.Lock()
	tb.peers[c].info.LastSeen = now.Add(-48 * time.Hour)
	tb.mu.Unlock()
	if gone := tb.purge(now, now.Add(-time.Hour), now.Add(-time.Hour)); !slices.Equal(gone, []peer.ID{c}) {
		t.Fatalf("purge of the offline row: %v, want [c]", gone)
	}
	observe(c, 2, now)
	changed, removed = tb.changes(now)
	if !slices.Equal(ids(changed), []peer.ID{c}) || !slices.Equal(removed, []peer.ID{c}) {
		t.Fatalf("c purged and back: changed %v removed %v, want [c] in both", ids(changed), removed)
	}
	// Rows restored beyond the bound are removed from the store.
	tb2 := newBoundedTable(1, 1000, 1000, func(peer.ID) bool { return false })
	tb2.restore([]PeerInfo{{ID: a, LastSeen: now}, {ID: b, LastSeen: now.Add(-time.Minute)}})
	if changed, removed = tb2.changes(now); len(changed) != 0 || !slices.Equal(removed, []peer.ID{b}) {
		t.Fatalf("restore beyond the bound: changed %v removed %v, want none and [b]", ids(changed), removed)
	}
}

// ChangesPending is signalled once the changed rows reach the batch size.
func TestPeerTableChangesPending(t *testing.T) {
	tb := newTable()
	tb.flushRows = 3
	now := time.Now()
	for i := range 3 {
		select {
		case <-tb.pending:
			t.Fatalf("pending after %d changed rows, batch 3", i)
		default:
		}
		_, id := testkeys.New(t)
		hb := heartbeatFrom(id, 1, nil)
		if _, _, err := tb.observe(&hb, nil, id, now); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-tb.pending:
	default:
		t.Fatal("not pending after 3 changed rows")
	}
}

func sorted(ids ...peer.ID) []peer.ID {
	slices.Sort(ids)
	return ids
}

// A table whose owner does not persist it (TrackChanges false) records
// nothing: no set grows for want of a caller of Changes.
func TestPeerTableUntrackedRecordsNothing(t *testing.T) {
	tb := newBoundedTable(1, 1000, 1000, func(peer.ID) bool { return false })
	tb.track = false
	now := time.Now()
	for i := range 3 { // each new identity evicts the one before
		_, id := testkeys.New(t)
		hb := heartbeatFrom(id, uint64(i+1), nil)
		tb.mu.Lock()
		for _, e := range tb.peers {
			e.info.LastSeen = now.Add(-time.Hour)
		}
		tb.mu.Unlock()
		if _, _, err := tb.observe(&hb, nil, peer.ID("relay"), now); err != nil {
			t.Fatal(err)
		}
	}
	if len(tb.changed)+len(tb.routine)+len(tb.removed) != 0 {
		t.Fatalf("untracked table recorded %d changed and %d removed rows", len(tb.changed), len(tb.removed))
	}
}

// Routine heartbeats (a new seq, time, load, health) of a row already
// written are written behind at most every routinePersistEvery; a new
// setting (addresses, capabilities, version, interval), a row back online
// and a new row still go out with the next batch.
func TestPeerTableRoutineHeartbeatsWrittenLess(t *testing.T) {
	now := time.Now()
	tb := newBoundedTable(10, 1000, 1000, func(peer.ID) bool { return false })
	_, a := testkeys.New(t)
	seq := uint64(0)
	observe := func(at time.Time, edit func(*protocol.Heartbeat)) {
		t.Helper()
		seq++
		hb := heartbeatFrom(a, seq, nil)
		hb.Load = float64(seq%10) / 10
		if edit != nil {
			edit(&hb)
		}
		if _, _, err := tb.observe(&hb, nil, a, at); err != nil {
			t.Fatal(err)
		}
	}
	batch := func(at time.Time) []uint64 {
		changed, _ := tb.changes(at)
		var seqs []uint64
		for _, p := range changed {
			seqs = append(seqs, p.Seq)
		}
		return seqs
	}
	observe(now, nil)
	if got := batch(now); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("a new row: batch %v, want [1]", got)
	}
	for i := 1; i <= 5; i++ {
		observe(now.Add(time.Duration(i)*time.Second), nil)
		if got := batch(now.Add(time.Duration(i) * time.Second)); len(got) != 0 {
			t.Fatalf("routine heartbeat %d written at once: %v", seq, got)
		}
	}
	if got := batch(now.Add(routinePersistEvery)); !slices.Equal(got, []uint64{6}) {
		t.Fatalf("after %s: batch %v, want the latest routine row [6]", routinePersistEvery, got)
	}
	if got := batch(now.Add(2 * routinePersistEvery)); len(got) != 0 {
		t.Fatalf("nothing new, yet batch %v", got)
	}
	at := now.Add(routinePersistEvery + time.Second)
	observe(at, func(hb *protocol.Heartbeat) { hb.ListenAddrs = []string{"/ip4/192.0.2.7/tcp/4001"} })
	if got := batch(at); !slices.Equal(got, []uint64{7}) {
		t.Fatalf("new addresses: batch %v, want [7] at once", got)
	}
	observe(at, func(hb *protocol.Heartbeat) { hb.ListenAddrs = []string{"/ip4/192.0.2.7/tcp/4001"} })
	if got := batch(at); len(got) != 0 {
		t.Fatalf("the same addresses again are routine, yet batch %v", got)
	}
	// The last batch before a stop takes routine rows at once.
	observe(at, func(hb *protocol.Heartbeat) { hb.ListenAddrs = []string{"/ip4/192.0.2.7/tcp/4001"} })
	if changed, _ := tb.allChanges(at); len(changed) != 1 || changed[0].Seq != 9 {
		t.Fatalf("the last batch: %d rows, want the routine row at seq 9", len(changed))
	}
	// Offline, then back: notable, written at once.
	tb.mu.Lock()
	tb.peers[a].info.LastSeen = at.Add(-time.Hour)
	tb.mu.Unlock()
	observe(at, func(hb *protocol.Heartbeat) { hb.ListenAddrs = []string{"/ip4/192.0.2.7/tcp/4001"} })
	if got := batch(at); !slices.Equal(got, []uint64{10}) {
		t.Fatalf("back online: batch %v, want [10] at once", got)
	}
}

// A row restored from the store is not a heartbeat this process checked
// (an older release with another policy may have written it): the
// validator gets it as a previous heartbeat only once one of the peer's
// heartbeats passed here.
func TestPriorHeartbeatOnlyOnceCheckedHere(t *testing.T) {
	tb := newTable()
	_, id := testkeys.New(t)
	now := time.Now()
	restored := heartbeatFrom(id, 1, nil)
	tb.restore([]PeerInfo{{ID: id, FirstSeen: now, LastSeen: now, Seq: 1, Heartbeat: &restored, Capabilities: protocol.Capabilities{"cpu_cores": int64(4)}}})
	if seq, hb, caps := tb.prior(id); seq != 1 || hb != nil || caps != nil {
		t.Fatalf("restored row: seq %d, prev %v, caps %v; want seq 1 and no prev", seq, hb, caps)
	}
	next := heartbeatFrom(id, 2, nil)
	caps := protocol.Capabilities{"cpu_cores": int64(2)}
	if _, _, err := tb.observe(&next, caps, id, now); err != nil {
		t.Fatal(err)
	}
	if seq, hb, got := tb.prior(id); seq != 2 || hb != &next || !got.Equal(caps) {
		t.Fatalf("after a checked heartbeat: seq %d, prev %v, caps %v", seq, hb, got)
	}
	_, unknown := testkeys.New(t)
	if seq, hb, caps := tb.prior(unknown); seq != 0 || hb != nil || caps != nil {
		t.Fatalf("unknown peer: %d, %v, %v", seq, hb, caps)
	}
}
