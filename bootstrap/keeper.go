package bootstrap

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// Dialer is what the keeper needs of the mesh.
type Dialer interface {
	Connect(ctx context.Context, ai peer.AddrInfo) error
	Connected(p peer.ID) bool
	// JoinedPeers is the number of connected peers that are nodes of this
	// network (listed online by their heartbeats): bare libp2p identities
	// do not count.
	JoinedPeers() int
}

// MinPeers is the number of joined peers below which the keeper dials the
// bootstrap peers it has no connection to at once, with backoff (kubo's
// MinPeerThreshold): at start, and whenever the node lost its peers. At or
// above it the node is part of the network, and it dials a bootstrap peer
// it has no connection to only once per Backoff.Touch: a bootstrap node
// trims the connections of a network larger than its --keep-conns, and if
// every node dialled it back at once, it would hold a connection to every
// node, up to its --max-conns, and refuse the nodes that join next. The
// touch is what joins a bootstrap node that restarted (with the nodes that
// joined through it meanwhile) back to the nodes that never lost their
// peers, and what bridges any partition a bootstrap node is on.
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
	// Touch is the most time between two dials of a bootstrap peer while
	// the node has MinPeers joined peers (each wait drawn in
	// [Touch/2, Touch]); 0: never.
	Touch time.Duration
}

// DefaultBackoff starts at one second and caps at one minute, and touches
// a bootstrap peer every 5–10 minutes: a network of N nodes dials it about
// N/450 times a second, and each connection lasts until its trim, a
// minute after.
func DefaultBackoff() Backoff {
	return Backoff{Base: time.Second, Max: time.Minute, Factor: 2, Check: time.Second, Touch: 10 * time.Minute}
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

// Keeper connects this node to its bootstrap peers: with backoff while it
// holds fewer than MinPeers joined peers, once per Backoff.Touch beyond.
type Keeper struct {
	d     Dialer
	peers []peer.AddrInfo
	b     Backoff
	log   *slog.Logger

	mu       sync.Mutex
	attempts map[peer.ID]int
	next     map[peer.ID]time.Time
	touch    map[peer.ID]time.Time // the next dial while the node has peers enough
	failed   map[peer.ID]Failure   // bootstrap peers whose last dial failed

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
		attempts: map[peer.ID]int{}, next: map[peer.ID]time.Time{}, touch: map[peer.ID]time.Time{}, failed: map[peer.ID]Failure{},
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
// they were given.
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
		enough := k.d.JoinedPeers() >= MinPeers
		for _, ai := range k.peers {
			if k.d.Connected(ai.ID) {
				k.mu.Lock()
				k.attempts[ai.ID] = 0
				delete(k.failed, ai.ID)
				k.mu.Unlock()
				continue
			}
			k.mu.Lock()
			due := !now.Before(k.next[ai.ID])
			if enough {
				due = k.b.Touch > 0 && !now.Before(k.touch[ai.ID])
			}
			if due && k.b.Touch > 0 {
				k.touch[ai.ID] = now.Add(k.b.Touch/2 + time.Duration(rand.Int64N(int64(k.b.Touch/2)+1)))
			}
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
	// libp2p's dial backoff hides why the address failed ("peer id
	// mismatch", "connection refused"): the first cause is kept (a new
	// user's walkthrough of 2026-12-07 saw only "dial backoff").
	if f.Err == nil || !errors.Is(err, swarm.ErrDialBackoff) {
		f.Err = err
	}
	f.Attempts = k.attempts[ai.ID] + 1
	k.failed[ai.ID] = f
	k.attempts[ai.ID]++
	wait := k.b.delay(k.attempts[ai.ID], rand.Float64)
	k.next[ai.ID] = time.Now().Add(wait)
	// A warning at attempts 1, 2, 4, 8, …, the others at debug: a peer
	// down for a day does not fill the log (a walkthrough saw a WARN per
	// retry); the node's problems list (bootstrap_unreachable) says it
	// all along.
	level := slog.LevelDebug
	if n := k.attempts[ai.ID]; n&(n-1) == 0 {
		level = slog.LevelWarn
	}
	k.log.Log(context.Background(), level, "bootstrap peer unreachable", "peer", ai.ID, "attempt", k.attempts[ai.ID], "retry_in", wait.Round(time.Millisecond), "err", f.Err)
}
