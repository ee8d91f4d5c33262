package zk

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/proofmesh/proofmesh/protocol/spec"
)

func defaultKeysT(t testing.TB) *KeySet {
	t.Helper()
	ks, err := DefaultKeys()
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// shippedItems makes proofs with the shipped keys once per test binary and
// circuit (proving is slow under -race and under fuzzing instrumentation):
// two for mimc.chain.v1, eight for mlp.infer.v1.
func shippedItems(circuit string) ([]BatchItem, error) {
	ks, err := DefaultKeys()
	if err != nil {
		return nil, err
	}
	p := NewProver(ks, 2)
	var items []BatchItem
	prove := func(in, o []byte, task string) error {
		b := Binding([]byte(task), []byte("executor"))
		proof, err := p.Prove(context.Background(), circuit, in, o, b)
		if err != nil {
			return fmt.Errorf("%s %s: %w", circuit, in, err)
		}
		items = append(items, BatchItem{Proof: proof, Input: in, Output: o, Binding: b})
		return nil
	}
	switch circuit {
	case spec.TypeMiMCChain:
		for i, x := range []uint64{42, 7} {
			var e fr.Element
			e.SetUint64(x)
			y := mimcChain(e)
			if err := prove([]byte(`{"x":"`+decimal(e)+`"}`), []byte(`{"y":"`+decimal(y)+`"}`), fmt.Sprintf("task %d", i)); err != nil {
				return nil, err
			}
		}
	case spec.TypeMLPInfer:
		for i := range 8 {
			var x [spec.MLPInputs]int64
			for j := range x {
				x[j] = int64((i*37+j*101)%256) - 128
			}
			scores, class := spec.MLPInfer(x)
			if err := prove(formatMLPInput(x), formatMLPOutput(scores, int64(class)), fmt.Sprintf("task %d", i)); err != nil {
				return nil, err
			}
		}
	}
	return items, nil
}

var shippedProofs = map[string]func() ([]BatchItem, error){
	spec.TypeMiMCChain: sync.OnceValues(func() ([]BatchItem, error) { return shippedItems(spec.TypeMiMCChain) }),
	spec.TypeMLPInfer:  sync.OnceValues(func() ([]BatchItem, error) { return shippedItems(spec.TypeMLPInfer) }),
}

func shipped(t testing.TB, circuit string) []BatchItem {
	t.Helper()
	items, err := shippedProofs[circuit]()
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func TestDefaultKeysMatchCircuits(t *testing.T) {
	ks := defaultKeysT(t)
	if again := defaultKeysT(t); again != ks {
		t.Error("DefaultKeys is not cached")
	}
	if got := ks.Circuits(); !slices.Equal(got, []string{spec.TypeMiMCChain, spec.TypeMLPInfer}) {
		t.Fatalf("circuits %v", got)
	}
	m := ks.Manifest()
	if m.Ceremony.Contributions < 2 {
		t.Errorf("shipped keys from a ceremony of %d contributions", m.Ceremony.Contributions)
	}
	for _, d := range builtinCircuits {
		ccs, err := d.compile()
		if err != nil {
			t.Fatal(err)
		}
		c := m.Circuits[d.id]
		if c.Constraints != ccs.GetNbConstraints() {
			t.Errorf("%s: keys for %d constraints, the circuit has %d: rerun the ceremony", d.id, c.Constraints, ccs.GetNbConstraints())
		}
		vk, err := os.ReadFile(filepath.Join("keys", d.id+".vk"))
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := ks.VerifyingKeyHash(d.id); h != sha256Hex(vk) {
			t.Errorf("%s: VerifyingKeyHash %s, file %s", d.id, h, sha256Hex(vk))
		}
		if h, _ := ks.ProvingKeyHash(d.id); h != c.ProvingKeySHA256 {
			t.Errorf("%s: ProvingKeyHash %s, manifest %s", d.id, h, c.ProvingKeySHA256)
		}
		if !ks.HasProvingKey(d.id) {
			t.Errorf("%s: no proving key shipped", d.id)
		}
		ck, _ := ks.circuit(d.id)
		for i, k := range ck.vk.G1.K {
			if k.IsInfinity() {
				t.Errorf("%s: verifying key term %d is the point at infinity", d.id, i)
			}
		}
	}
	if _, err := ks.VerifyingKeyHash("nope"); !errors.Is(err, ErrUnknownCircuit) {
		t.Errorf("unknown circuit: %v", err)
	}
	if _, err := ks.ProvingKeyBytes("nope"); !errors.Is(err, ErrUnknownCircuit) {
		t.Errorf("unknown circuit: %v", err)
	}
	if ks.HasProvingKey("nope") {
		t.Error("HasProvingKey(unknown)")
	}
}

// TestLoadKeysShipped loads the shipped directory from disk: the same
// hashes as the embedded copy.
func TestLoadKeysShipped(t *testing.T) {
	disk, err := LoadKeys("keys")
	if err != nil {
		t.Fatal(err)
	}
	emb := defaultKeysT(t)
	for _, id := range CircuitIDs() {
		a, _ := disk.VerifyingKeyHash(id)
		b, _ := emb.VerifyingKeyHash(id)
		if a != b {
			t.Errorf("%s: disk %s, embedded %s", id, a, b)
		}
	}
	if _, err := LoadKeys(t.TempDir()); err == nil {
		t.Error("empty directory accepted")
	}
}

func TestShippedKeysRoundTrip(t *testing.T) {
	ks := defaultKeysT(t)
	for _, id := range CircuitIDs() {
		items := shipped(t, id)
		for i, it := range items {
			if err := ks.Verify(id, it.Proof, it.Input, it.Output, it.Binding); err != nil {
				t.Errorf("%s item %d: %v", id, i, err)
			}
		}
		t.Run(id, func(t *testing.T) {
			proofRejections(t, ks, id, items[0], items[1].Input, items[1].Output)
		})
	}
}

func TestShippedProofForOtherCircuitRejected(t *testing.T) {
	ks := defaultKeysT(t)
	mimc := shipped(t, spec.TypeMiMCChain)[0]
	mlp := shipped(t, spec.TypeMLPInfer)[0]
	if err := ks.Verify(spec.TypeMLPInfer, mimc.Proof, mlp.Input, mlp.Output, mlp.Binding); !errors.Is(err, ErrProofInvalid) {
		t.Errorf("mimc proof as mlp: %v, want ErrProofInvalid", err)
	}
	if err := ks.Verify(spec.TypeMiMCChain, mlp.Proof, mimc.Input, mimc.Output, mimc.Binding); !errors.Is(err, ErrProofInvalid) {
		t.Errorf("mlp proof as mimc: %v, want ErrProofInvalid", err)
	}
	// The other circuit's statement does not even parse.
	if err := ks.Verify(spec.TypeMLPInfer, mimc.Proof, mimc.Input, mimc.Output, mimc.Binding); !errors.Is(err, ErrBadInput) {
		t.Errorf("mimc statement as mlp: %v, want ErrBadInput", err)
	}
}

func TestShippedProveChecksOutput(t *testing.T) {
	ks := defaultKeysT(t)
	p := NewProver(ks, 1)
	b := big.NewInt(1)
	x := [spec.MLPInputs]int64{1, 2, 3}
	scores, class := spec.MLPInfer(x)
	cases := map[string]struct {
		circuit string
		in, out []byte
		want    error
	}{
		"mimc wrong y":      {spec.TypeMiMCChain, []byte(`{"x":"1"}`), []byte(`{"y":"1"}`), ErrBadOutput},
		"mimc bad input":    {spec.TypeMiMCChain, []byte(`{"x":1}`), []byte(`{"y":"1"}`), ErrBadInput},
		"mlp wrong score":   {spec.TypeMLPInfer, formatMLPInput(x), formatMLPOutput([4]int64{scores[0] + 1, scores[1], scores[2], scores[3]}, int64(class)), ErrBadOutput},
		"mlp wrong class":   {spec.TypeMLPInfer, formatMLPInput(x), formatMLPOutput(scores, int64((class+1)%4)), ErrBadOutput},
		"mlp input range":   {spec.TypeMLPInfer, []byte(`{"x":[128,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}`), formatMLPOutput(scores, int64(class)), ErrBadInput},
		"unknown circuit":   {"nope", nil, nil, ErrUnknownCircuit},
		"mlp missing class": {spec.TypeMLPInfer, formatMLPInput(x), []byte(`{"scores":[1,2,3,4]}`), ErrBadOutput},
	}
	for name, c := range cases {
		if _, err := p.Prove(context.Background(), c.circuit, c.in, c.out, b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestShippedBatchVerifyFindsBadProof(t *testing.T) {
	ks := defaultKeysT(t)
	items := slices.Clone(shipped(t, spec.TypeMLPInfer))
	if bad, err := ks.BatchVerify(spec.TypeMLPInfer, items); err != nil || bad != nil {
		t.Fatalf("all good: %v %v", bad, err)
	}
	// item 5 claims item 6's binding: a replay for another task.
	items[5].Binding = items[6].Binding
	bad, err := ks.BatchVerify(spec.TypeMLPInfer, items)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bad, []int{5}) {
		t.Errorf("bad %v, want [5]", bad)
	}
	mimc := shipped(t, spec.TypeMiMCChain)
	mixed := []BatchItem{mimc[0], mimc[1], mimc[0]}
	mixed[2].Binding = mimc[1].Binding
	if bad, err := ks.BatchVerify(spec.TypeMiMCChain, mixed); err != nil || !slices.Equal(bad, []int{2}) {
		t.Errorf("mimc: bad %v, err %v, want [2]", bad, err)
	}
}

func TestPublicInputsShipped(t *testing.T) {
	it := shipped(t, spec.TypeMLPInfer)[0]
	pub, err := PublicInputs(spec.TypeMLPInfer, it.Input, it.Output, it.Binding)
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != spec.MLPInputs+spec.MLPOutputs+2 {
		t.Fatalf("%d public inputs", len(pub))
	}
	// x[0] of the first item is -128: its field representative is r-128.
	want := new(big.Int).Sub(fr.Modulus(), big.NewInt(128)).String()
	if pub[0] != want {
		t.Errorf("x[0] = %s, want %s", pub[0], want)
	}
	if _, err := PublicInputs("nope", nil, nil, big.NewInt(0)); !errors.Is(err, ErrUnknownCircuit) {
		t.Errorf("unknown circuit: %v", err)
	}
}

// TestKeySetConcurrentUse exercises a shared key set from many goroutines
// (run with -race): verification, batch verification, key queries and a
// prover with a bound of two.
func TestKeySetConcurrentUse(t *testing.T) {
	ks := defaultKeysT(t)
	items := shipped(t, spec.TypeMLPInfer)
	p := NewProver(ks, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 8 {
		wg.Go(func() {
			it := items[g%len(items)]
			if err := ks.Verify(spec.TypeMLPInfer, it.Proof, it.Input, it.Output, it.Binding); err != nil {
				errs <- err
			}
			if bad, err := ks.BatchVerify(spec.TypeMLPInfer, items); err != nil || bad != nil {
				errs <- fmt.Errorf("batch: %v %v", bad, err)
			}
			if !ks.HasProvingKey(spec.TypeMLPInfer) {
				errs <- errors.New("no proving key")
			}
			if _, err := p.Prove(context.Background(), spec.TypeMLPInfer, it.Input, it.Output, it.Binding); err != nil {
				errs <- err
			}
			_ = ks.Manifest()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
