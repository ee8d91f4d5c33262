package zk

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"runtime"
	"sync"

	"github.com/consensys/gnark-crypto/ecc"
	curve "github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	groth16bn254 "github.com/consensys/gnark/backend/groth16/bn254"
)

// BatchItem is one proof to check in BatchVerify, with the statement it
// claims: the task's input and output JSON and the binding.
type BatchItem struct {
	Proof, Input, Output []byte
	Binding              *big.Int
}

// batchKey is what batch verification needs from a verifying key:
// e(α, β), the Miller-loop lines of the fixed points -[γ]₂ and -[δ]₂, and
// the public-input bases K.
type batchKey struct {
	k          []curve.G1Affine
	alphaBeta  curve.GT
	linesGamma [2][len(curve.LoopCounter)]curve.LineEvaluationAff
	linesDelta [2][len(curve.LoopCounter)]curve.LineEvaluationAff
}

func newBatchKey(vk *groth16bn254.VerifyingKey) (*batchKey, error) {
	e, err := curve.Pair([]curve.G1Affine{vk.G1.Alpha}, []curve.G2Affine{vk.G2.Beta})
	if err != nil {
		return nil, fmt.Errorf("e(α, β): %w", err)
	}
	var gammaNeg, deltaNeg curve.G2Affine
	gammaNeg.Neg(&vk.G2.Gamma)
	deltaNeg.Neg(&vk.G2.Delta)
	return &batchKey{
		k:          vk.G1.K,
		alphaBeta:  e,
		linesGamma: curve.PrecomputeLines(gammaNeg),
		linesDelta: curve.PrecomputeLines(deltaNeg),
	}, nil
}

// batchEntry is a decoded item.
type batchEntry struct {
	index int
	proof *groth16bn254.Proof
	pub   []fr.Element // without the constant wire
}

// BatchVerify checks many proofs of one circuit at once and returns the
// indices (ascending) of the items that do not verify; nil means all do.
// An item whose proof, input, output or binding does not decode is bad too
// (Verify on it says why). The answer is the same as calling Verify on each
// item, except with probability ≤ 2^-128 per check.
//
// A Groth16 proof (A, B, C) for public inputs x is valid iff
//
//	e(A, B) · e(C, -δ) · e(L(x), -γ) = e(α, β),  L(x) = K₀ + Σ xᵢ·Kᵢ₊₁.
//
// For n proofs and independent random 128-bit scalars rⱼ (crypto/rand),
// the batch checks
//
//	Πⱼ e(rⱼ·Aⱼ, Bⱼ) · e(Σ rⱼ·Cⱼ, -δ) · e(Σ rⱼ·L(xⱼ), -γ) = e(α, β)^(Σ rⱼ)
//
// with n+2 Miller loops (the last two on precomputed lines), two
// multi-scalar multiplications and one final exponentiation, instead of n
// verifications with 3 Miller loops and a final exponentiation each. All
// points are subgroup-checked when decoded, so a bad proof passes only if
// the random combination cancels, which a prover who does not know the rⱼ
// achieves with probability ≤ 2^-128. When the batch fails, it is split in
// halves, recursively, until the bad proofs are isolated; a single proof is
// checked with gnark's verifier.
//
// Errors: ErrUnknownCircuit, or a failure of the system's randomness.
func (ks *KeySet) BatchVerify(circuit string, items []BatchItem) (bad []int, err error) {
	ck, err := ks.circuit(circuit)
	if err != nil {
		return nil, err
	}
	// Decoding (point decompression and subgroup checks) is a large part
	// of the cost: spread it over the CPUs.
	decoded := make([]batchEntry, len(items))
	ok := make([]bool, len(items))
	parallel(len(items), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			e, err := ck.decodeItem(items[i])
			e.index, ok[i] = i, err == nil
			decoded[i] = e
		}
	})
	entries := make([]batchEntry, 0, len(items))
	for i := range items {
		if ok[i] {
			entries = append(entries, decoded[i])
		} else {
			bad = append(bad, i)
		}
	}
	found, err := ck.findBad(entries, false)
	if err != nil {
		return nil, fmt.Errorf("batch verify %s: %w", circuit, err)
	}
	return mergeSorted(bad, found), nil
}

func (ck *circuitKeys) decodeItem(it BatchItem) (batchEntry, error) {
	b, err := bindingElement(it.Binding)
	if err != nil {
		return batchEntry{}, err
	}
	pub, err := ck.def.publicVector(it.Input, it.Output, b)
	if err != nil {
		return batchEntry{}, err
	}
	p, err := decodeProof(it.Proof)
	if err != nil {
		return batchEntry{}, err
	}
	return batchEntry{proof: p, pub: pub}, nil
}

