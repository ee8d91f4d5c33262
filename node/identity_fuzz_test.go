package node

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// FuzzLoadIdentity writes arbitrary bytes as a data dir's identity file
// and loads it: an accepted file holds an Ed25519 key that marshals back
// to a file that loads to the same key; a refused one is refused with
// ErrBadKeyFile, naming the file.
func FuzzLoadIdentity(f *testing.F) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	good, _ := crypto.MarshalPrivateKey(key)
	f.Add(good)
	ec, _, _ := crypto.GenerateECDSAKeyPair(rand.Reader)
	other, _ := crypto.MarshalPrivateKey(ec)
	f.Add(other)
	f.Add([]byte{})
	f.Add(good[:len(good)-1])
	dir := f.TempDir()
	path := filepath.Join(dir, IdentityFile)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadIdentity(dir)
		if err != nil {
			if !errors.Is(err, ErrBadKeyFile) || !strings.Contains(err.Error(), path) {
				t.Fatalf("refusal does not wrap ErrBadKeyFile naming %s: %v", path, err)
			}
			return
		}
		if k.Type() != crypto.Ed25519 {
			t.Fatalf("%s key accepted", k.Type())
		}
		again, err := crypto.MarshalPrivateKey(k)
		if err != nil {
			t.Fatalf("accepted key does not marshal: %v", err)
		}
		k2, err := crypto.UnmarshalPrivateKey(again)
		if err != nil || !k2.Equals(k) {
			t.Fatalf("accepted key does not round-trip: %v", err)
		}
	})
}

// FuzzLoadToken writes arbitrary bytes as a data dir's API token file and
// loads it: an accepted token is at least 32 characters with no leading or
// trailing space, and can be sent in an Authorization header (no control
// character); a refused one wraps ErrBadKeyFile.
func FuzzLoadToken(f *testing.F) {
	f.Add([]byte(strings.Repeat("ab", 32) + "\n"))
	f.Add([]byte("short\n"))
	f.Add([]byte(" " + strings.Repeat("a", 40) + "\r\n"))
	dir := f.TempDir()
	path := filepath.Join(dir, TokenFile)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		tok, err := LoadToken(dir)
		if err != nil {
			if !errors.Is(err, ErrBadKeyFile) {
				t.Fatalf("refusal does not wrap ErrBadKeyFile: %v", err)
			}
			return
		}
		if len(tok) < 32 || strings.TrimSpace(tok) != tok {
			t.Fatalf("token %q accepted", tok)
		}
		for _, c := range []byte(tok) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("token %q accepted: control character %#x cannot travel in an Authorization header", tok, c)
			}
		}
	})
}
