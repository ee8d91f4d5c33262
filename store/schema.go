package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Bucket names. Their layout is part of the schema: change it only with a
// migration.
var (
	bucketMeta         = []byte("meta")             // keySchema, keyAuditHead
	bucketPeers        = []byte("peers")            // peer id -> JSON Peer
	bucketTasks        = []byte("tasks")            // task id -> JSON TaskRecord
	bucketTasksCreated = []byte("tasks_by_created") // be64(created ms) ‖ task id -> nothing
	bucketResults      = []byte("results")          // task id ‖ 0x00 ‖ executor -> sealed envelope
	bucketBlobs        = []byte("blobs")            // hex sha256 -> bytes
	bucketAudit        = []byte("audit")            // be64(seq) -> JSON AuditEntry
	bucketAPIKeys      = []byte("apikeys")          // prefix -> JSON APIKey (schema 2)

	keySchema    = []byte("schema")     // be64 version
	keyAuditHead = []byte("audit_head") // be64 seq ‖ hex hash of the last entry
)

var allBuckets = [][]byte{bucketMeta, bucketPeers, bucketTasks, bucketTasksCreated, bucketResults, bucketBlobs, bucketAudit}

// A migration moves a file from schema version i to i+1, where i is its
// index in the migrations table. All pending migrations of a file run in one
// transaction: a failure leaves the file at its old version.
type migration struct {
	name string
	fn   func(tx *bolt.Tx) error
}

// migrations is the ordered table; CurrentSchema is its length.
var migrations = []migration{
	{"v1: peers, tasks, results, blobs, audit", func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	}},
	{"v2: api keys", func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketAPIKeys); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketAPIKeys, err)
		}
		return nil
	}},
}

// CurrentSchema is the schema version this binary writes: the length of the
// migrations table (TestSchemaTable checks they agree).
const CurrentSchema = 2

// schemaOf reads the version recorded in the file: 0 for a new file.
func schemaOf(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(keySchema)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: bucket meta key schema: %d bytes, want 8", ErrCorrupt, len(v))
	}
	n := binary.BigEndian.Uint64(v)
	if n > 1<<20 {
		return 0, fmt.Errorf("%w: bucket meta key schema: version %d is implausible", ErrCorrupt, n)
	}
	return int(n), nil
}

func migrate(tx *bolt.Tx, path string, migs []migration) error {
	v, err := schemaOf(tx)
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	if v > len(migs) {
		return fmt.Errorf("open store %s: %w: file has schema %d, this binary knows up to %d; run a newer proofmesh", path, ErrSchemaTooNew, v, len(migs))
	}
	if v == 0 {
		// A bbolt file with buckets but no schema belongs to something else.
		var foreign []byte
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if foreign == nil && !isOurBucket(name) {
				foreign = append([]byte(nil), name...)
			}
			return nil
		})
		if foreign != nil {
			return fmt.Errorf("open store %s: %w: a bbolt database with bucket %q is not a proofmesh store; the file was left untouched", path, ErrCorrupt, foreign)
		}
	}
	for i := v; i < len(migs); i++ {
		if err := migs[i].fn(tx); err != nil {
			return fmt.Errorf("open store %s: migrate schema %d to %d (%s): %w", path, i, i+1, migs[i].name, err)
		}
	}
	if v == len(migs) {
		return nil
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	if err := meta.Put(keySchema, be64(uint64(len(migs)))); err != nil {
		return fmt.Errorf("open store %s: record schema: %w", path, err)
	}
	return nil
}

func checkReadOnly(tx *bolt.Tx, path string, current int) error {
	v, err := schemaOf(tx)
	switch {
	case err != nil:
		return fmt.Errorf("open store %s: %w", path, err)
	case v > current:
		return fmt.Errorf("open store %s: %w: file has schema %d, this binary knows up to %d; run a newer proofmesh", path, ErrSchemaTooNew, v, current)
	case v < current:
		return fmt.Errorf("open store %s read-only: file has schema %d, this binary needs %d; open it read-write once (start the node) to migrate it", path, v, current)
	}
	return nil
}

func isOurBucket(name []byte) bool {
	for _, b := range allBuckets {
		if string(b) == string(name) {
			return true
		}
	}
	return false
}

func be64(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}