// findBad returns the indices of the invalid entries. knownBad says that a
// check of exactly these entries already failed: a batch of valid proofs
// never fails, so at least one of them is invalid.
func (ck *circuitKeys) findBad(entries []batchEntry, knownBad bool) ([]int, error) {
	switch len(entries) {
	case 0:
		return nil, nil
	case 1:
		if knownBad || groth16bn254.Verify(entries[0].proof, ck.vk, entries[0].pub) != nil {
			return []int{entries[0].index}, nil
		}
		return nil, nil
	}
	if !knownBad {
		ok, err := ck.batch.check(entries)
		if err != nil || ok {
			return nil, err
		}
	}
	mid := len(entries) / 2
	left, err := ck.findBad(entries[:mid], false)
	if err != nil {
		return nil, err
	}
	// If the left half is clean, the failure is in the right half.
	right, err := ck.findBad(entries[mid:], len(left) == 0)
	if err != nil {
		return nil, err
	}
	return append(left, right...), nil
}

// check runs the randomised batch equation on entries (at least one).
func (bk *batchKey) check(entries []batchEntry) (bool, error) {
	n := len(entries)
	r, err := randomScalars(n)
	if err != nil {
		return false, err
	}
	var rSum big.Int
	var rBig big.Int
	// Σ rⱼ·Cⱼ and the scalars of Σ rⱼ·L(xⱼ) over the bases K.
	cs := make([]curve.G1Affine, n)
	ks := make([]fr.Element, len(bk.k))
	var t fr.Element
	for j, e := range entries {
		if len(e.pub) != len(bk.k)-1 {
			return false, fmt.Errorf("entry %d: %d public inputs, the key has %d", e.index, len(e.pub), len(bk.k)-1)
		}
		cs[j] = e.proof.Krs
		ks[0].Add(&ks[0], &r[j])
		for i := range e.pub {
			t.Mul(&r[j], &e.pub[i])
			ks[i+1].Add(&ks[i+1], &t)
		}
		rSum.Add(&rSum, r[j].BigInt(&rBig))
	}
	var cJac, lJac curve.G1Jac
	if _, err := cJac.MultiExp(cs, r, ecc.MultiExpConfig{}); err != nil {
		return false, err
	}
	if _, err := lJac.MultiExp(bk.k, ks, ecc.MultiExpConfig{}); err != nil {
		return false, err
	}
	var cAff, lAff curve.G1Affine
	cAff.FromJacobian(&cJac)
	lAff.FromJacobian(&lJac)
	fixed, err := curve.MillerLoopFixedQ([]curve.G1Affine{cAff, lAff},
		[][2][len(curve.LoopCounter)]curve.LineEvaluationAff{bk.linesDelta, bk.linesGamma})
	if err != nil {
		return false, err
	}
	ml, err := millerLoopScaled(entries, r)
	if err != nil {
		return false, err
	}
	ml.Mul(&ml, &fixed)
	lhs := curve.FinalExponentiation(&ml)
	var rhs curve.GT
	rhs.CyclotomicExp(bk.alphaBeta, &rSum)
	return lhs.Equal(&rhs), nil
}

// millerLoopScaled returns Πⱼ MillerLoop(rⱼ·Aⱼ, Bⱼ), split over the CPUs.
func millerLoopScaled(entries []batchEntry, r []fr.Element) (curve.GT, error) {
	n := len(entries)
	workers := min(runtime.GOMAXPROCS(0), (n+3)/4)
	results := make([]curve.GT, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() {
			ps := make([]curve.G1Affine, hi-lo)
			qs := make([]curve.G2Affine, hi-lo)
			var s big.Int
			for j := lo; j < hi; j++ {
				ps[j-lo].ScalarMultiplication(&entries[j].proof.Ar, r[j].BigInt(&s))
				qs[j-lo] = entries[j].proof.Bs
			}
			results[w], errs[w] = curve.MillerLoop(ps, qs)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return curve.GT{}, err
		}
	}
	acc := results[0]
	for w := 1; w < workers; w++ {
		acc.Mul(&acc, &results[w])
	}
	return acc, nil
}

// parallel runs f over [0, n) split into one contiguous chunk per CPU
// (chunks of at least 4), and waits for all of them.
func parallel(n int, f func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+3)/4)
	if workers <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}

// randomScalars returns n independent uniformly random non-zero 128-bit
// scalars from crypto/rand.
func randomScalars(n int) ([]fr.Element, error) {
	buf := make([]byte, 16*n)
	if _, err := rand.Read(buf); err != nil {
		return nil, fmt.Errorf("batch randomness: %w", err)
	}
	r := make([]fr.Element, n)
	for j := range r {
		b := buf[16*j : 16*j+16]
		r[j].SetBytes(b)
		for r[j].IsZero() {
			if _, err := rand.Read(b); err != nil {
				return nil, fmt.Errorf("batch randomness: %w", err)
			}
			r[j].SetBytes(b)
		}
	}
	return r, nil
}

// mergeSorted merges two ascending index lists.
func mergeSorted(a, b []int) []int {
	if len(a) == 0 {
		return b
	}
	out := make([]int, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0] < b[0] {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}
