package sandbox

import (
	"container/list"
	"context"
	"errors"
	"sync"

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
}

// moduleCache keeps compiled modules by the SHA-256 of their bytes: an
// LRU of at most max entries, each compiled once even when many runs ask
// for it at the same time. A module refused as invalid is remembered too,
// so that resubmitting it costs no compilation.
type moduleCache struct {
	mu      sync.Mutex
	max     int
	entries map[[32]byte]*cacheEntry
	lru     list.List // of *cacheEntry, most recent first
}

func newModuleCache(max int) *moduleCache {
	return &moduleCache{max: max, entries: make(map[[32]byte]*cacheEntry)}
}

// acquire returns the compiled module for key, compiling it with compile
// on a miss. The caller releases the entry when done with it.
func (c *moduleCache) acquire(ctx context.Context, key [32]byte, compile func() (*compiled, error)) (*cacheEntry, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok {
		e.refs++
		c.lru.MoveToFront(e.elem)
		c.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			c.release(e)
			return nil, ctx.Err()
		}
		if e.err != nil {
			c.release(e)
			return nil, e.err
		}
		return e, nil
	}
	e = &cacheEntry{key: key, ready: make(chan struct{}), refs: 1}
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

	mod, err := compile()
	c.mu.Lock()
	e.mod, e.err = mod, err
	if err != nil && !errors.Is(err, ErrInvalidModule) && !e.evicted {
		// Not a property of the module (the runtime closed, say):
		// forget it, a later run tries again.
		c.lru.Remove(e.elem)
		delete(c.entries, key)
		e.evicted = true
	}
	c.mu.Unlock()
	close(e.ready)
	if err != nil {
		c.release(e)
		return nil, err
	}
	return e, nil
}

// release gives back an entry; an evicted one is closed by its last user.
func (c *moduleCache) release(e *cacheEntry) {
	c.mu.Lock()
	e.refs--
	last := e.refs == 0 && e.evicted && e.mod != nil
	c.mu.Unlock()
	if last {
		closeAll([]*compiled{e.mod})
	}
}

// close empties the cache; it is called when no run is left.
func (c *moduleCache) close() {
	c.mu.Lock()
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
