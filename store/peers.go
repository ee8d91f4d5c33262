package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/proofmesh/proofmesh/protocol"
)

// maxKeyLen bounds ids used as keys (bbolt allows 32 KiB; ids are far
// shorter, so a longer one is a bug or an attack).
const maxKeyLen = 1024

// Peer is one row of the peer table as this node last saw it.
type Peer struct {
	ID        string              `json:"id"` // libp2p peer id
	FirstSeen time.Time           `json:"first_seen"`
	LastSeen  time.Time           `json:"last_seen"` // time of the last accepted heartbeat
	Status    protocol.PeerStatus `json:"status"`
	// DeletedAt is when a valid Leave made the peer a tombstone; zero
	// otherwise. PurgeDeleted removes old tombstones.
	DeletedAt   time.Time `json:"deleted_at,omitzero"`
	LeaveReason string    `json:"leave_reason,omitempty"`
	// Heartbeat is the last heartbeat as received (JSON).
	Heartbeat  json.RawMessage `json:"heartbeat,omitempty"`
	IntervalMS int64           `json:"interval_ms"` // the peer's announced heartbeat interval
	Seq        uint64          `json:"seq"`         // the last heartbeat's seq
	// Score: results of this peer that verified, and that did not.
	Verified int `json:"verified"`
	Invalid  int `json:"invalid"`
}

// Deleted reports whether the peer is a tombstone.
func (p *Peer) Deleted() bool { return !p.DeletedAt.IsZero() || p.Status == protocol.StatusDeleted }

func checkID(what, id string) error {
	if id == "" || len(id) > maxKeyLen {
		return fmt.Errorf("store: %s id of %d bytes (want 1..%d)", what, len(id), maxKeyLen)
	}
	return nil
}

func encodePeer(p *Peer) ([]byte, error) {
	if err := checkID("peer", p.ID); err != nil {
		return nil, err
	}
	if _, ok := protocol.ParseStatus(string(p.Status)); !ok {
		return nil, fmt.Errorf("store: peer %s: unknown status %q", p.ID, p.Status)
	}
	if len(p.Heartbeat) > 0 && !json.Valid(p.Heartbeat) {
		return nil, fmt.Errorf("store: peer %s: heartbeat is not JSON", p.ID)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("store: encode peer %s: %w", p.ID, err)
	}
	return b, nil
}

// decodePeer parses the stored value of key in the peers bucket.
func decodePeer(key, val []byte) (Peer, error) {
	var p Peer
	if err := json.Unmarshal(val, &p); err != nil {
		return Peer{}, corrupt(bucketPeers, key, err)
	}
	if p.ID != string(key) {
		return Peer{}, corrupt(bucketPeers, key, fmt.Errorf("holds peer %q", p.ID))
	}
	if _, ok := protocol.ParseStatus(string(p.Status)); !ok {
		return Peer{}, corrupt(bucketPeers, key, fmt.Errorf("unknown status %q", p.Status))
	}
	return p, nil
}

func corrupt(bucket, key []byte, err error) error {
	return fmt.Errorf("%w: bucket %s key %q: %v", ErrCorrupt, bucket, key, err)
}

// PutPeer stores p, replacing the row with the same ID.
func (tx *Tx) PutPeer(p Peer) error {
	b, err := tx.bucket(bucketPeers)
	if err != nil {
		return err
	}
	v, err := encodePeer(&p)
	if err != nil {
		return err
	}
	return b.Put([]byte(p.ID), v)
}

// GetPeer returns the row of id, tombstones included; ErrNotFound if none.
func (tx *Tx) GetPeer(id string) (Peer, error) {
	b, err := tx.bucket(bucketPeers)
	if err != nil {
		return Peer{}, err
	}
	v := b.Get([]byte(id))
	if v == nil {
		return Peer{}, fmt.Errorf("peer %s: %w", id, ErrNotFound)
	}
	return decodePeer([]byte(id), v)
}

