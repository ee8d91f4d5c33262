package store

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Options configure Open. The zero value is the production setting.
type Options struct {
	// Timeout is how long Open waits for the file lock that another process
	// (a node already running on this data dir) holds. Zero means
	// DefaultTimeout; Open never waits forever.
	Timeout time.Duration
	// NoSync skips the fsync after each commit: faster, but a crash can lose
	// acknowledged writes. For tests and benchmarks only.
	NoSync bool
	// ReadOnly opens the file with a shared lock and refuses writes, so
	// `proofmesh audit verify --data-dir` can inspect a stopped node's file.
	// It never migrates: an older schema is an error.
	ReadOnly bool
	// Now is the clock for Updated, event and audit times left zero by the
	// caller. Nil means time.Now.
	Now func() time.Time
}

// DefaultTimeout is the file-lock wait when Options.Timeout is zero: long
// enough to ride out a node that is just shutting down, short enough that a
// second node on the same data dir fails at once with ErrLocked.
const DefaultTimeout = time.Second

// Validate refuses options that cannot work.
func (o Options) Validate() error {
	if o.Timeout < 0 {
		return fmt.Errorf("store options: timeout %s is negative", o.Timeout)
	}
	return nil
}

// DB is an open store. Its methods are safe for concurrent use: bbolt runs
// one writer at a time and any number of readers.
type DB struct {
	bolt     *bolt.DB
	path     string
	readOnly bool
	now      func() time.Time
}

// Open opens (creating if missing, mode 0600) the store file at path,
// creates its buckets and runs the schema migrations that the file needs, in
// one transaction. It fails with:
//   - ErrLocked when another process holds the file for longer than
//     Options.Timeout;
//   - ErrSchemaTooNew when the file's schema is newer than this binary's;
//   - ErrCorrupt when the file is not a bbolt database, or is a bbolt
//     database of something else than proofmesh. Such a file is never
//     modified, truncated or replaced. (An empty file is a new store.)
func Open(path string, opt Options) (*DB, error) {
	return open(path, opt, migrations)
}

func open(path string, opt Options, migs []migration) (*DB, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if opt.Timeout == 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  opt.Timeout,
		NoSync:   opt.NoSync,
		ReadOnly: opt.ReadOnly,
	})
	if err != nil {
		return nil, openError(path, opt, err)
	}
	db := &DB{bolt: bdb, path: path, readOnly: opt.ReadOnly, now: opt.Now}
	if opt.ReadOnly {
		err = bdb.View(func(tx *bolt.Tx) error { return checkReadOnly(tx, path, len(migs)) })
	} else {
		err = bdb.Update(func(tx *bolt.Tx) error { return migrate(tx, path, migs) })
	}
	if err != nil {
		_ = bdb.Close()
		return nil, err
	}
	return db, nil
}

func openError(path string, opt Options, err error) error {
	var pe *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("open store %s: %w (waited %s; is another proofmesh node running on this data dir?)", path, ErrLocked, opt.Timeout)
	case errors.As(err, &pe):
		return fmt.Errorf("open store: %w", err) // names the file and the OS reason
	}
	// Everything else bbolt finds after taking the lock is about the
	// content: bad magic or version (ErrInvalid, ErrVersionMismatch),
	// checksums, a file too small for its page size.
	return fmt.Errorf("open store %s: %w: not a readable bbolt database (%v); the file was left untouched: move it aside to start a new store", path, ErrCorrupt, err)
}

// Close releases the file. Further calls on db fail.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", db.path, err)
	}
	return nil
}

// Path returns the file's path.
func (db *DB) Path() string { return db.path }

// SchemaVersion returns the schema version recorded in the file.
func (db *DB) SchemaVersion() (int, error) {
	var v int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		v, err = schemaOf(tx)
		return err
	})
	return v, err
}

// Tx is one transaction of the store: every method of DB has a Tx
// counterpart, so that writes that belong together commit together (a task
// state change and its audit entry). A Tx is only valid inside the function
// given to DB.Update or DB.View; what its methods return stays valid after.
type Tx struct {
	tx  *bolt.Tx
	now func() time.Time
}

// Update runs fn in one read-write transaction and commits it (with fsync)
// if fn returns nil; if fn returns an error or panics, nothing fn wrote is
// kept, including audit entries: values fn received from Tx methods then
// describe writes that did not happen.
func (db *DB) Update(fn func(tx *Tx) error) error {
	return db.bolt.Update(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx, now: db.now}) })
}

// View runs fn in one read-only transaction: a consistent snapshot.
func (db *DB) View(fn func(tx *Tx) error) error {
	return db.bolt.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx, now: db.now}) })
}

func (tx *Tx) bucket(name []byte) (*bolt.Bucket, error) {
	b := tx.tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, name)
	}
	return b, nil
}
