package residency

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// GCPolicy sets the Go collector's GOGC from the live heap: Small while
// the live heap is under SmallHeap, Large above it.
//
// A node that only gossips holds a live heap of a few MB, and with GOGC
// 100 the heap may grow by as much again plus its goroutine stacks before
// each collection: most of what such a node holds beyond its live data.
// A small GOGC there costs little (collecting a few MB is quick, and a
// node hearing 10 heartbeats a second allocates slowly); once a proof or
// a guest run makes the live heap large, the usual headroom is what keeps
// collections rare, and GOGC returns to Large at the next collection.
type GCPolicy struct {
	SmallHeap uint64 // live heap bytes below which Small applies
	Small     int    // GOGC while the live heap is small
	Large     int    // GOGC otherwise
}

// DefaultGCPolicy: GOGC 25 below 32 MiB of live heap, 100 (Go's default)
// above.
var DefaultGCPolicy = GCPolicy{SmallHeap: 32 << 20, Small: 25, Large: 100}

// Percent is the GOGC the policy gives a live heap of live bytes.
func (p GCPolicy) Percent(live uint64) int {
	if live < p.SmallHeap {
		return p.Small
	}
	return p.Large
}

// AdaptGC applies p after every garbage collection (a finalizer re-armed
// each cycle, so an idle process wakes for nothing) until stop is called,
// which restores Large. It does nothing if the operator set GOGC in the
// environment: that choice is theirs.
func AdaptGC(p GCPolicy) (stop func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	var stopped atomic.Bool
	apply := func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetGCPercent(p.Percent(sample[0].Value.Uint64()))
		}
	}
	var arm func()
	arm = func() {
		s := &sentinel{}
		runtime.SetFinalizer(s, func(*sentinel) {
			if stopped.Load() {
				return
			}
			apply()
			arm()
		})
	}
	apply()
	arm()
	return func() {
		stopped.Store(true)
		debug.SetGCPercent(p.Large)
	}
}

// sentinel is garbage from the moment it is armed: its finalizer runs
// once per collection. The pointer keeps it out of the tiny allocator,
// whose blocks are freed (and finalized) together.
type sentinel struct{ _ *byte }
