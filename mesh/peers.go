package mesh

import (
	"fmt"
	"math"
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
	// DownAt is when the failure detector declared the peer down (zero
	// if not): it is offline, whatever its heartbeats' age, until a
	// heartbeat above DownSeq (its refutation or its return) or a
	// successful probe of ours.
	DownAt  time.Time
	DownSeq uint64
	// Protocols is what identify said the peer serves: its proofmesh
	// networks and protocol majors (empty until identified).
	Protocols protocol.PeerProtocols
}

type peerEntry struct {
	info PeerInfo
	// persisted is when the row last went out in a Changes batch (zero:
	// never): a routine heartbeat is written behind at most every
	// routinePersistEvery.
	persisted time.Time
	// checked: info.Heartbeat passed this process's validator (observe),
	// rather than coming from the store, which an older release with
	// another policy may have written.
	checked bool
	// claimBar is the highest seq named by a claim of the peer's death
	// that reached this node while the row was offline (such a claim is
	// stale here, and not forwarded), cleared when a heartbeat or a
	// probe brings the row back online. A heartbeat at or below it that
	// brings the row back online is contested (observation): the
	// claim's author had seen it, or a later one, and still found the
	// peer dead; or the claim is a liar's, naming a seq ahead.
	claimBar uint64
	// contestedAt is when a heartbeat of the peer was last contested
	// here: at most one per contestEvery.
	contestedAt time.Time
}

// contestEvery is the least time between two contested heartbeats of one
// peer at a node, and contestSpan how far above a contested heartbeat's
// seq the suspicion's bar may be: a liar whose claims contest a live
// peer's returns (its claims are dropped where the peer is offline, and
// reach the peer nowhere) costs that peer at most one listing as down,
// until a heartbeat more than contestSpan after the contested one, per
// contestEvery at each node that holds no connection to it. One contest
// covers a dead peer's late refutations signed within contestSpan of the
// first (a claim's seq cannot exceed its time plus the skew, so the sum
// cannot overflow).
const (
	contestEvery = 10 * time.Minute
	contestSpan  = 5 * time.Second
)

// table is the live peer table. Statuses are derived on read from the last
// heartbeat and the interval the peer announced, so no timer per peer is
// needed. It is bounded: at most maxRows rows (a full table evicts a
// deleted, offline or stale row, never a directly connected peer's), new
// identities admitted at a rate per forwarding peer, and offline rows and
// tombstones purged after their retention (purge).
type table struct {
	mu    sync.Mutex
	peers map[peer.ID]*peerEntry

	maxRows   int
	admit     *protocol.Limiter  // new identities, keyed by forwarding peer
	admitIP   *protocol.Limiter  // new identities, keyed by the forwarder's IP
	connected func(peer.ID) bool // a live connection to the peer
	// sourceIP is the IP of the direct connection to a peer ("" unknown):
	// one host cannot multiply its admission rate by opening connections
	// under many keys.
	sourceIP func(peer.ID) string
	met      *metrics // nil in tests of the table alone

	// changed and removed are the rows to write and to delete at the next
	// persistence flush (Changes): the store is written behind, in
	// batches of what changed, not the whole table each time. Both are
	// bounded by the table's rows. pending is signalled when changed
	// reaches flushRows, so that a burst is flushed before the timer.
	track     bool // record changes at all (Config.TrackChanges)
	changed   map[peer.ID]struct{}
	routine   map[peer.ID]struct{} // rows changed only by routine heartbeats
	removed   map[peer.ID]struct{}
	flushRows int
	pending   chan struct{}
}

// routinePersistEvery is how often a row that only routine heartbeats
// changed (a new seq, time, load and health; the same capabilities,
// addresses, version and interval) is written behind. A heartbeat arrives
// every few seconds from every peer: persisting each would be a write per
// heartbeat of state the next heartbeat restores anyway. Anything else
// about a row (new, back online, down, left, new capabilities or
// addresses, its score) still goes out with the next flush.
const routinePersistEvery = 30 * time.Second

// defaultFlushRows is the number of changed rows that asks for a flush
// before the flush timer.
const defaultFlushRows = 256

func newTable() *table {
	return &table{peers: make(map[peer.ID]*peerEntry), maxRows: math.MaxInt,
		connected: func(peer.ID) bool { return false }, sourceIP: func(peer.ID) string { return "" },
		track: true, changed: make(map[peer.ID]struct{}), routine: make(map[peer.ID]struct{}), removed: make(map[peer.ID]struct{}),
		flushRows: defaultFlushRows, pending: make(chan struct{}, 1)}
}

