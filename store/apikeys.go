package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// APIKey is a submitter's API key as the node keeps it: never the key,
// only its SHA-256, found by its public prefix.
type APIKey struct {
	Prefix  string    `json:"prefix"` // public part, shown in lists
	Hash    string    `json:"hash"`   // hex SHA-256 of the whole key
	Scope   string    `json:"scope"`  // read, submit or admin
	Label   string    `json:"label,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"` // zero: never
	Revoked time.Time `json:"revoked,omitzero"` // zero: not revoked
}

func validPrefix(p string) bool {
	if len(p) < 4 || len(p) > 32 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

// PutAPIKey stores a new key; ErrExists if the prefix is taken.
func (tx *Tx) PutAPIKey(k APIKey) error {
	if err := k.check(); err != nil {
		return err
	}
	b, err := tx.bucket(bucketAPIKeys)
	if err != nil {
		return err
	}
	if b.Get([]byte(k.Prefix)) != nil {
		return fmt.Errorf("api key %s: %w", k.Prefix, ErrExists)
	}
	v, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return b.Put([]byte(k.Prefix), v)
}

// GetAPIKey returns the key with a prefix; ErrNotFound if none.
func (tx *Tx) GetAPIKey(prefix string) (APIKey, error) {
	if !validPrefix(prefix) {
		return APIKey{}, fmt.Errorf("api key %q: %w", prefix, ErrNotFound)
	}
	b, err := tx.bucket(bucketAPIKeys)
	if err != nil {
		return APIKey{}, err
	}
	v := b.Get([]byte(prefix))
	if v == nil {
		return APIKey{}, fmt.Errorf("api key %s: %w", prefix, ErrNotFound)
	}
	return decodeAPIKey([]byte(prefix), v)
}

// decodeAPIKey reads the record stored under key, keeping PutAPIKey's
// promises: a key under its own prefix, a hex SHA-256, a scope the node
// knows. A damaged or edited store file otherwise handed the API a key of
// scope "root", or another key's record (found by a fuzz target).
func decodeAPIKey(key, v []byte) (APIKey, error) {
	var k APIKey
	if err := json.Unmarshal(v, &k); err != nil {
		return APIKey{}, corrupt(bucketAPIKeys, key, err)
	}
	if err := k.check(); err != nil {
		return APIKey{}, corrupt(bucketAPIKeys, key, err)
	}
	if k.Prefix != string(key) {
		return APIKey{}, corrupt(bucketAPIKeys, key, fmt.Errorf("the record is key %q's", k.Prefix))
	}
	return k, nil
}

// check is what every stored key holds to.
func (k APIKey) check() error {
	switch {
	case !validPrefix(k.Prefix):
		return fmt.Errorf("malformed prefix %q", k.Prefix)
	case !isHexHash(k.Hash):
		return fmt.Errorf("api key %s: malformed hash", k.Prefix)
	case k.Scope != "read" && k.Scope != "submit" && k.Scope != "admin":
		return fmt.Errorf("api key %s: scope %q is not read, submit or admin", k.Prefix, k.Scope)
	}
	return nil
}

// ListAPIKeys returns every key, by prefix.
func (tx *Tx) ListAPIKeys() ([]APIKey, error) {
	b, err := tx.bucket(bucketAPIKeys)
	if err != nil {
		return nil, err
	}
	out := []APIKey{}
	err = b.ForEach(func(key, v []byte) error {
		k, err := decodeAPIKey(key, v)
		if err != nil {
			return err
		}
		out = append(out, k)
		return nil
	})
	return out, err
}

// PutAPIKey stores a new key, committed before it returns.
func (db *DB) PutAPIKey(k APIKey) error {
	return db.Update(func(tx *Tx) error { return tx.PutAPIKey(k) })
}

// GetAPIKey returns one key.
func (db *DB) GetAPIKey(prefix string) (APIKey, error) {
	var k APIKey
	err := db.View(func(tx *Tx) error {
		var err error
		k, err = tx.GetAPIKey(prefix)
		return err
	})
	return k, err
}

// ListAPIKeys returns every key.
func (db *DB) ListAPIKeys() ([]APIKey, error) {
	var ks []APIKey
	err := db.View(func(tx *Tx) error {
		var err error
		ks, err = tx.ListAPIKeys()
		return err
	})
	return ks, err
}

// RevokeAPIKey marks a key revoked at the given time (idempotent: the first
// revocation time stays).
func (db *DB) RevokeAPIKey(prefix string, at time.Time) (APIKey, error) {
	var k APIKey
	err := db.Update(func(tx *Tx) error {
		var err error
		if k, err = tx.GetAPIKey(prefix); err != nil {
			return err
		}
		if !k.Revoked.IsZero() {
			return nil
		}
		k.Revoked = at
		v, err := json.Marshal(k)
		if err != nil {
			return err
		}
		b, err := tx.bucket(bucketAPIKeys)
		if err != nil {
			return err
		}
		return b.Put([]byte(prefix), v)
	})
	return k, err
}
