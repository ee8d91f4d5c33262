// Package store owns the node's bbolt file: the peer table, tasks and their
// timelines, accepted results, content-addressed blobs (WASM modules, large
// inputs), the append-only hash-chained audit log, and metadata with the
// schema version.
//
// One file per node (DESIGN.md, Persistence), held with an exclusive lock:
// a second process on the same data dir fails with ErrLocked. Every write
// is a bbolt read-write transaction that is committed, and fsynced unless
// Options.NoSync is set, before the method returns: a write that returned
// nil survives a crash.
//
// store makes no decisions of its own: the task state machine is
// protocol.Transition, which Advance and UpdateTask call before they commit
// a state change.
//
// Writes that must land together go through DB.Update, whose Tx has a
// method for every write of DB. A state change and its audit entry:
//
//	err := db.Update(func(tx *store.Tx) error {
//		if _, err := tx.Advance(id, protocol.StateAccepted, ev); err != nil {
//			return err
//		}
//		_, err := tx.Append(store.AuditEntry{Kind: "task.accepted", Subject: id})
//		return err
//	})
//
// (DB.AdvanceAudited is that, ready-made.) If the function returns an
// error, neither is written.
//
// The audit chain is tamper-evident, not tamper-proof: VerifyAudit detects
// an edited, removed, reordered or truncated entry, but someone who can
// rewrite the whole file can rebuild a consistent chain. AuditHead gives
// the last seq and hash, for anchoring outside the file.
//
// Stored values are JSON (peers, tasks, audit entries) or raw bytes
// (results, blobs). Every decode of stored bytes checks its input and
// returns an error wrapping ErrCorrupt that names the bucket and key;
// nothing read from the file can panic the node.
package store
