package mesh

import (
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/protocol"
)

// topicRates bounds how many messages per second one origin may put on
// each topic, before validation: a peer flooding a topic has its excess
// IGNOREd (the honest relays forwarding it are not penalised), and the
// validators' work on an origin's new messages stays bounded. A token is
// spent before validation and given back if the message was old news
// another peer forwarded (refund): what such copies cost is the cheap
// checks that refuse them (docs/SECURITY.md). Rates are far above what an
// honest node sends: heartbeats at the 100 ms minimum interval, a busy
// submitter.
var topicRates = map[string]struct{ rate, burst float64 }{
	KindHeartbeat: {10, 20},
	KindLeave:     {1, 3},
	KindLiveness:  {2, 10}, // suspicions: a node that lost ten peers at once names them all
	KindTasks:     {50, 100},
	KindResults:   {50, 100},
}

// originLimiter holds one protocol.Limiter per topic kind, keyed by origin.
type originLimiter struct{ kinds map[string]*protocol.Limiter }

func newOriginLimiter() *originLimiter {
	l := &originLimiter{kinds: map[string]*protocol.Limiter{}}
	for kind, r := range topicRates {
		l.kinds[kind] = protocol.NewLimiter(r.rate, r.burst)
	}
	return l
}

// allow spends one token of origin's bucket for the topic kind.
func (l *originLimiter) allow(kind string, origin peer.ID, now time.Time) bool {
	lim, ok := l.kinds[kind]
	return !ok || lim.Allow(string(origin), now)
}

// refund gives back the token allow spent for a message of origin that
// turned out to be a replay forwarded by another peer (protocol.Replayed):
// anyone can send an origin's old messages again once this node has
// forgotten their ids, and those copies must not spend the origin's
// bucket, or a replayer could have its fresh messages IGNOREd here and
// counted as its flood.
func (l *originLimiter) refund(kind string, origin peer.ID) {
	if lim, ok := l.kinds[kind]; ok {
		lim.Refund(string(origin))
	}
}

// floodScore remembers, per peer, how many messages it sent us itself
// beyond its topic rate limits, decaying with a half-life of five minutes.
// It lowers the peer's gossip score (application-specific part), so a
// flooder loses its place in meshes while a relay, which forwards only
// what passed its own limits, is not blamed.
type floodScore struct {
	mu sync.Mutex
	m  map[peer.ID]*floodEntry
}

type floodEntry struct {
	v    float64
	last time.Time
}

const floodHalfLife = 5 * time.Minute

// maxFloodRows bounds the peers floodScore remembers: a host with many
// identities can connect under each in turn and flood a little, one row
// each. A full table forgets the rows decayed away first, then the one
// of the lowest penalty (a one-message flooder's before a real one's).
// floodForget is the decayed value below which a row is worth nothing
// (a penalty under 0.01 point): forgotten at the next sweep, which
// maintenanceLoop runs once a minute.
const (
	maxFloodRows = 4096
	floodForget  = 0.02
)

func newFloodScore() *floodScore { return &floodScore{m: map[peer.ID]*floodEntry{}} }

// sweep forgets the rows decayed below floodForget.
func (f *floodScore) sweep(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweepLocked(now)
}

func (f *floodScore) sweepLocked(now time.Time) {
	for p, e := range f.m {
		if f.decayed(e, now) < floodForget {
			delete(f.m, p)
		}
	}
}

// makeRoomLocked frees a row of a full table: the decayed ones, else the
// row of the lowest penalty.
func (f *floodScore) makeRoomLocked(now time.Time) {
	f.sweepLocked(now)
	if len(f.m) < maxFloodRows {
		return
	}
	var victim peer.ID
	least := math.Inf(1)
	for p, e := range f.m {
		if v := f.decayed(e, now); v < least {
			victim, least = p, v
		}
	}
	delete(f.m, victim)
}

func (f *floodScore) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}

func (f *floodScore) decayed(e *floodEntry, now time.Time) float64 {
	return e.v * math.Exp2(-now.Sub(e.last).Seconds()/floodHalfLife.Seconds())
}

func (f *floodScore) add(p peer.ID, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.m[p]
	if e == nil {
		if len(f.m) >= maxFloodRows {
			f.makeRoomLocked(now)
		}
		e = &floodEntry{last: now}
		f.m[p] = e
	}
	e.v = f.decayed(e, now) + 1
	e.last = now
}

// penalty is the score to subtract: 0.5 per excess message, at most 1000.
func (f *floodScore) penalty(p peer.ID, now time.Time) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.m[p]
	if e == nil {
		return 0
	}
	return min(0.5*f.decayed(e, now), 1000)
}
