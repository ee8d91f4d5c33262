package bootstrap

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Dialer is what the keeper needs of the mesh.
type Dialer interface {
	Connect(ctx context.Context, ai peer.AddrInfo) error
	Connected(p peer.ID) bool
	// ConnectedPeers is the number of peers the node holds a connection to.
	ConnectedPeers() int
}

// MinPeers is the number of connected peers below which the keeper dials
// the bootstrap peers it has no connection to (kubo's MinPeerThreshold).
// At or above it the node is part of the network (the DHT and rendezvous
// discovery find it more peers, and heal a partition when the routing
// table refreshes), and it leaves the bootstrap peers alone: a bootstrap
// node trims the connections of a network larger than its --keep-conns,
// and if every node dialled it back at once, it would hold a connection
// to every node, up to its --max-conns, and refuse the nodes that join
// next.
const MinPeers = 4

// Backoff is the reconnect schedule: delays grow from Base by Factor up to
// Max, each drawn with full jitter in [delay/2, delay] so that nodes
// restarted together do not dial in lockstep.
type Backoff struct {
	Base   time.Duration
	Max    time.Duration
	Factor float64
	// Check is how often connections are checked.
	Check time.Duration
}

// DefaultBackoff starts at one second and caps at one minute.
func DefaultBackoff() Backoff {
	return Backoff{Base: time.Second, Max: time.Minute, Factor: 2, Check: time.Second}
}

// delay returns the wait before attempt number n (n ≥ 1 failed attempts).
func (b Backoff) delay(n int, rnd func() float64) time.Duration {
	d := float64(b.Base)
	for i := 1; i < n && d < float64(b.Max); i++ {
		d *= b.Factor
	}
	d = min(d, float64(b.Max))
	return time.Duration(d/2 + rnd()*d/2)
}

// Keeper connects this node to its bootstrap peers while it holds fewer
// than MinPeers connections: at start, and whenever it loses its peers.
type Keeper struct {
	d     Dialer
	peers []peer.AddrInfo
	b     Backoff
	log   *slog.Logger

	mu       sync.Mutex
	attempts map[peer.ID]int
	next     map[peer.ID]time.Time
	failed   map[peer.ID]Failure // bootstrap peers whose last dial failed

	cancel context.CancelFunc
	done   chan struct{}
}

// Start begins keeping the connections; Stop ends it. Peers equal to self
// are skipped by the caller (a bootstrap node lists itself harmlessly).
func Start(d Dialer, peers []peer.AddrInfo, b Backoff, log *slog.Logger) *Keeper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Keeper{
		d: d, peers: peers, b: b, log: log.With("subsys", "bootstrap"),
		attempts: map[peer.ID]int{}, next: map[peer.ID]time.Time{}, failed: map[peer.ID]Failure{},
		cancel: cancel, done: make(chan struct{}),
	}
	go k.run(ctx)
	return k
}

// Attempts returns the failed dial attempts in a row to p.
func (k *Keeper) Attempts(p peer.ID) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.attempts[p]
}

// Failure is a bootstrap peer this node cannot reach: its addresses, the
// last dial's error, failed attempts in a row and since when.
type Failure struct {
	Peer     peer.AddrInfo
	Err      error
	Attempts int
	Since    time.Time
}

// Failures lists the bootstrap peers whose last dial failed, in the order
// they were given; none while the node holds MinPeers connections (it
// does not need them then, and does not dial them).
func (k *Keeper) Failures() []Failure {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []Failure
	for _, ai := range k.peers {
		if f, ok := k.failed[ai.ID]; ok {
			out = append(out, f)
		}
	}
	return out
}

// Stop stops the keeper and waits for it.
func (k *Keeper) Stop() {
	k.cancel()
	<-k.done
}

func (k *Keeper) run(ctx context.Context) {
	defer close(k.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		enough := k.d.ConnectedPeers() >= MinPeers
		for _, ai := range k.peers {
			if enough || k.d.Connected(ai.ID) {
				k.mu.Lock()
				k.attempts[ai.ID] = 0
				delete(k.failed, ai.ID)
				k.mu.Unlock()
				continue
			}
			k.mu.Lock()
			due := !now.Before(k.next[ai.ID])
			k.mu.Unlock()
			if due {
				k.dial(ctx, ai)
			}
		}
		t.Reset(k.b.Check)
	}
}

func (k *Keeper) dial(ctx context.Context, ai peer.AddrInfo) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := k.d.Connect(dctx, ai)
	cancel()
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil {
		if k.attempts[ai.ID] > 0 {
			k.log.Info("reconnected to bootstrap peer", "peer", ai.ID)
		}
		k.attempts[ai.ID] = 0
		delete(k.failed, ai.ID)
		return
	}
	f, ok := k.failed[ai.ID]
	if !ok {
		f = Failure{Peer: ai, Since: time.Now()}
	}
	f.Err, f.Attempts = err, k.attempts[ai.ID]+1
	k.failed[ai.ID] = f
	k.attempts[ai.ID]++
	wait := k.b.delay(k.attempts[ai.ID], rand.Float64)
	k.next[ai.ID] = time.Now().Add(wait)
	k.log.Warn("bootstrap peer unreachable", "peer", ai.ID, "attempt", k.attempts[ai.ID], "retry_in", wait.Round(time.Millisecond), "err", err)
}
