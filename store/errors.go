package store

import "errors"

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrNotFound: no record with that key (peer, task, blob).
	ErrNotFound = errors.New("not found")
	// ErrExists: a record with that key is already stored and may not be
	// replaced (CreateTask, a different result from the same executor).
	ErrExists = errors.New("already exists")
	// ErrSchemaTooNew: the file was written by a newer proofmesh; upgrade
	// the binary rather than let this one misread it.
	ErrSchemaTooNew = errors.New("store schema is newer than this binary")
	// ErrAuditBroken: the audit chain has an edited, removed or reordered
	// entry.
	ErrAuditBroken = errors.New("audit chain broken")
	// ErrCorrupt: stored bytes do not decode, or do not match their key or
	// hash, or the file is not a proofmesh bbolt store.
	ErrCorrupt = errors.New("store data corrupt")
	// ErrLocked: another process holds the file (a node already runs on
	// this data dir).
	ErrLocked = errors.New("store file is locked by another process")
)
