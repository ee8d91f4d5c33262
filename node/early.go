package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Bounds of the buffer of messages that came before they could be
// checked: a result or progress before its task, or a result from a
// candidate whose turn this node has not yet seen come (a leave or a
// split it has not heard of yet).
const (
	maxEarlyMessages = 1024
	maxEarlyPerTask  = 16
	earlyTTL         = 2 * time.Minute
)

// earlyMessage is a message kept for a second look.
type earlyMessage struct {
	kind string // mesh kind: tasks or results
	from peer.ID
	via  peer.ID // the forwarder it came through (its share of the buffer)
	data []byte
	at   time.Time // when it first arrived (its age in the buffer, and the time rule's arrival)
	// synced: a result fetched from a peer's results stream, not gossip
	// (checkResultMessage).
	synced bool
}

// earlyBuffer keeps early messages per task, bounded in total, per task
// and in age. When it is full, the forwarder holding the most entries
// loses its oldest: a flood through one connection (under any number of
// made-up identities) evicts its own messages, not an honest peer's. It is
// safe for concurrent use (the validators add, the driver takes).
type earlyBuffer struct {
	mu      sync.Mutex
	byTask  map[string][]earlyMessage
	byVia   map[peer.ID]int
	count   int
	max     int
	perTask int
	ttl     time.Duration
}

func newEarlyBuffer(max, perTask int, ttl time.Duration) *earlyBuffer {
	return &earlyBuffer{byTask: map[string][]earlyMessage{}, byVia: map[peer.ID]int{}, max: max, perTask: perTask, ttl: ttl}
}

func (b *earlyBuffer) forget(m earlyMessage) {
	b.count--
	if b.byVia[m.via]--; b.byVia[m.via] <= 0 {
		delete(b.byVia, m.via)
	}
}

// add keeps a message for task id; false if the task's share is full.
func (b *earlyBuffer) add(id string, m earlyMessage) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, old := range b.byTask[id] {
		if old.kind == m.kind && string(old.data) == string(m.data) {
			return true
		}
	}
	if len(b.byTask[id]) >= b.perTask {
		return false
	}
	for b.count >= b.max {
		b.evict()
	}
	b.byTask[id] = append(b.byTask[id], m)
	b.byVia[m.via]++
	b.count++
	return true
}

// evict drops the oldest message of the forwarder holding the most.
func (b *earlyBuffer) evict() {
	var top peer.ID
	for via, n := range b.byVia {
		if top == "" || n > b.byVia[top] || (n == b.byVia[top] && via < top) {
			top = via
		}
	}
	var (
		oldestID string
		oldestAt int
		oldest   time.Time
	)
	for id, ms := range b.byTask {
		for i, m := range ms {
			if m.via == top && (oldestID == "" || m.at.Before(oldest)) {
				oldestID, oldestAt, oldest = id, i, m.at
			}
		}
	}
	ms := b.byTask[oldestID]
	b.forget(ms[oldestAt])
	ms = append(ms[:oldestAt:oldestAt], ms[oldestAt+1:]...)
	if len(ms) == 0 {
		delete(b.byTask, oldestID)
	} else {
		b.byTask[oldestID] = ms
	}
}

// take removes and returns the messages kept for id.
func (b *earlyBuffer) take(id string) []earlyMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	ms := b.byTask[id]
	delete(b.byTask, id)
	for _, m := range ms {
		b.forget(m)
	}
	return ms
}

// drop forgets the messages of id.
func (b *earlyBuffer) drop(id string) { b.take(id) }

// expire forgets messages older than the TTL.
func (b *earlyBuffer) expire(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, ms := range b.byTask {
		k := 0
		for k < len(ms) && now.Sub(ms[k].at) > b.ttl {
			b.forget(ms[k])
			k++
		}
		if k == len(ms) {
			delete(b.byTask, id)
		} else if k > 0 {
			b.byTask[id] = ms[k:]
		}
	}
}

// len is the number of messages kept.
func (b *earlyBuffer) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}
