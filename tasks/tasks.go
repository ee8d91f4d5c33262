// Package tasks owns the built-in WASM task modules: the sources of the
// guests (tasks/mimc, tasks/mlp, built with GOOS=wasip1 GOARCH=wasm by
// tasks/build.sh), the committed modules they make, and the lookup of a
// module and its content address by task type.
//
// The modules are embedded in the binary, so every node runs exactly the
// bytes whose SHA-256 the task-type registry pins. A test rebuilds them from
// source and checks that they are the committed bytes.
package tasks

import (
	"crypto/sha256"
	_ "embed" // the committed modules
	"encoding/hex"
	"slices"
	"sync"

	"github.com/proofmesh/proofmesh/protocol/spec"
)

//go:embed mimc.wasm
var mimcWasm []byte

//go:embed mlp.wasm
var mlpWasm []byte

// modules maps each built-in task type to its module bytes.
func modules() map[string][]byte {
	return map[string][]byte{
		spec.TypeMiMCChain: mimcWasm,
		spec.TypeMLPInfer:  mlpWasm,
	}
}

// TypeIDs returns the task types with a built-in module, sorted.
func TypeIDs() []string {
	ids := make([]string, 0, 2)
	for id := range modules() {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Module returns the WASM module of a built-in task type. The bytes are
// shared: callers must not modify them (appending is safe, the slice is
// clipped).
func Module(typeID string) ([]byte, bool) {
	m, ok := modules()[typeID]
	if !ok {
		return nil, false
	}
	return slices.Clip(m), true
}

var hashes = sync.OnceValue(func() map[string]string {
	h := make(map[string]string)
	for id, m := range modules() {
		sum := sha256.Sum256(m)
		h[id] = hex.EncodeToString(sum[:])
	}
	return h
})

// ModuleHash returns the lower-case hex SHA-256 of a built-in task type's
// module (protocol.HashHex of Module's bytes), or "" for a type without a
// built-in module.
func ModuleHash(typeID string) string {
	return hashes()[typeID]
}
