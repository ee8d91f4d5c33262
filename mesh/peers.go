package mesh

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/protocol"
)

// PeerInfo is one row of the live peer table, with its status computed at
// the time it was read.
type PeerInfo struct {
	ID           peer.ID
	Status       protocol.PeerStatus
	Heartbeat    *protocol.Heartbeat   // the last accepted heartbeat
	Capabilities protocol.Capabilities // as judged by our policy (unknown keys of newer policies dropped)
	FirstSeen    time.Time
	LastSeen     time.Time // local receipt time of the last heartbeat
	Interval     time.Duration
	Seq          uint64
	DeletedAt    time.Time // zero unless the peer left
	LeaveTime    time.Time // the Leave's own timestamp
	LeaveReason  string
}

type peerEntry struct {
	info PeerInfo
}

// table is the live peer table. Statuses are derived on read from the last
// heartbeat and the interval the peer announced, so no timer per peer is
// needed.
type table struct {
	mu    sync.Mutex
	peers map[peer.ID]*peerEntry
}

func newTable() *table { return &table{peers: make(map[peer.ID]*peerEntry)} }

func (t *table) lastSeq(id peer.ID) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.peers[id]; ok {
		return e.info.Seq
	}
	return 0
}

// observe applies a validated heartbeat. It re-checks the sequence number
// under the lock (validators run concurrently) and reports whether the peer
// is new or came back from deleted or offline, the moments worth
// persisting.
func (t *table) observe(hb *protocol.Heartbeat, caps protocol.Capabilities, now time.Time) (info PeerInfo, notable bool, err error) {
	id, err := peer.Decode(hb.NodeID)
	if err != nil {
		return PeerInfo{}, false, fmt.Errorf("%w: node_id: %v", protocol.ErrMalformed, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	if !ok {
		e = &peerEntry{info: PeerInfo{ID: id, FirstSeen: now}}
		t.peers[id] = e
		notable = true
	}
	if hb.Seq <= e.info.Seq {
		return PeerInfo{}, false, fmt.Errorf("%w: seq %d not above %d", protocol.ErrStale, hb.Seq, e.info.Seq)
	}
	if !e.info.DeletedAt.IsZero() {
		// A heartbeat older than the Leave is a straggler; a newer one
		// means the node has rejoined.
		if !time.UnixMilli(hb.Time).After(e.info.LeaveTime) {
			return PeerInfo{}, false, fmt.Errorf("%w: heartbeat predates the peer's leave", protocol.ErrStale)
		}
		e.info.DeletedAt, e.info.LeaveTime, e.info.LeaveReason = time.Time{}, time.Time{}, ""
		notable = true
	} else if ok && e.status(now) == protocol.StatusOffline {
		notable = true
	}
	e.info.Heartbeat = hb
	e.info.Capabilities = caps
	e.info.LastSeen = now
	e.info.Seq = hb.Seq
	e.info.Interval = time.Duration(hb.IntervalMS) * time.Millisecond
	return e.snapshot(now), notable, nil
}

// leave marks a peer deleted. Unknown peers and peers already deleted are
// ErrDuplicate or ErrNotYet, which validators IGNORE.
func (t *table) leave(id peer.ID, l *protocol.Leave, now time.Time) (PeerInfo, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	if !ok {
		return PeerInfo{}, fmt.Errorf("%w: leave of unknown peer %s", protocol.ErrNotYet, id)
	}
	if !e.info.DeletedAt.IsZero() {
		return PeerInfo{}, fmt.Errorf("%w: peer %s already left", protocol.ErrDuplicate, id)
	}
	lt := time.UnixMilli(l.Time)
	if e.info.Heartbeat != nil && lt.Before(time.UnixMilli(e.info.Heartbeat.Time)) {
		return PeerInfo{}, fmt.Errorf("%w: leave predates the peer's last heartbeat", protocol.ErrStale)
	}
	e.info.DeletedAt = now
	e.info.LeaveTime = lt
	e.info.LeaveReason = l.Reason
	return e.snapshot(now), nil
}

func (e *peerEntry) status(now time.Time) protocol.PeerStatus {
	return protocol.StatusAt(e.info.LastSeen, e.info.Interval, !e.info.DeletedAt.IsZero(), now)
}

func (e *peerEntry) snapshot(now time.Time) PeerInfo {
	p := e.info
	p.Status = e.status(now)
	p.Capabilities = cloneCaps(p.Capabilities)
	return p
}

func cloneCaps(c protocol.Capabilities) protocol.Capabilities {
	if c == nil {
		return nil
	}
	out := make(protocol.Capabilities, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}

func (t *table) get(id peer.ID, now time.Time) (PeerInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	if !ok {
		return PeerInfo{}, false
	}
	return e.snapshot(now), true
}

func (t *table) list(now time.Time) []PeerInfo {
	t.mu.Lock()
	out := make([]PeerInfo, 0, len(t.peers))
	for _, e := range t.peers {
		out = append(out, e.snapshot(now))
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// counts returns the number of peers in each status.
func (t *table) counts(now time.Time) map[protocol.PeerStatus]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := map[protocol.PeerStatus]int{}
	for _, e := range t.peers {
		c[e.status(now)]++
	}
	return c
}

// restore loads rows saved by an earlier run. Rows already present (seen
// since start) win.
func (t *table) restore(rows []PeerInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range rows {
		if _, ok := t.peers[r.ID]; ok || r.ID == "" {
			continue
		}
		r.Capabilities = cloneCaps(r.Capabilities)
		t.peers[r.ID] = &peerEntry{info: r}
	}
}

// purge drops tombstones deleted before cutoff and returns their ids.
func (t *table) purge(cutoff time.Time) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone []peer.ID
	for id, e := range t.peers {
		if !e.info.DeletedAt.IsZero() && e.info.DeletedAt.Before(cutoff) {
			delete(t.peers, id)
			gone = append(gone, id)
		}
	}
	return gone
}
