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
// A row matters only for the probe under way (seconds); rows older than
// heardTTL are pruned once per ProbeInterval, so they are bounded by the
// peers that sent RPCs within it: the connections this node holds.
type heardFrom struct {
	mu   sync.Mutex
	last map[peer.ID]time.Time
}

func newHeardFrom() *heardFrom { return &heardFrom{last: map[peer.ID]time.Time{}} }

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

// since reports whether p handed this node an RPC at or after t.
func (h *heardFrom) since(p peer.ID, t time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	last, ok := h.last[p]
	return ok && !last.Before(t)
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
		}
	}
}

func (h *heardFrom) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.last)
}
