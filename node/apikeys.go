package node

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/store"
)

// API keys look like pmk_<8 hex>_<64 hex>: the first part is the public
// prefix under which the node keeps the key's SHA-256 (never the key).

func splitKey(key string) (prefix string, ok bool) {
	parts := strings.Split(key, "_")
	if len(parts) != 3 || parts[0] != "pmk" || len(parts[1]) != 8 || len(parts[2]) != 64 {
		return "", false
	}
	return parts[0] + "_" + parts[1], true
}

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// AuthenticateKey checks an API key: known prefix, hash equal in constant
// time, not expired, not revoked.
func (n *Node) AuthenticateKey(key string) (string, error) {
	prefix, ok := splitKey(key)
	if !ok {
		return "", fmt.Errorf("%w: not an API key (pmk_<8 hex>_<64 hex>)", api.ErrUnauthorized)
	}
	k, err := n.db.GetAPIKey(prefix)
	if err != nil {
		return "", fmt.Errorf("%w: API key %s is unknown", api.ErrUnauthorized, prefix)
	}
	want, _ := hex.DecodeString(k.Hash)
	got := sha256.Sum256([]byte(key))
	if subtle.ConstantTimeCompare(want, got[:]) != 1 {
		return "", fmt.Errorf("%w: API key %s does not match", api.ErrUnauthorized, prefix)
	}
	now := time.Now()
	if !k.Revoked.IsZero() {
		return "", fmt.Errorf("%w: API key %s was revoked at %s", api.ErrUnauthorized, prefix, k.Revoked.UTC().Format(time.RFC3339))
	}
	if !k.Expires.IsZero() && now.After(k.Expires) {
		return "", fmt.Errorf("%w: API key %s expired at %s", api.ErrUnauthorized, prefix, k.Expires.UTC().Format(time.RFC3339))
	}
	return k.Scope, nil
}

// CreateAPIKey makes a key; the key is returned once and stored hashed.
func (n *Node) CreateAPIKey(req api.APIKeyRequest) (api.APIKeyCreated, error) {
	switch req.Scope {
	case api.ScopeRead, api.ScopeSubmit, api.ScopeAdmin:
	default:
		return api.APIKeyCreated{}, fmt.Errorf("%w: scope %q: want read, submit or admin", api.ErrBadRequest, req.Scope)
	}
	if len(req.Label) > 64 {
		return api.APIKeyCreated{}, fmt.Errorf("%w: label longer than 64 characters", api.ErrBadRequest)
	}
	now := time.Now().UTC()
	k := store.APIKey{Scope: req.Scope, Label: req.Label, Created: now}
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			return api.APIKeyCreated{}, fmt.Errorf("%w: expires_in %q: want a positive duration such as 720h", api.ErrBadRequest, req.ExpiresIn)
		}
		k.Expires = now.Add(d)
	}
	for range 3 {
		b := make([]byte, 36)
		if _, err := rand.Read(b); err != nil {
			return api.APIKeyCreated{}, err
		}
		key := "pmk_" + hex.EncodeToString(b[:4]) + "_" + hex.EncodeToString(b[4:])
		k.Prefix, _ = splitKey(key)
		k.Hash = keyHash(key)
		err := n.db.PutAPIKey(k)
		if errors.Is(err, store.ErrExists) {
			continue // prefix collision: draw again
		}
		if err != nil {
			return api.APIKeyCreated{}, err
		}
		n.audit(store.AuditEntry{Kind: "apikey.created", Subject: k.Prefix, Detail: "scope " + k.Scope})
		return api.APIKeyCreated{Key: key, APIKeyView: keyView(k)}, nil
	}
	return api.APIKeyCreated{}, errors.New("could not draw an unused key prefix")
}

// APIKeys lists the keys (never the keys themselves).
func (n *Node) APIKeys() ([]api.APIKeyView, error) {
	ks, err := n.db.ListAPIKeys()
	if err != nil {
		return nil, err
	}
	out := make([]api.APIKeyView, 0, len(ks))
	for _, k := range ks {
		out = append(out, keyView(k))
	}
	return out, nil
}

// RevokeAPIKey revokes a key by prefix.
func (n *Node) RevokeAPIKey(prefix string) (api.APIKeyView, error) {
	k, err := n.db.RevokeAPIKey(prefix, time.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return api.APIKeyView{}, fmt.Errorf("API key %q: %w", prefix, api.ErrNotFound)
	}
	if err != nil {
		return api.APIKeyView{}, err
	}
	n.audit(store.AuditEntry{Kind: "apikey.revoked", Subject: prefix})
	return keyView(k), nil
}

func keyView(k store.APIKey) api.APIKeyView {
	v := api.APIKeyView{Prefix: k.Prefix, Scope: k.Scope, Label: k.Label, Created: k.Created}
	if !k.Expires.IsZero() {
		e := k.Expires
		v.Expires = &e
	}
	if !k.Revoked.IsZero() {
		r := k.Revoked
		v.Revoked = &r
	}
	return v
}
