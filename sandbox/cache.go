package sandbox

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
)

// compiled is a module ready to instantiate.
type compiled struct {
	cm        wazero.CompiledModule
	hasStart  bool   // call meter.StartExport before _start
	memoryMin uint32 // initial memory, in pages
}

// cacheEntry is one module of the cache, compiled or being compiled.
type cacheEntry struct {
	key     [32]byte
	ready   chan struct{} // closed when mod or err is set
	mod     *compiled
	err     error
	refs    int  // runs using the entry
	evicted bool // out of the LRU; close when refs drops to 0
	elem    *list.Element
	idle    time.Time // when refs last dropped to 0
}

// moduleCache keeps compiled modules by the SHA-256 of their bytes: an
// LRU of at most max entries, each compiled once even when many runs ask
// for it at the same time. A module refused as invalid is remembered too,
// so that resubmitting it costs no compilation. A compiled module no run
// has used for ttl is closed (its code and decoded module freed): with an
// on-disk compilation cache, the next run reloads it in a fraction of the
// compile time, and a node that ran a task once does not keep megabytes of
// machine code for the rest of its life.
type moduleCache struct {
	mu      sync.Mutex
	max     int
	ttl     time.Duration // 0: compiled modules stay until the LRU evicts them
	entries map[[32]byte]*cacheEntry
	lru     list.List   // of *cacheEntry, most recent first
	sweeper *time.Timer // pending idle sweep, nil when none
	closed  bool
}

func newModuleCache(max int, ttl time.Duration) *moduleCache {
	return &moduleCache{max: max, ttl: ttl, entries: make(map[[32]byte]*cacheEntry)}
}

// compiler is how the cache has a module compiled: wait for a compiler
// (under the caller's context), then start compile in the background
// with it, so that a caller who stops waiting leaves promptly.
type compiler struct {
	wait    func(context.Context) error
	start   func(func())
	compile func() (*compiled, error)
}

// acquire returns the compiled module for key, compiling it with c on a
// miss. The caller releases the entry when done with it.
func (c *moduleCache) acquire(ctx context.Context, key [32]byte, comp compiler) (*cacheEntry, error) {
	for {
		c.mu.Lock()
		e, ok := c.entries[key]
		if !ok {
			break // with c.mu held
		}
		e.refs++
		c.lru.MoveToFront(e.elem)
		c.mu.Unlock()
		err := c.await(ctx, e)
		if err == nil {
			return e, nil
		}
		if errors.Is(err, ErrInvalidModule) || ctx.Err() != nil {
			return nil, err
		}
		// Not a property of the module: the caller who was to compile it
		// stopped waiting for a compiler, say. Try again.
	}
	e := &cacheEntry{key: key, ready: make(chan struct{}), refs: 2} // ours and the compiler's
	e.elem = c.lru.PushFront(e)
	c.entries[key] = e
	var evict []*compiled
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*cacheEntry)
		delete(c.entries, old.key)
		old.evicted = true
		if old.refs == 0 && old.mod != nil {
			evict = append(evict, old.mod)
		}
	}
	c.mu.Unlock()
	closeAll(evict)

	if err := comp.wait(ctx); err != nil {
		c.finish(e, nil, err)
	} else {
		comp.start(func() {
			mod, err := comp.compile()
			c.finish(e, mod, err)
		})
	}
	if err := c.await(ctx, e); err != nil {
		return nil, err
	}
	return e, nil
}

// await waits for e to be compiled; on an error it releases e.
func (c *moduleCache) await(ctx context.Context, e *cacheEntry) error {
	select {
	case <-e.ready:
	case <-ctx.Done():
		c.release(e)
		return fmt.Errorf("sandbox: waiting for a compilation: %w", ctx.Err())
	}
	if e.err != nil {
		c.release(e)
		return e.err
	}
	return nil
}

// finish records the outcome of a compilation and drops the compiler's
// reference.
func (c *moduleCache) finish(e *cacheEntry, mod *compiled, err error) {
	c.mu.Lock()
	e.mod, e.err = mod, err
	if err != nil && !errors.Is(err, ErrInvalidModule) && !e.evicted {
		// Not a property of the module (the runtime closed, say):
		// forget it, a later run tries again.
		c.lru.Remove(e.elem)
		delete(c.entries, e.key)
		e.evicted = true
	}
	c.mu.Unlock()
	close(e.ready)
	c.release(e)
}

// release gives back an entry; an evicted one is closed by its last user.
func (c *moduleCache) release(e *cacheEntry) {
	c.mu.Lock()
	e.refs--
	last := e.refs == 0 && e.evicted && e.mod != nil
	if e.refs == 0 && !e.evicted && e.mod != nil && c.ttl > 0 {
		e.idle = time.Now()
		if c.sweeper == nil && !c.closed {
			c.sweeper = time.AfterFunc(c.ttl, c.sweep)
		}
	}
	c.mu.Unlock()
	if last {
		closeAll([]*compiled{e.mod})
	}
}

// sweep closes the compiled modules idle for ttl and schedules itself for
// the next one to become so. Modules refused as invalid stay (they hold
// no code, and remembering them saves a compilation).
func (c *moduleCache) sweep() {
	c.mu.Lock()
	c.sweeper = nil
	if c.closed {
		c.mu.Unlock()
		return
	}
	now := time.Now()
	var evict []*compiled
	next := time.Duration(-1)
	for key, e := range c.entries {
		if e.refs != 0 || e.mod == nil {
			continue
		}
		if left := c.ttl - now.Sub(e.idle); left > 0 {
			if next < 0 || left < next {
				next = left
			}
			continue
		}
		c.lru.Remove(e.elem)
		delete(c.entries, key)
		e.evicted = true
		evict = append(evict, e.mod)
	}
	if next >= 0 {
		c.sweeper = time.AfterFunc(next, c.sweep)
	}
	c.mu.Unlock()
	closeAll(evict)
}

// compiledLen returns the number of modules held compiled in memory.
func (c *moduleCache) compiledLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.entries {
		if e.mod != nil {
			n++
		}
	}
	return n
}

// close empties the cache; it is called when no run is left.
func (c *moduleCache) close() {
	c.mu.Lock()
	c.closed = true
	if c.sweeper != nil {
		c.sweeper.Stop()
		c.sweeper = nil
	}
	var all []*compiled
	for _, e := range c.entries {
		if e.mod != nil {
			all = append(all, e.mod)
		}
	}
	c.entries = make(map[[32]byte]*cacheEntry)
	c.lru.Init()
	c.mu.Unlock()
	closeAll(all)
}

// len returns the number of entries, for tests.
func (c *moduleCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func closeAll(mods []*compiled) {
	for _, m := range mods {
		_ = m.cm.Close(context.Background()) // frees compiled code; cannot fail
	}
}
