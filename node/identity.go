package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/node/api"
)

// Files of a data dir.
const (
	IdentityFile = "identity.key"
	TokenFile    = "api.token"
	StoreFile    = "proofmesh.db"
)

// ErrBadKeyFile is wrapped by every refusal of an identity or token file.
var ErrBadKeyFile = errors.New("unusable identity or token file")

// InitResult says what Init found or made.
type InitResult struct {
	PeerID       peer.ID
	KeyCreated   bool
	TokenCreated bool
}

// Init prepares a data dir: the directory (0700), identity.key (a new
// Ed25519 key, 0600) and api.token (0600). Files that exist are checked,
// never replaced.
func Init(dataDir string) (InitResult, error) {
	var res InitResult
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return res, fmt.Errorf("data dir: %w", err)
	}
	key, created, err := loadOrCreateKey(filepath.Join(dataDir, IdentityFile))
	if err != nil {
		return res, err
	}
	res.KeyCreated = created
	if res.PeerID, err = peer.IDFromPrivateKey(key); err != nil {
		return res, err
	}
	_, res.TokenCreated, err = loadOrCreateToken(filepath.Join(dataDir, TokenFile))
	return res, err
}

// LoadIdentity reads the node's key. A key file that is unreadable,
// corrupt, not Ed25519 or readable by group or others is refused with an
// error that names the file, the reason and the fix.
func LoadIdentity(dataDir string) (crypto.PrivKey, error) {
	return loadKey(filepath.Join(dataDir, IdentityFile))
}

func checkPrivate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadKeyFile, path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrBadKeyFile, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s is readable by group or others (mode %04o); run: chmod 600 %s", ErrBadKeyFile, path, perm, path)
	}
	return nil
}

func loadKey(path string) (crypto.PrivKey, error) {
	if err := checkPrivate(path); err != nil {
		return nil, err
	}
	data, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is corrupt (%v); restore it from a backup, or move it away to create a new identity", ErrBadKeyFile, path, err)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: %s holds a %s key; proofmesh identities are Ed25519", ErrBadKeyFile, path, key.Type())
	}
	return key, nil
}

func loadOrCreateKey(path string) (crypto.PrivKey, bool, error) {
	if _, err := os.Lstat(path); err == nil {
		k, err := loadKey(path)
		return k, false, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("%w: %s: %v", ErrBadKeyFile, path, err)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate identity: %w", err)
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	if err := writeNew(path, data); err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// writeNew creates path with mode 0600; it never overwrites.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// LoadToken reads the API token of a data dir.
func LoadToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, TokenFile)
	if err := checkPrivate(path); err != nil {
		return "", err
	}
	data, err := readSmallFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < 32 {
		return "", fmt.Errorf("%w: %s holds a token of %d characters; at least 32 are required", ErrBadKeyFile, path, len(tok))
	}
	// A token travels in an Authorization header: a byte that cannot
	// (a line break inside it, a control character, non-ASCII) would make
	// a token no client can send, with nothing said at start.
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return "", fmt.Errorf("%w: %s: the token's byte %d is %q; a token is printable ASCII without spaces", ErrBadKeyFile, path, i, c)
		}
	}
	return tok, nil
}

// maxSecretFile bounds what the identity and token files are read up to:
// each holds well under a KiB.
const maxSecretFile = 64 << 10

// readSmallFile reads a secret file of at most maxSecretFile bytes.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKeyFile, path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKeyFile, path, err)
	}
	if len(data) > maxSecretFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes; it is not an identity or token file", ErrBadKeyFile, path, maxSecretFile)
	}
	return data, nil
}

func loadOrCreateToken(path string) (string, bool, error) {
	if _, err := os.Lstat(path); err == nil {
		tok, err := LoadToken(filepath.Dir(path))
		return tok, false, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	tok := hex.EncodeToString(b)
	if err := writeNew(path, []byte(tok+"\n")); err != nil {
		return "", false, err
	}
	return tok, true, nil
}

// TokenFingerprint is how a token appears in logs and output: the first 8
// hex characters of its SHA-256, never the token (api.Fingerprint).
func TokenFingerprint(tok string) string { return api.Fingerprint(tok) }
