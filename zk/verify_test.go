package zk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	curve "github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fp"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
)

// cubicItems proves n statements of the test circuit, each with its own x
// and binding.
func cubicItems(t testing.TB, ks *KeySet, n int) []BatchItem {
	t.Helper()
	items := make([]BatchItem, n)
	p := NewProver(ks, 2)
	for i := range items {
		var x fr.Element
		x.SetUint64(uint64(1000 + i))
		y := cubic(x)
		in := []byte(`{"x":"` + decimal(x) + `"}`)
		out := []byte(`{"y":"` + decimal(y) + `"}`)
		b := Binding([]byte(fmt.Sprintf("task %d", i)), []byte("executor"))
		proof, err := p.Prove(context.Background(), cubicDef.id, in, out, b)
		if err != nil {
			t.Fatal(err)
		}
		items[i] = BatchItem{Proof: proof, Input: in, Output: out, Binding: b}
	}
	return items
}

// onCurveNotInSubgroup returns a point of the BN254 G2 twist outside the
// prime-order subgroup.
func onCurveNotInSubgroup(t testing.TB) curve.G2Affine {
	t.Helper()
	var b, three curve.E2
	b.A0.SetUint64(9)
	b.A1.SetUint64(1)
	b.Inverse(&b)
	three.A0.SetUint64(3)
	b.Mul(&b, &three)
	for i := uint64(1); i < 1000; i++ {
		var p curve.G2Affine
		p.X.A0.SetUint64(i)
		p.X.A1.SetOne()
		var rhs curve.E2
		rhs.Square(&p.X).Mul(&rhs, &p.X).Add(&rhs, &b)
		if rhs.Legendre() != 1 {
			continue
		}
		p.Y.Sqrt(&rhs)
		if p.IsOnCurve() && !p.IsInSubGroup() {
			return p
		}
	}
	t.Fatal("no point found")
	return curve.G2Affine{}
}

// notOnCurveG1 returns 32 bytes of a compressed G1 encoding whose x has no
// point on the curve.
func notOnCurveG1(t testing.TB) []byte {
	t.Helper()
	for i := uint64(2); i < 1000; i++ {
		var x, rhs, three fp.Element
		x.SetUint64(i)
		three.SetUint64(3)
		rhs.Square(&x).Mul(&rhs, &x).Add(&rhs, &three)
		if rhs.Legendre() == -1 {
			b := x.Bytes()
			b[0] |= 0b10 << 6 // compressed, smallest y
			return b[:]
		}
	}
	t.Fatal("no x found")
	return nil
}

