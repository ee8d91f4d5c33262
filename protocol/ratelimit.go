package protocol

import (
	"sync"
	"time"
)

// Limiter is a token bucket per key: rate tokens per second up to burst.
// It decides (may this key act now?) from the time it is given, so it is
// as testable as the rest of protocol; the API and the gossip validators
// use it. A bucket that has refilled to its burst is the same as none, so
// it is forgotten at the next sweep (one that never refills, at rate 0,
// after a minute idle); sweeps run every fill time (burst/rate, within a
// second and a minute). So the buckets held are the keys that acted
// within about two fill times: the gossip validators key buckets by a message's
// signed origin, which anyone can make up by the thousand (a review found
// one connection could leave a bucket per forged identity for up to two
// minutes, in proportion to how fast it could sign). Safe for concurrent
// use.
type Limiter struct {
	rate, burst float64
	sweepEvery  time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter of rate per second with the given burst.
func NewLimiter(rate, burst float64) *Limiter {
	l := &Limiter{rate: rate, burst: max(burst, 1), buckets: map[string]*bucket{}, sweepEvery: time.Minute}
	if rate > 0 {
		fill := time.Duration(l.burst / rate * float64(time.Second))
		l.sweepEvery = min(max(fill, time.Second), time.Minute)
	}
	return l
}

// refill returns key's bucket brought up to now; the caller holds mu.
func (l *Limiter) refill(key string, now time.Time) *bucket {
	if now.Sub(l.swept) > l.sweepEvery {
		for k, b := range l.buckets {
			// Only a refilled bucket, the same as none: one forgotten
			// while partly spent gave its key a whole burst again (a
			// second review of 2026-12-07: the store budget of a task
			// signer, 64 then one per 10 s, refilled after a minute).
			idle := now.Sub(b.last)
			if l.rate > 0 && b.tokens+idle.Seconds()*l.rate >= l.burst || l.rate <= 0 && idle > time.Minute {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	return b
}

// Allow spends one of key's tokens; false if none is left.
func (l *Limiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Has reports whether key has a token left, without spending it. A key
// without a bucket has a full one, and none is made for it: a caller may
// ask about every key it sees and spend for only a few.
func (l *Limiter) Has(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.buckets[key]; !ok {
		return true
	}
	return l.refill(key, now).tokens >= 1
}

// Refund gives back one token spent by Allow (never above the burst): for
// a spend that turned out not to be key's doing.
func (l *Limiter) Refund(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil {
		b.tokens = min(l.burst, b.tokens+1)
	}
}

// Len returns the number of buckets kept.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
