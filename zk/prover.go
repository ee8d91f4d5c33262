package zk

import (
	"context"
	"fmt"
	"math/big"

	"github.com/consensys/gnark-crypto/ecc"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	groth16bn254 "github.com/consensys/gnark/backend/groth16/bn254"
	"github.com/consensys/gnark/frontend"
)

// Prover makes proofs with the proving keys of a KeySet, at most
// maxConcurrent at a time: gnark's prover uses every core, so unbounded
// proving would starve gossip validation. A Prover is safe for concurrent
// use.
type Prover struct {
	keys *KeySet
	sem  chan struct{}
}

// NewProver returns a prover over keys that runs at most maxConcurrent
// proofs at once (values below 1 mean 1).
func NewProver(keys *KeySet, maxConcurrent int) *Prover {
	return &Prover{keys: keys, sem: make(chan struct{}, max(maxConcurrent, 1))}
}

// Prove proves that output is the circuit's function of input, bound to
// binding (see Binding), and returns the proof's canonical encoding
// (ProofSize bytes). It first parses input and output and checks natively
// that output is the true function of input (ErrBadInput, ErrBadOutput), so
// no time is spent proving a false statement. It waits for a free slot
// honouring ctx; a proof in progress (well under a second for the built-in
// circuits) runs to completion. Missing proving key: ErrMissingProvingKey.
// The proof is verified before it is returned.
func (p *Prover) Prove(ctx context.Context, circuit string, input, output []byte, binding *big.Int) ([]byte, error) {
	ck, err := p.keys.circuit(circuit)
	if err != nil {
		return nil, err
	}
	b, err := bindingElement(binding)
	if err != nil {
		return nil, fmt.Errorf("prove %s: %w", circuit, err)
	}
	assignment, err := ck.def.assign(input, output, b)
	if err != nil {
		return nil, fmt.Errorf("prove %s: %w", circuit, err)
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("prove %s: waiting for a prover slot: %w", circuit, ctx.Err())
	}
	defer func() { <-p.sem }()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("prove %s: %w", circuit, err)
	}
	return ck.prove(assignment)
}

// prove runs gnark's prover on a checked assignment and verifies the result.
func (ck *circuitKeys) prove(assignment frontend.Circuit) ([]byte, error) {
	id := ck.def.id
	pk, err := ck.provingKey()
	if err != nil {
		return nil, fmt.Errorf("prove %s: %w", id, err)
	}
	ccs, err := ck.def.compile()
	if err != nil {
		return nil, fmt.Errorf("prove %s: %w", id, err)
	}
	if n := ccs.GetNbConstraints(); n != ck.meta.Constraints {
		return nil, fmt.Errorf("prove %s: %w: the keys were made for %d constraints, this build's circuit has %d (run a new ceremony)", id, ErrBadKeys, ck.meta.Constraints, n)
	}
	w, err := frontend.NewWitness(assignment, ecc.BN254.ScalarField())
	if err != nil {
		return nil, fmt.Errorf("prove %s: witness: %w", id, err)
	}
	proof, err := groth16bn254.Prove(ccs, pk, w)
	if err != nil {
		return nil, fmt.Errorf("prove %s: %w", id, err)
	}
	pub, err := w.Public()
	if err != nil {
		return nil, fmt.Errorf("prove %s: public witness: %w", id, err)
	}
	pubVec, ok := pub.Vector().(fr.Vector)
	if !ok {
		return nil, fmt.Errorf("prove %s: public witness of type %T", id, pub.Vector())
	}
	if err := groth16bn254.Verify(proof, ck.vk, pubVec); err != nil {
		return nil, fmt.Errorf("prove %s: the new proof does not verify (keys and circuit disagree?): %w", id, err)
	}
	return encodeProof(proof)
}