// touchLocked records that id's row changed. The caller holds mu.
func (t *table) touchLocked(id peer.ID) {
	if !t.track {
		return
	}
	t.changed[id] = struct{}{}
	delete(t.routine, id)
	if len(t.changed) == t.flushRows {
		select {
		case t.pending <- struct{}{}:
		default:
		}
	}
}

// dropLocked records that id's row left the table. The caller holds mu.
func (t *table) dropLocked(id peer.ID) {
	if !t.track {
		return
	}
	delete(t.changed, id)
	delete(t.routine, id)
	t.removed[id] = struct{}{}
}

// touch records that id's row changed outside the table (its score, say),
// if the table holds it.
func (t *table) touch(id peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.peers[id]; ok {
		t.touchLocked(id)
	}
}

// changes returns the rows changed and the ids removed since the last
// call, and forgets them. An id removed and then admitted again is in
// both: the caller deletes first, then writes.
func (t *table) changes(now time.Time) (changed []PeerInfo, removed []peer.ID) {
	return t.collect(now, false)
}

// allChanges is changes with every routine row, however recently written:
// the last batch before a stop.
func (t *table) allChanges(now time.Time) (changed []PeerInfo, removed []peer.ID) {
	return t.collect(now, true)
}

func (t *table) collect(now time.Time, all bool) (changed []PeerInfo, removed []peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id := range t.removed {
		removed = append(removed, id)
	}
	for id := range t.changed {
		if e, ok := t.peers[id]; ok {
			changed = append(changed, e.snapshot(now))
			e.persisted = now
		}
	}
	for id := range t.routine {
		e, ok := t.peers[id]
		if !ok {
			delete(t.routine, id)
			continue
		}
		if all || now.Sub(e.persisted) >= routinePersistEvery {
			changed = append(changed, e.snapshot(now))
			e.persisted = now
			delete(t.routine, id)
		}
	}
	clear(t.changed)
	clear(t.removed)
	return changed, removed
}

// newBoundedTable returns a table of at most maxRows rows admitting new
// identities at rate per second (burst) per forwarding peer, and as much
// per forwarding IP address.
func newBoundedTable(maxRows int, rate, burst float64, connected func(peer.ID) bool) *table {
	t := newTable()
	t.maxRows, t.admit, t.admitIP, t.connected = maxRows, protocol.NewLimiter(rate, burst), protocol.NewLimiter(rate, burst), connected
	return t
}

// prior returns what the heartbeat validator compares a new heartbeat of
// id with: the highest seq accepted, and the last heartbeat this process
// accepted from id with the capabilities its check returned (nil if none).
func (t *table) prior(id peer.ID) (seq uint64, hb *protocol.Heartbeat, caps protocol.Capabilities) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	if !ok {
		return 0, nil, nil
	}
	if e.checked {
		hb, caps = e.info.Heartbeat, e.info.Capabilities
	}
	return e.info.Seq, hb, caps
}

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
// persisting, with a snapshot of the row then (none otherwise: the
// validator has no use for it, and it copies the capabilities).
//
// via is the peer that forwarded the heartbeat: a new identity costs via
// one token of its admission bucket (none if it is the identity itself on
// a direct connection), and is refused (ErrNotYet: IGNORE, honest relays
// are not penalised) when the bucket is empty or the table is full of
// rows that may not be evicted. Only an admitted identity is ever
// reported, so only it is persisted.
func (t *table) observe(hb *protocol.Heartbeat, caps protocol.Capabilities, via peer.ID, now time.Time) (info PeerInfo, notable bool, err error) {
	id, err := peer.Decode(hb.NodeID)
	if err != nil {
		return PeerInfo{}, false, fmt.Errorf("%w: node_id: %v", protocol.ErrMalformed, err)
	}
	o, err := t.observeFrom(id, hb, caps, via, now)
	return o.info, o.notable, err
}

// observation is what a heartbeat did to the peer table (observeFrom).
type observation struct {
	info    PeerInfo // the row after, if notable
	notable bool     // new, back online, rejoined, or no longer down
	// contested (nonzero): the heartbeat brought an offline row back
	// online although a claim of the peer's death, dropped here while it
	// was offline, named this heartbeat's seq or a later one. Gossip
	// delivers out of order: it may be a refutation the peer sent before
	// it died, reaching this node after the claims that followed its
	// death. The row is online on the peer's signature, and the failure
	// detector holds it suspected at this bar (Detector.Contested): the
	// claim's seq, at most contestSpan above the heartbeat's.
	contested uint64
}

