package store

import (
	"bytes"
	"fmt"

	"github.com/proofmesh/proofmesh/protocol"
)

// isHexHash reports whether h is a lower-case hex SHA-256.
func isHexHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// PutBlob stores data under its content address, protocol.HashHex(data),
// and returns it. Storing a blob that is already there intact writes
// nothing.
func (tx *Tx) PutBlob(data []byte) (string, error) {
	b, err := tx.bucket(bucketBlobs)
	if err != nil {
		return "", err
	}
	h := protocol.HashHex(data)
	if old := b.Get([]byte(h)); old != nil && bytes.Equal(old, data) {
		return h, nil // present and intact; a damaged copy is rewritten
	}
	if err := b.Put([]byte(h), bytes.Clone(data)); err != nil {
		return "", fmt.Errorf("store blob %s: %w", h, err)
	}
	return h, nil
}

// GetBlob returns the blob with content address hash: ErrNotFound if none
// (or hash is not a lower-case hex SHA-256), ErrCorrupt if the stored bytes
// no longer hash to it.
func (tx *Tx) GetBlob(hash string) ([]byte, error) {
	if !isHexHash(hash) {
		return nil, fmt.Errorf("blob %q: %w (not a lower-case hex SHA-256)", hash, ErrNotFound)
	}
	b, err := tx.bucket(bucketBlobs)
	if err != nil {
		return nil, err
	}
	v := b.Get([]byte(hash))
	if v == nil {
		return nil, fmt.Errorf("blob %s: %w", hash, ErrNotFound)
	}
	if got := protocol.HashHex(v); got != hash {
		return nil, corrupt(bucketBlobs, []byte(hash), fmt.Errorf("content hashes to %s", got))
	}
	return bytes.Clone(v), nil
}

// HasBlob reports whether a blob with content address hash is stored. It
// does not read or verify the content.
func (tx *Tx) HasBlob(hash string) bool {
	b := tx.tx.Bucket(bucketBlobs)
	return b != nil && isHexHash(hash) && b.Get([]byte(hash)) != nil
}

// PutBlob stores data under its content address and commits.
func (db *DB) PutBlob(data []byte) (string, error) {
	var h string
	err := db.Update(func(tx *Tx) error {
		var err error
		h, err = tx.PutBlob(data)
		return err
	})
	return h, err
}

// GetBlob returns the blob with content address hash, verified.
func (db *DB) GetBlob(hash string) ([]byte, error) {
	var v []byte
	err := db.View(func(tx *Tx) error {
		var err error
		v, err = tx.GetBlob(hash)
		return err
	})
	return v, err
}

// HasBlob reports whether a blob with content address hash is stored.
func (db *DB) HasBlob(hash string) bool {
	var ok bool
	_ = db.View(func(tx *Tx) error { ok = tx.HasBlob(hash); return nil })
	return ok
}