// proofRejections runs the checks every circuit's keys must pass: tampered
// and malformed proofs and other statements are rejected with the right
// sentinel.
func proofRejections(t *testing.T, ks *KeySet, circuit string, it BatchItem, otherIn, otherOut []byte) {
	t.Helper()
	if err := ks.Verify(circuit, it.Proof, it.Input, it.Output, it.Binding); err != nil {
		t.Fatalf("honest proof: %v", err)
	}
	if len(it.Proof) != ProofSize {
		t.Errorf("proof of %d bytes, want %d", len(it.Proof), ProofSize)
	}
	type tc struct {
		proof         []byte
		in, out       []byte
		setBinding    bool
		binding       *big.Int
		want          error
		wantSomeError bool
	}
	flipped := func(i int) []byte { b := bytes.Clone(it.Proof); b[i] ^= 0x01; return b }
	subgroup := bytes.Clone(it.Proof)
	g2 := onCurveNotInSubgroup(t)
	g2b := g2.Bytes()
	copy(subgroup[32:96], g2b[:])
	offCurve := bytes.Clone(it.Proof)
	copy(offCurve[:32], notOnCurveG1(t))
	raw := new(bytes.Buffer)
	if p, err := decodeProof(it.Proof); err != nil {
		t.Fatal(err)
	} else if _, err := p.WriteRawTo(raw); err != nil {
		t.Fatal(err)
	}
	cases := map[string]tc{
		"another task's binding":     {setBinding: true, binding: Binding([]byte("another task"), []byte("executor")), want: ErrProofInvalid},
		"another executor's binding": {setBinding: true, binding: Binding([]byte("task 0"), []byte("another executor")), want: ErrProofInvalid},
		"binding + r":                {setBinding: true, binding: new(big.Int).Add(it.Binding, fr.Modulus()), want: ErrBadInput},
		"nil binding":                {setBinding: true, binding: nil, want: ErrBadInput},
		"another statement":          {in: otherIn, out: otherOut, want: ErrProofInvalid},
		"output not JSON":            {out: []byte(`{"y":`), want: ErrBadOutput},
		"input not JSON":             {in: []byte(`[]`), want: ErrBadInput},
		"empty proof":                {proof: []byte{}, want: ErrProofEncoding},
		"truncated proof":            {proof: it.Proof[:ProofSize-1], want: ErrProofEncoding},
		"trailing byte":              {proof: append(bytes.Clone(it.Proof), 0), want: ErrProofEncoding},
		"uncompressed encoding":      {proof: raw.Bytes(), want: ErrProofEncoding},
		"B not in the subgroup":      {proof: subgroup, want: ErrProofEncoding},
		"A not on the curve":         {proof: offCurve, want: ErrProofEncoding},
		"commitment count":           {proof: flipped(commitmentsOffset + 3), want: ErrProofEncoding},
		"commitment proof":           {proof: flipped(ProofSize - 1), want: ErrProofEncoding},
	}
	for i := range ProofSize {
		cases[fmt.Sprintf("byte %d flipped", i)] = tc{proof: flipped(i), wantSomeError: true}
	}
	for name, c := range cases {
		proof, in, out, b := it.Proof, it.Input, it.Output, it.Binding
		if c.proof != nil {
			proof = c.proof
		}
		if c.in != nil {
			in = c.in
		}
		if c.out != nil {
			out = c.out
		}
		if c.setBinding {
			b = c.binding
		}
		err := ks.Verify(circuit, proof, in, out, b)
		switch {
		case c.wantSomeError && err == nil:
			t.Errorf("%s: accepted", name)
		case c.wantSomeError && !errors.Is(err, ErrProofEncoding) && !errors.Is(err, ErrProofInvalid):
			t.Errorf("%s: %v, want ErrProofEncoding or ErrProofInvalid", name, err)
		case !c.wantSomeError && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if err := ks.Verify("no.such.circuit", it.Proof, it.Input, it.Output, it.Binding); !errors.Is(err, ErrUnknownCircuit) {
		t.Errorf("unknown circuit: %v", err)
	}
}

func TestVerifyRejections(t *testing.T) {
	ks, _ := testKeys(t)
	items := cubicItems(t, ks, 2)
	proofRejections(t, ks, cubicDef.id, items[0], items[1].Input, items[1].Output)
}

func TestBatchVerifyAgreesWithVerify(t *testing.T) {
	ks, _ := testKeys(t)
	good := cubicItems(t, ks, 24)
	if bad, err := ks.BatchVerify(cubicDef.id, good); err != nil || bad != nil {
		t.Fatalf("all good: bad %v, err %v", bad, err)
	}
	if bad, err := ks.BatchVerify(cubicDef.id, nil); err != nil || bad != nil {
		t.Fatalf("empty: bad %v, err %v", bad, err)
	}
	// Ways to make an item bad; all but the last decode.
	corrupt := []func(it *BatchItem, other BatchItem){
		func(it *BatchItem, other BatchItem) { it.Binding = other.Binding },
		func(it *BatchItem, other BatchItem) { it.Proof = other.Proof },
		func(it *BatchItem, other BatchItem) { it.Input, it.Output = other.Input, other.Output },
		func(it *BatchItem, _ BatchItem) { it.Proof = bytes.Clone(it.Proof); it.Proof[5] ^= 1 },
		func(it *BatchItem, _ BatchItem) { it.Output = []byte("{}") },
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 8, 24} {
		for _, nbBad := range []int{0, 1, 2, n / 2, n} {
			if nbBad > n {
				continue
			}
			items := slices.Clone(good[:n])
			for _, i := range rng.Perm(n)[:nbBad] {
				corrupt[rng.IntN(len(corrupt))](&items[i], good[(i+1)%len(good)])
			}
			var want []int
			for i, it := range items {
				if ks.Verify(cubicDef.id, it.Proof, it.Input, it.Output, it.Binding) != nil {
					want = append(want, i)
				}
			}
			got, err := ks.BatchVerify(cubicDef.id, items)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("n=%d, %d corrupted: batch says %v, one by one %v", n, nbBad, got, want)
			}
		}
	}
	if _, err := ks.BatchVerify("no.such.circuit", good); !errors.Is(err, ErrUnknownCircuit) {
		t.Errorf("unknown circuit: %v", err)
	}
}

// TestBatchVerifyRejectsCancellingPair: two invalid proofs whose errors
// cancel in an unweighted product fail one by one; the random weights must
// catch them in a batch too.
func TestBatchVerifyRejectsCancellingPair(t *testing.T) {
	ks, _ := testKeys(t)
	items := cubicItems(t, ks, 2)
	p0, err := decodeProof(items[0].Proof)
	if err != nil {
		t.Fatal(err)
	}
	// x·A and (2-x)·A with the same B and C: each is invalid, but an
	// unweighted product of the two equations would hold, since
	// e(xA, B)·e((2-x)A, B) = e(A, B)².
	var x, two, twoMinusX fr.Element
	x.SetUint64(7)
	two.SetUint64(2)
	twoMinusX.Sub(&two, &x)
	var xb, yb big.Int
	a2, ah := *p0, *p0
	a2.Ar.ScalarMultiplication(&p0.Ar, x.BigInt(&xb))
	ah.Ar.ScalarMultiplication(&p0.Ar, twoMinusX.BigInt(&yb))
	e0, _ := encodeProof(&a2)
	e1, _ := encodeProof(&ah)
	pair := []BatchItem{items[0], items[0]}
	pair[0].Proof, pair[1].Proof = e0, e1
	for i, it := range pair {
		if ks.Verify(cubicDef.id, it.Proof, it.Input, it.Output, it.Binding) == nil {
			t.Fatalf("item %d verifies alone", i)
		}
	}
	got, err := ks.BatchVerify(cubicDef.id, pair)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{0, 1}) {
		t.Errorf("bad %v, want [0 1]", got)
	}
}

func TestProverHonoursContext(t *testing.T) {
	ks, _ := testKeys(t)
	p := NewProver(ks, 1)
	in, out := cubicDef.sample()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Prove(ctx, cubicDef.id, in, out, big.NewInt(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	// A full prover: a waiting call gives up when its context ends.
	p.sem <- struct{}{}
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Prove(ctx, cubicDef.id, in, out, big.NewInt(1))
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("waiting prover: %v", err)
	}
	<-p.sem
	// Concurrent proofs on a bounded prover all succeed.
	p = NewProver(ks, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			_, err := p.Prove(context.Background(), cubicDef.id, in, out, big.NewInt(1))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
