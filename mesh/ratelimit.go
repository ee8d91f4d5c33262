package mesh

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// topicRates bounds how many messages per second one origin may put on
// each topic, before validation: a peer flooding a topic has its excess
// IGNOREd (the honest relays forwarding it are not penalised), and the
// validators' work stays bounded. Rates are far above what an honest node
// sends: heartbeats at the 100 ms minimum interval, a busy submitter.
var topicRates = map[string]struct{ rate, burst float64 }{
	KindHeartbeat: {10, 20},
	KindLeave:     {1, 3},
	KindTasks:     {50, 100},
	KindResults:   {50, 100},
}

type originLimiter struct {
	mu      sync.Mutex
	buckets map[string]*originBucket
	swept   time.Time
}

type originBucket struct {
	tokens float64
	last   time.Time
}

func newOriginLimiter() *originLimiter {
	return &originLimiter{buckets: map[string]*originBucket{}}
}

// allow spends one token of origin's bucket for the topic kind.
func (l *originLimiter) allow(kind string, origin peer.ID, now time.Time) bool {
	r, ok := topicRates[kind]
	if !ok {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.last) > time.Minute {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	key := kind + "\x00" + string(origin)
	b := l.buckets[key]
	if b == nil {
		b = &originBucket{tokens: r.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(r.burst, b.tokens+now.Sub(b.last).Seconds()*r.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
