package zk

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/proofmesh/proofmesh/protocol/spec"
)

// freshEmbeddedKeys loads the embedded keys anew (DefaultKeys is shared by
// the package's tests, some of which prove).
func freshEmbeddedKeys(t *testing.T) *KeySet {
	t.Helper()
	sub, err := fs.Sub(embeddedKeys, "keys")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := loadKeys(sub, builtinCircuits, false)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// TestProvingKeyLoadedAtFirstProof: a node that never proves never holds a
// proving key in memory; the first proof of a circuit loads that circuit's
// key and no other; serving a key to a peer does not keep it.
func TestProvingKeyLoadedAtFirstProof(t *testing.T) {
	ks := freshEmbeddedKeys(t)
	for _, id := range ks.Circuits() {
		if !ks.HasProvingKey(id) {
			t.Errorf("%s: HasProvingKey false for a shipped key", id)
		}
		if ks.ProvingKeyLoaded(id) {
			t.Errorf("%s: proving key loaded at start", id)
		}
		b, err := ks.ProvingKeyBytes(id)
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := ks.ProvingKeyHash(id); sha256Hex(b) != h {
			t.Errorf("%s: served bytes of sha256 %s, manifest %s", id, sha256Hex(b), h)
		}
		if ks.ProvingKeyLoaded(id) {
			t.Errorf("%s: proving key kept after serving it", id)
		}
	}
	var x [spec.MLPInputs]int64
	scores, class := spec.MLPInfer(x)
	p := NewProver(ks, 1)
	if _, err := p.Prove(context.Background(), spec.TypeMLPInfer, formatMLPInput(x), formatMLPOutput(scores, int64(class)), Binding([]byte("t"), []byte("e"))); err != nil {
		t.Fatal(err)
	}
	if !ks.ProvingKeyLoaded(spec.TypeMLPInfer) {
		t.Error("mlp.infer.v1: proving key not kept after a proof")
	}
	if ks.ProvingKeyLoaded(spec.TypeMiMCChain) {
		t.Error("mimc.chain.v1: proving key loaded by another circuit's proof")
	}
}

// TestLazyProvingKeyHashCheckedAtFirstUse: a key set whose proving-key
// hashes were not checked at load (the embedded keys) still refuses a
// tampered key when it first reads it, for a proof or for a peer.
func TestLazyProvingKeyHashCheckedAtFirstUse(t *testing.T) {
	sub, err := fs.Sub(embeddedKeys, "keys")
	if err != nil {
		t.Fatal(err)
	}
	mfs := fstest.MapFS{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		mfs[p] = &fstest.MapFile{Data: b}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pk := mfs[spec.TypeMLPInfer+".pk"].Data
	pk[len(pk)/2] ^= 1
	if _, err := loadKeys(mfs, builtinCircuits, true); !errors.Is(err, ErrKeyHashMismatch) {
		t.Fatalf("checked at load: %v, want ErrKeyHashMismatch", err)
	}
	ks, err := loadKeys(mfs, builtinCircuits, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.ProvingKeyBytes(spec.TypeMLPInfer); !errors.Is(err, ErrKeyHashMismatch) {
		t.Errorf("served: %v, want ErrKeyHashMismatch", err)
	}
	var x [spec.MLPInputs]int64
	scores, class := spec.MLPInfer(x)
	_, err = NewProver(ks, 1).Prove(context.Background(), spec.TypeMLPInfer, formatMLPInput(x), formatMLPOutput(scores, int64(class)), Binding([]byte("t"), []byte("e")))
	if !errors.Is(err, ErrKeyHashMismatch) {
		t.Errorf("proved: %v, want ErrKeyHashMismatch", err)
	}
}
