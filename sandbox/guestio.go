package sandbox

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/tetratelabs/wazero/experimental"
)

// errOutputFull is what a guest's write to a full stdout gets (as EIO).
var errOutputFull = errors.New("output limit reached")

// boundedBuffer is a guest's stdout: it keeps at most max bytes and
// refuses the write that would pass them.
type boundedBuffer struct {
	buf      []byte
	max      int
	overflow bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if len(p) > b.max-len(b.buf) {
		b.overflow = true
		return 0, errOutputFull
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// stderrHead is how much of the start of a guest's stderr is kept: where
// a Go guest says why it failed ("panic: ...", "fatal error: ...").
const stderrHead = 256

// tailBuffer is a guest's stderr: it accepts everything and keeps the
// first stderrHead bytes and the last max bytes.
type tailBuffer struct {
	head  []byte
	buf   []byte // ends with the last max bytes written
	max   int
	total int // bytes written
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	t.total += n
	if k := min(stderrHead-len(t.head), len(p)); k > 0 {
		t.head = append(t.head, p[:k]...)
	}
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return n, nil
}

// tail returns a copy of the last max bytes written, nil if none.
func (t *tailBuffer) tail() []byte {
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

// String returns the head and the tail, or everything if they overlap.
func (t *tailBuffer) String() string {
	tail := t.tail()
	if over := len(t.head) + len(tail) - t.total; over >= 0 {
		return string(t.head) + string(tail[over:])
	}
	return string(t.head) + " … " + string(tail)
}

// headBeyondClip returns the head when a Failure's message, which shows
// the last stderrClip bytes, would not show it; nil otherwise.
func (t *tailBuffer) headBeyondClip() []byte {
	if t.total <= min(stderrClip, t.max) {
		return nil
	}
	return t.head
}

// virtualEpoch is what a guest's wall clock reads at the start of a run.
var virtualEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// virtualClock is a guest's clock: it starts at the same time on every
// node and advances by 1 µs per read and by the requested time per sleep,
// so time-dependent code behaves the same everywhere and sleeping costs
// nothing.
type virtualClock struct{ now int64 }

const clockTick = int64(time.Microsecond)

func (c *virtualClock) walltime() (sec int64, nsec int32) {
	c.now += clockTick
	t := virtualEpoch + c.now
	return t / 1e9, int32(t % 1e9)
}

func (c *virtualClock) nanotime() int64 {
	c.now += clockTick
	return c.now
}

func (c *virtualClock) nanosleep(ns int64) {
	if ns > 0 {
		c.now += ns
	}
}

// randSeed seeds every guest's random source: the same bytes on every node.
var randSeed = sha256.Sum256([]byte("proofmesh sandbox random source v1"))

func newRandSource() *rand.ChaCha8 { return rand.NewChaCha8(randSeed) }

// memoryLimiter is a run's linear-memory allocator: it refuses to grow
// past the limit and remembers the largest size it gave.
type memoryLimiter struct {
	limit   uint64 // bytes
	buf     []byte
	peak    uint64
	refused bool
}

// Allocate implements experimental.MemoryAllocator; a module has at most
// one memory, so the limiter is its own linear memory.
func (m *memoryLimiter) Allocate(_, _ uint64) experimental.LinearMemory { return m }

// Reallocate implements experimental.LinearMemory.
func (m *memoryLimiter) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused = true
		return nil
	}
	if size > uint64(cap(m.buf)) {
		c := max(size, 2*uint64(cap(m.buf)))
		c = min(c, m.limit)
		nb := make([]byte, size, c)
		copy(nb, m.buf)
		m.buf = nb
	} else {
		// Memory never shrinks, so the bytes exposed here were never
		// used: still zero.
		m.buf = m.buf[:size]
	}
	m.peak = max(m.peak, size)
	return m.buf
}

// Free implements experimental.LinearMemory.
func (m *memoryLimiter) Free() { m.buf = nil }
