package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/protocol"
)

// A file written by schema 1 (before API keys) opens under schema 2 with
// its data and an empty key table.
func TestSchema1FileMigratesToAPIKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proofmesh.db")
	db, err := open(path, Options{NoSync: true}, migrations[:1])
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutPeer(Peer{ID: "p", Status: protocol.StatusOnline}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(); v != 2 {
		t.Fatalf("schema %d", v)
	}
	if ks, err := db.ListAPIKeys(); err != nil || len(ks) != 0 {
		t.Fatalf("keys %v %v", ks, err)
	}
	if _, err := db.GetPeer("p"); err != nil {
		t.Fatal(err)
	}
}

func TestAPIKeys(t *testing.T) {
	db, _ := openT(t)
	hash := strings.Repeat("ab", 32)
	k := APIKey{Prefix: "pmk_abcd1234", Hash: hash, Scope: "submit", Created: time.Now()}
	if err := db.PutAPIKey(k); err != nil {
		t.Fatal(err)
	}
	if err := db.PutAPIKey(k); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate prefix: %v", err)
	}
	for _, bad := range []string{"../x", "a/b", "ab\x00cd", ""} {
		if err := db.PutAPIKey(APIKey{Prefix: bad, Hash: hash}); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
		if _, err := db.GetAPIKey(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("get %q: %v", bad, err)
		}
	}
	at := time.Now()
	r, err := db.RevokeAPIKey(k.Prefix, at)
	if err != nil || r.Revoked.IsZero() {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	again, _ := db.RevokeAPIKey(k.Prefix, at.Add(time.Hour))
	if !again.Revoked.Equal(r.Revoked) {
		t.Fatal("second revocation moved the time")
	}
	got, err := db.GetAPIKey(k.Prefix)
	if err != nil || got.Hash != hash || got.Revoked.IsZero() {
		t.Fatalf("get: %+v %v", got, err)
	}
}
