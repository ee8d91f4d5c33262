package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// errFuzzRollback ends a fuzz transaction so that nothing it wrote stays.
var errFuzzRollback = errors.New("fuzz: roll back")

// FuzzDecodeStoredAPIKey writes arbitrary bytes as the stored record of an
// API key, as a damaged or hostile store file would hold them, and reads
// them back through GetAPIKey and ListAPIKeys. Each must either refuse the
// record with an error wrapping ErrCorrupt that names the bucket and the
// key, or return a key that keeps what PutAPIKey promises: stored under its
// own prefix, a valid prefix, a hex SHA-256 and one of the scopes read,
// submit or admin. Get and List agree, and an accepted key re-encodes to a
// record that decodes to the same key.
func FuzzDecodeStoredAPIKey(f *testing.F) {
	hash := strings.Repeat("ab", 32)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, k := range []APIKey{
		{Prefix: "pmk_abcd1234", Hash: hash, Scope: "submit", Created: at},
		{Prefix: "pmk_0000ffff", Hash: hash, Scope: "admin", Label: "ci \u2028 <x>", Created: at, Expires: at.Add(time.Hour)},
		{Prefix: "pmk_12345678", Hash: hash, Scope: "read", Created: at, Revoked: at.Add(time.Minute)},
	} {
		v, err := json.Marshal(k)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(k.Prefix, v)
	}
	f.Add("pmk_abcd1234", []byte(`{"prefix":"pmk_abcd1234","hash":"`+hash+`","scope":"submit","created":"2026-01-01T00:00:00Z"} `))
	f.Add("pmk_abcd1234", []byte(`{"prefix":"pmk_abcd1234","hash":"`+hash+`","scope":"submit","created":"2026-01-01T00:00:00Z"}{}`))
	f.Add("pmk_abcd1234", []byte(`{"prefix":"pmk_other000","hash":"`+hash+`","scope":"admin","created":"2026-01-01T00:00:00Z"}`))
	f.Add("pmk_abcd1234", []byte(`{"created":"10000-01-01T00:00:00Z"}`))

	db, _ := openT(f)
	f.Fuzz(func(t *testing.T, key string, val []byte) {
		if key == "" || len(key) > 32768 {
			return // bbolt refuses such keys: no store holds one
		}
		err := db.Update(func(tx *Tx) error {
			b, err := tx.bucket(bucketAPIKeys)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(key), val); err != nil {
				return err
			}
			k, ok := readBackAPIKey(t, tx, key, val)
			if !ok {
				return errFuzzRollback
			}
			checkAPIKeyPromises(t, key, k, val)
			again, err := json.Marshal(k)
			if err != nil {
				return errFuzzRollback // e.g. a time beyond year 9999: decodes, cannot be re-encoded; PutAPIKey never writes one
			}
			if err := b.Put([]byte(key), again); err != nil {
				return err
			}
			k2, ok := readBackAPIKey(t, tx, key, again)
			if !ok {
				t.Fatalf("re-encoded key does not decode\nstored: %q\nagain:  %q", val, again)
			}
			if again2, _ := json.Marshal(k2); !bytes.Equal(again, again2) {
				t.Fatalf("decode/encode not stable:\n%s\n%s", again, again2)
			}
			return errFuzzRollback
		})
		if !errors.Is(err, errFuzzRollback) {
			t.Fatalf("update: %v", err)
		}
	})
}

// readBackAPIKey decodes the record stored under key through both readers
// and checks that they agree and that a refusal is a clear ErrCorrupt.
func readBackAPIKey(t *testing.T, tx *Tx, key string, val []byte) (APIKey, bool) {
	t.Helper()
	ks, lerr := tx.ListAPIKeys()
	if lerr != nil {
		checkCorruptError(t, "ListAPIKeys", key, val, lerr)
	} else if len(ks) != 1 {
		t.Fatalf("ListAPIKeys: %d keys, the bucket holds one", len(ks))
	}
	if !validPrefix(key) {
		if lerr != nil {
			return APIKey{}, false
		}
		return ks[0], true // only List reaches it
	}
	k, gerr := tx.GetAPIKey(key)
	if gerr != nil {
		checkCorruptError(t, "GetAPIKey", key, val, gerr)
	}
	if (gerr == nil) != (lerr == nil) {
		t.Fatalf("GetAPIKey (%v) and ListAPIKeys (%v) disagree on %q", gerr, lerr, val)
	}
	if gerr != nil {
		return APIKey{}, false
	}
	g, _ := json.Marshal(k)
	l, _ := json.Marshal(ks[0])
	if !bytes.Equal(g, l) {
		t.Fatalf("GetAPIKey and ListAPIKeys decode %q differently:\n%s\n%s", val, g, l)
	}
	return k, true
}

func checkCorruptError(t *testing.T, who, key string, val []byte, err error) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s of %q: error does not wrap ErrCorrupt: %v", who, val, err)
	}
	if msg := err.Error(); !strings.Contains(msg, string(bucketAPIKeys)) || !strings.Contains(msg, fmt.Sprintf("%q", key)) {
		t.Fatalf("%s of %q: error does not name the bucket and the key: %v", who, val, err)
	}
}

// checkAPIKeyPromises fails on an accepted key that PutAPIKey could not have
// written or that the node could not have made.
func checkAPIKeyPromises(t *testing.T, key string, k APIKey, val []byte) {
	t.Helper()
	switch {
	case k.Prefix != key:
		t.Fatalf("record stored under %q accepted as key %q\nrecord: %q", key, k.Prefix, val)
	case !validPrefix(k.Prefix):
		t.Fatalf("accepted key has malformed prefix %q\nrecord: %q", k.Prefix, val)
	case !isHexHash(k.Hash):
		t.Fatalf("accepted key %q has malformed hash %q\nrecord: %q", k.Prefix, k.Hash, val)
	case k.Scope != "read" && k.Scope != "submit" && k.Scope != "admin":
		t.Fatalf("accepted key %q has scope %q, not read, submit or admin\nrecord: %q", k.Prefix, k.Scope, val)
	}
}
