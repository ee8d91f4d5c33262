package zk

import (
	"embed"
	"fmt"
	"io/fs"
	"sync"
)

// embeddedKeys are the keys of the built-in default network: one ceremony
// (three phase-1 and three phase-2 contributions, each verified) made them
// with
//
//	go run ./zk/cmd/ceremony -out zk/keys -contributions 3
//
// Its manifest pins every file's hash; the built-in network configuration
// pins the verifying-key hashes.
//
//go:embed keys/manifest.json keys/*.vk keys/*.pk
var embeddedKeys embed.FS

var defaultKeys = sync.OnceValues(func() (*KeySet, error) {
	sub, err := fs.Sub(embeddedKeys, "keys")
	if err != nil {
		return nil, fmt.Errorf("embedded keys: %w", err)
	}
	ks, err := loadKeys(sub, builtinCircuits, false)
	if err != nil {
		return nil, fmt.Errorf("embedded keys: %w", err)
	}
	return ks, nil
})

// DefaultKeys returns the keys of the built-in default network, embedded in
// the binary from zk/keys. The verifying keys are decoded with subgroup
// checks on the first call; a proving key is read from the binary, its
// hash checked and decoded at the first proof of its circuit (a node that
// never proves never copies one onto the heap). The result is cached, and
// every call returns the same KeySet.
func DefaultKeys() (*KeySet, error) { return defaultKeys() }