// observeFrom is observe for a heartbeat whose node_id the validator
// already found equal to id, the signed origin: not decoded again.
func (t *table) observeFrom(id peer.ID, hb *protocol.Heartbeat, caps protocol.Capabilities, via peer.ID, now time.Time) (o observation, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	notable := false
	if !ok {
		if err := t.admitLocked(id, via, now); err != nil {
			return observation{}, err
		}
		e = &peerEntry{info: PeerInfo{ID: id, FirstSeen: now}}
		t.peers[id] = e
		notable = true
	}
	if hb.Seq <= e.info.Seq {
		return observation{}, fmt.Errorf("%w: seq %d not above %d", protocol.ErrStale, hb.Seq, e.info.Seq)
	}
	wasOffline := ok && e.status(now) == protocol.StatusOffline
	if !ok || e.info.Heartbeat == nil || !sameSettings(e.info.Heartbeat, hb) {
		t.touchLocked(id)
	} else if _, material := t.changed[id]; t.track && !material {
		t.routine[id] = struct{}{}
	}
	if !e.info.DeletedAt.IsZero() {
		// A heartbeat older than the Leave is a straggler; a newer one
		// means the node has rejoined.
		if !time.UnixMilli(hb.Time).After(e.info.LeaveTime) {
			return observation{}, fmt.Errorf("%w: heartbeat predates the peer's leave", protocol.ErrStale)
		}
		e.info.DeletedAt, e.info.LeaveTime, e.info.LeaveReason = time.Time{}, time.Time{}, ""
		notable = true
	} else if wasOffline {
		notable = true
	}
	if !e.info.DownAt.IsZero() && hb.Seq > e.info.DownSeq {
		e.info.DownAt, e.info.DownSeq = time.Time{}, 0
		notable = true
	}
	e.info.Heartbeat = hb
	e.info.Capabilities = caps
	e.checked = true
	e.info.LastSeen = now
	e.info.Seq = hb.Seq
	e.info.Interval = time.Duration(hb.IntervalMS) * time.Millisecond
	if e.status(now) != protocol.StatusOffline {
		if wasOffline && hb.Seq <= e.claimBar && now.Sub(e.contestedAt) >= contestEvery {
			o.contested = min(e.claimBar, hb.Seq+uint64(contestSpan.Microseconds()))
			e.contestedAt = now
		}
		e.claimBar = 0
	}
	if !notable {
		return o, nil
	}
	t.touchLocked(id) // back online, rejoined, no longer down
	o.info, o.notable = e.snapshot(now), true
	return o, nil
}

// claimDropped records a claim of id's death, naming seq, that this node
// drops because it lists id offline already (see peerEntry.claimBar).
func (t *table) claimDropped(id peer.ID, seq uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.peers[id]; ok && e.status(now) == protocol.StatusOffline {
		e.claimBar = max(e.claimBar, seq)
	}
}

// sameSettings reports whether two heartbeats of one peer announce the
// same settings: what a restored row must carry, as opposed to what
// changes with every heartbeat (seq, time, load, health, refutes).
func sameSettings(a, b *protocol.Heartbeat) bool {
	return a.PolicyVersion == b.PolicyVersion && a.NodeType == b.NodeType &&
		a.Region == b.Region && a.Version == b.Version && a.IntervalMS == b.IntervalMS &&
		slices.Equal(a.TaskTypes, b.TaskTypes) && slices.Equal(a.ListenAddrs, b.ListenAddrs) &&
		a.Capabilities.Equal(b.Capabilities)
}

// admitLocked decides whether a new identity id, forwarded by via, gets a
// row, evicting one if the table is full. The caller holds mu.
func (t *table) admitLocked(id, via peer.ID, now time.Time) error {
	direct := via == id && t.connected(id)
	if !direct && t.admit != nil && !t.admit.Allow(string(via), now) {
		t.count("refused_rate")
		return fmt.Errorf("%w: new identity %s: forwarding peer %s is over its admission rate", protocol.ErrNotYet, id, via)
	}
	if ip := t.sourceIP(via); !direct && ip != "" && t.admitIP != nil && !t.admitIP.Allow(ip, now) {
		t.count("refused_rate")
		return fmt.Errorf("%w: new identity %s: forwarders at %s are over their admission rate", protocol.ErrNotYet, id, ip)
	}
	if len(t.peers) < t.maxRows {
		t.count("admitted")
		return nil
	}
	if victim, ok := t.evictableLocked(now); ok {
		delete(t.peers, victim)
		t.dropLocked(victim)
		t.evicted("capacity", 1)
		t.count("admitted")
		return nil
	}
	if direct {
		// A peer we hold a connection to is always listed: connections
		// are bounded by the connection manager, so the table stays
		// within maxRows plus the connection limit.
		t.count("admitted_direct")
		return nil
	}
	t.count("refused_full")
	return fmt.Errorf("%w: new identity %s: peer table full (%d rows, none offline, stale or deleted)", protocol.ErrNotYet, id, t.maxRows)
}

