// Package store owns the node's bbolt file: the peer table, tasks and their
// timelines, accepted results, content-addressed blobs (WASM modules, large
// inputs), the append-only hash-chained audit log, and metadata with the
// schema version.
//
// One file per node (DESIGN.md, Persistence). Every write is a bbolt
// read-write transaction that is committed, and fsynced unless
// Options.NoSync is set, before the method returns: a write that returned
// nil survives a crash.
//
// store makes no decisions of its own: the task state machine is
// protocol.Transition, which Advance and UpdateTask call before they commit a
// state change. Several writes that must land together (a state change and
// its audit entry) go through DB.Update and the methods of Tx.
//
// Stored values are JSON (peers, tasks, audit entries) or raw bytes (results,
// blobs). Every decode of stored bytes checks its input and returns an error
// wrapping ErrCorrupt that names the bucket and key; nothing read from the
// file can panic the node.
package store