// ListPeers returns every row, tombstones included, ordered by id.
func (tx *Tx) ListPeers() ([]Peer, error) {
	b, err := tx.bucket(bucketPeers)
	if err != nil {
		return nil, err
	}
	out := []Peer{} // not nil: an empty table encodes as []
	err = b.ForEach(func(k, v []byte) error {
		p, err := decodePeer(k, v)
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// PurgeDeleted removes the tombstones whose DeletedAt is before before and
// returns how many it removed.
func (tx *Tx) PurgeDeleted(before time.Time) (int, error) {
	b, err := tx.bucket(bucketPeers)
	if err != nil {
		return 0, err
	}
	var doomed [][]byte
	err = b.ForEach(func(k, v []byte) error {
		p, err := decodePeer(k, v)
		if err != nil {
			return err
		}
		if !p.DeletedAt.IsZero() && p.DeletedAt.Before(before) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("purge peer %s: %w", k, err)
		}
	}
	return len(doomed), nil
}

// PutPeer stores p, replacing the row with the same ID, and commits.
func (db *DB) PutPeer(p Peer) error {
	return db.Update(func(tx *Tx) error { return tx.PutPeer(p) })
}

// PutPeers stores every peer in one transaction (one fsync): the batch flush
// of the live peer table. Either all rows are stored or none.
func (db *DB) PutPeers(ps []Peer) error {
	return db.Update(func(tx *Tx) error {
		for i := range ps {
			if err := tx.PutPeer(ps[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetPeer returns the row of id, tombstones included (the API answers 404
// for them); ErrNotFound if none.
func (db *DB) GetPeer(id string) (Peer, error) {
	var p Peer
	err := db.View(func(tx *Tx) error {
		var err error
		p, err = tx.GetPeer(id)
		return err
	})
	return p, err
}

// ListPeers returns every row, tombstones included, ordered by id.
func (db *DB) ListPeers() ([]Peer, error) {
	var ps []Peer
	err := db.View(func(tx *Tx) error {
		var err error
		ps, err = tx.ListPeers()
		return err
	})
	return ps, err
}

// PurgeDeleted removes the tombstones whose DeletedAt is before before, in
// one transaction, and returns how many it removed.
func (db *DB) PurgeDeleted(before time.Time) (int, error) {
	var n int
	err := db.Update(func(tx *Tx) error {
		var err error
		n, err = tx.PurgeDeleted(before)
		return err
	})
	return n, err
}

// SyncPeers makes the stored table the given rows, in one transaction:
// each row is stored and every stored row not among them (evicted or
// purged from the bounded live table) is deleted, so the store holds no
// more peers than the live table does.
func (db *DB) SyncPeers(ps []Peer) error {
	keep := make(map[string]bool, len(ps))
	for _, p := range ps {
		keep[p.ID] = true
	}
	return db.Update(func(tx *Tx) error {
		b, err := tx.bucket(bucketPeers)
		if err != nil {
			return err
		}
		if _, err := deleteWhere(b, func(k, _ []byte) (bool, error) { return !keep[string(k)], nil }); err != nil {
			return err
		}
		for i := range ps {
			if err := tx.PutPeer(ps[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// UpdatePeers applies a write-behind batch of the live peer table in one
// transaction (one fsync): it deletes the rows of del, then stores every
// row of put. Either all of it is applied or none.
func (db *DB) UpdatePeers(put []Peer, del []string) error {
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	return db.Update(func(tx *Tx) error {
		b, err := tx.bucket(bucketPeers)
		if err != nil {
			return err
		}
		for _, id := range del {
			if err := b.Delete([]byte(id)); err != nil {
				return fmt.Errorf("delete peer %s: %w", id, err)
			}
		}
		for i := range put {
			if err := tx.PutPeer(put[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// PurgeOffline removes the rows, tombstones excluded, last seen before
// before (offline peers past their retention), and returns how many.
func (db *DB) PurgeOffline(before time.Time) (int, error) {
	var n int
	err := db.Update(func(tx *Tx) error {
		b, err := tx.bucket(bucketPeers)
		if err != nil {
			return err
		}
		n, err = deleteWhere(b, func(k, v []byte) (bool, error) {
			p, err := decodePeer(k, v)
			return err == nil && !p.Deleted() && p.LastSeen.Before(before), err
		})
		if err != nil {
			return err
		}
		return nil
	})
	return n, err
}

// deleteWhere deletes the rows of a peers bucket that doomed picks (keys
// are collected first: bbolt forbids deleting during ForEach) and returns
// how many.
func deleteWhere(b *bolt.Bucket, doomed func(k, v []byte) (bool, error)) (int, error) {
	var keys [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		del, err := doomed(k, v)
		if del {
			keys = append(keys, bytes.Clone(k))
		}
		return err
	}); err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("delete peer %s: %w", k, err)
		}
	}
	return len(keys), nil
}