// evictableLocked picks the row to make room with: a tombstone first,
// then an offline, then a stale row, the longest unseen first; never an
// online row, never a directly connected peer.
func (t *table) evictableLocked(now time.Time) (peer.ID, bool) {
	rank := map[protocol.PeerStatus]int{protocol.StatusDeleted: 0, protocol.StatusOffline: 1, protocol.StatusStale: 2}
	var best peer.ID
	bestRank, found := 0, false
	var bestSeen time.Time
	for id, e := range t.peers {
		r, ok := rank[e.status(now)]
		if !ok || t.connected(id) {
			continue
		}
		if !found || r < bestRank || r == bestRank && e.info.LastSeen.Before(bestSeen) {
			best, bestRank, bestSeen, found = id, r, e.info.LastSeen, true
		}
	}
	return best, found
}

func (t *table) count(outcome string) {
	if t.met != nil {
		t.met.admissions.WithLabelValues(outcome).Inc()
	}
}

func (t *table) evicted(reason string, n int) {
	if t.met != nil && n > 0 {
		t.met.evictions.WithLabelValues(reason).Add(float64(n))
	}
}

// len returns the number of rows.
func (t *table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.peers)
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
	t.touchLocked(id)
	return e.snapshot(now), nil
}

func (e *peerEntry) status(now time.Time) protocol.PeerStatus {
	st := protocol.StatusAt(e.info.LastSeen, e.info.Interval, !e.info.DeletedAt.IsZero(), now)
	if st != protocol.StatusDeleted && !e.info.DownAt.IsZero() {
		return protocol.StatusOffline
	}
	return st
}

// markDown records the failure detector's verdict on id: offline until a
// heartbeat above seq or markUp. It reports the row's status before, and
// false if the table does not hold a live row for id.
func (t *table) markDown(id peer.ID, seq uint64, now time.Time) (PeerInfo, protocol.PeerStatus, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	if !ok || !e.info.DeletedAt.IsZero() {
		return PeerInfo{}, "", false
	}
	before := e.status(now)
	if e.info.DownAt.IsZero() {
		e.info.DownAt = now
	}
	e.info.DownSeq = max(e.info.DownSeq, seq, e.info.Seq)
	t.touchLocked(id)
	return e.snapshot(now), before, true
}

// markUp clears a down mark after a successful probe; it reports whether
// there was one.
func (t *table) markUp(id peer.ID, now time.Time) (PeerInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	if !ok || e.info.DownAt.IsZero() {
		return PeerInfo{}, false
	}
	e.info.DownAt, e.info.DownSeq = time.Time{}, 0
	e.claimBar = 0
	t.touchLocked(id)
	return e.snapshot(now), true
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

// restore loads rows saved by an earlier run, the most recently seen
// first, up to the table's bound; the rows beyond it are reported removed
// (Changes), so that the store holds no more than the table. Rows already
// present (seen since start) win.
func (t *table) restore(rows []PeerInfo) {
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b PeerInfo) int { return b.LastSeen.Compare(a.LastSeen) })
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range rows {
		if len(t.peers) >= t.maxRows {
			if _, ok := t.peers[r.ID]; !ok && r.ID != "" && t.track {
				t.removed[r.ID] = struct{}{}
			}
			continue
		}
		if _, ok := t.peers[r.ID]; ok || r.ID == "" {
			continue
		}
		r.Capabilities = cloneCaps(r.Capabilities)
		t.peers[r.ID] = &peerEntry{info: r}
	}
}

// purge drops tombstones deleted before deletedBefore and offline rows
// last seen before offlineBefore (never a directly connected peer's), and
// returns their ids.
func (t *table) purge(now, deletedBefore, offlineBefore time.Time) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone []peer.ID
	var tombs, offline int
	for id, e := range t.peers {
		switch {
		case !e.info.DeletedAt.IsZero():
			if e.info.DeletedAt.Before(deletedBefore) {
				delete(t.peers, id)
				t.dropLocked(id)
				gone = append(gone, id)
				tombs++
			}
		case e.status(now) == protocol.StatusOffline && e.info.LastSeen.Before(offlineBefore) && !t.connected(id):
			delete(t.peers, id)
			t.dropLocked(id)
			gone = append(gone, id)
			offline++
		}
	}
	t.evicted("tombstone_retention", tombs)
	t.evicted("offline_retention", offline)
	return gone
}
