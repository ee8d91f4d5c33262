package protocol

import (
	"strconv"
	"testing"
	"time"
)

// Review of the bounds a peer can push on: a Limiter keyed by something a
// peer makes up (a gossip message's signed origin) holds a bucket per key
// only while the key's bucket is below its burst, not for a minute or two
// after its last use. A flood of 1,000 new keys a second for two minutes
// (120,000 keys) leaves at most the keys of about one sweep interval
// (burst/rate) in memory; before, every key stayed until a sweep a
// minute after the last: up to 120,000.
func TestLimiterForgetsRefilledBuckets(t *testing.T) {
	const rate, burst, perSecond = 10, 20, 1000
	l := NewLimiter(rate, burst)
	t0 := time.Unix(0, 0)
	window := time.Duration(burst / rate * float64(time.Second)) // the sweep interval
	bound := int(2*window.Seconds()*perSecond) + perSecond/10
	peak := 0
	for i := range 120 * perSecond {
		now := t0.Add(time.Duration(i) * time.Second / perSecond)
		if !l.Allow("forged-"+strconv.Itoa(i), now) {
			t.Fatalf("a new key refused at %s", now.Sub(t0))
		}
		peak = max(peak, l.Len())
	}
	if peak > bound {
		t.Fatalf("%d buckets held at the peak, bound %d (keys of two sweep intervals)", peak, bound)
	}
	t.Logf("120,000 keys over 2 minutes: at most %d buckets held", peak)
}

// The sweeps do not reset a key that keeps its bucket below the burst: a
// key asking 20 times a second of a 10/s limiter is held to the burst and
// the rate, however many sweeps other keys trigger meanwhile.
func TestLimiterSweepKeepsFloodersBucket(t *testing.T) {
	const rate, burst = 10, 20
	l := NewLimiter(rate, burst)
	t0 := time.Unix(0, 0)
	allowed := 0
	for i := range 200 { // 10 s at 20/s
		now := t0.Add(time.Duration(i) * 50 * time.Millisecond)
		l.Allow("other-"+strconv.Itoa(i), now) // sweeps run
		if l.Allow("flooder", now) {
			allowed++
		}
	}
	if limit := burst + rate*10 + 1; allowed > limit {
		t.Fatalf("flooder allowed %d in 10 s, the limiter allows %d", allowed, limit)
	}
}
