package zk

import (
	"context"
	"errors"
	"io/fs"
	"runtime"
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

// Attack on lazy keys: a proving key is served to any peer that asks for
// its hash (the blob protocol serves 16 streams at once, each held up to a
// minute by a peer that reads slowly). Read anew for each request, 16
// overlapping requests held 16 copies of the key (4 MiB here, tens of MiB
// on a real network's circuits): one peer could multiply what lazy keys
// saved. Overlapping requests now share one copy, and none is kept once
// no request holds it.
func TestProvingKeyServedOnceToOverlappingRequests(t *testing.T) {
	ks := freshEmbeddedKeys(t)
	const id = "mimc.chain.v1"
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	held := make([][]byte, 16)
	var size int
	for i := range held {
		b, err := ks.ProvingKeyBytes(id)
		if err != nil {
			t.Fatal(err)
		}
		held[i], size = b, len(b)
	}
	runtime.ReadMemStats(&after)
	// One read costs about 2.4 copies (the file and its hash check); other
	// goroutines of the test binary allocate meanwhile too. A copy per
	// request would be 16 or more.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(8*size) {
		t.Fatalf("16 overlapping requests for a %d-byte key allocated %d bytes (%.1f copies)", size, alloc, float64(alloc)/float64(size))
	}
	for _, b := range held[1:] {
		if &b[0] != &held[0][0] || len(b) != size {
			t.Fatal("overlapping requests got different copies")
		}
	}
	runtime.KeepAlive(held)
	clear(held)
	runtime.GC()
	runtime.GC()
	ck, _ := ks.circuit(id)
	ck.mu.Lock()
	kept := ck.served.Value() != nil
	ck.mu.Unlock()
	if kept || ks.ProvingKeyLoaded(id) {
		t.Fatal("the served key outlived its last request")
	}
	if b, err := ks.ProvingKeyBytes(id); err != nil || len(b) != size {
		t.Fatalf("served again: %d bytes, %v", len(b), err)
	}
}
