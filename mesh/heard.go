package mesh

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// heardFrom records when each directly connected peer last handed this
// node a gossip RPC: its process was running then. A ping of a peer that
// times out while the same peer's RPCs keep arriving over a connection
// says the path is slow (queued behind gossip on a busy link), not that
// the peer is dead or hung, so such a timeout is no evidence
// (probeWorker). A dead process sends nothing and a hung one nothing new;
// only the peer can send over its own authenticated connection, so no
// third party can keep a dead peer "heard".
//
// An RPC is stamped when pubsub's loop handles it, not when it arrived: on
// a lagging loop, one the peer sent just before it hung may be stamped
// after a probe began. So a peer is excused at most maxHeardExcuses
// timeouts in a row; one answered ping starts the count again.
//
// The same rows spare the random probe of a peer heard from within the
// last ProbeInterval (spareProbe): that RPC is what the ping would show.
//
// A row matters only for the probe under way (seconds); rows older than
// heardTTL are pruned once per ProbeInterval, so they are bounded by the
// peers that sent RPCs within it: the connections this node held then,
// which the resource manager bounds.
type heardFrom struct {
	mu      sync.Mutex
	last    map[peer.ID]time.Time
	excused map[peer.ID]int // timeouts excused since the peer last answered
}

// maxHeardExcuses is how many ping timeouts in a row a peer that was
// heard from meanwhile is excused.
const maxHeardExcuses = 2

func newHeardFrom() *heardFrom {
	return &heardFrom{last: map[peer.ID]time.Time{}, excused: map[peer.ID]int{}}
}

// inspect is pubsub's RPC inspector (WithAppSpecificRpcInspector): it
// runs in the pubsub loop for every RPC accepted from a peer, and lets
// every one through.
func (h *heardFrom) inspect(p peer.ID, _ *pubsub.RPC) error {
	now := time.Now()
	h.mu.Lock()
	h.last[p] = now
	h.mu.Unlock()
	return nil
}

// excuse reports whether a ping of p that timed out, begun at t, is
// excused: p handed this node an RPC at or after t, and fewer than
// maxHeardExcuses timeouts in a row were excused already.
func (h *heardFrom) excuse(p peer.ID, t time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	last, ok := h.last[p]
	if !ok || last.Before(t) || h.excused[p] >= maxHeardExcuses {
		return false
	}
	h.excused[p]++
	return true
}

// spares reports whether a random probe of p may be left out: p handed
// this node an RPC at or after t, and no ping timeout of p was excused
// since p last answered one (the ping is then what can give p its
// excuses back: a peer that keeps talking is never pruned, and its
// count would otherwise stay used up).
func (h *heardFrom) spares(p peer.ID, t time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	last, ok := h.last[p]
	return ok && !last.Before(t) && h.excused[p] == 0
}

// answered records that p answered a ping: its excuses start again.
func (h *heardFrom) answered(p peer.ID) {
	h.mu.Lock()
	delete(h.excused, p)
	h.mu.Unlock()
}

// heardTTL is how long a row is kept: well above any probe's timeout.
const heardTTL = 30 * time.Second

// prune drops the rows last heard before t.
func (h *heardFrom) prune(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p, last := range h.last {
		if last.Before(t) {
			delete(h.last, p)
			delete(h.excused, p)
		}
	}
}

func (h *heardFrom) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.last) + len(h.excused)
}
