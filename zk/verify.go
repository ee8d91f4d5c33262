package zk

import (
	"bytes"
	"fmt"
	"math/big"

	curve "github.com/consensys/gnark-crypto/ecc/bn254"
	groth16bn254 "github.com/consensys/gnark/backend/groth16/bn254"
)

// ProofSize is the size of every proof this package makes and accepts:
// gnark's compressed WriteTo encoding of a Groth16 BN254 proof without
// commitments: [A]₁ ‖ [B]₂ ‖ [C]₁ ‖ uint32be(0) ‖ the (unused, identity)
// commitment proof of knowledge [0]₁.
const ProofSize = 2*curve.SizeOfG1AffineCompressed + curve.SizeOfG2AffineCompressed + 4 + curve.SizeOfG1AffineCompressed

// commitmentsOffset is where the proof's commitment count sits.
const commitmentsOffset = 2*curve.SizeOfG1AffineCompressed + curve.SizeOfG2AffineCompressed

// decodeProof decodes proof bytes from outside: exactly ProofSize bytes,
// no commitments, every point on the curve and in its prime-order subgroup
// (gnark-crypto's decoder checks both unless told not to; the tests feed it
// off-curve and off-subgroup points), and in canonical form (the bytes are
// the encoding of the decoded proof, so each proof has one encoding).
func decodeProof(data []byte) (*groth16bn254.Proof, error) {
	if len(data) != ProofSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrProofEncoding, len(data), ProofSize)
	}
	if !bytes.Equal(data[commitmentsOffset:commitmentsOffset+4], []byte{0, 0, 0, 0}) {
		return nil, fmt.Errorf("%w: the proof has commitments; the circuits use none", ErrProofEncoding)
	}
	p := new(groth16bn254.Proof)
	n, err := p.ReadFrom(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProofEncoding, err)
	}
	if n != int64(len(data)) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrProofEncoding, int64(len(data))-n)
	}
	if !p.CommitmentPok.IsInfinity() {
		return nil, fmt.Errorf("%w: non-identity commitment proof in a proof without commitments", ErrProofEncoding)
	}
	var re bytes.Buffer
	if _, err := p.WriteTo(&re); err != nil || !bytes.Equal(re.Bytes(), data) {
		return nil, fmt.Errorf("%w: not the canonical encoding", ErrProofEncoding)
	}
	return p, nil
}

// encodeProof returns the canonical encoding of a proof.
func encodeProof(p *groth16bn254.Proof) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(ProofSize)
	if _, err := p.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode proof: %w", err)
	}
	if buf.Len() != ProofSize {
		return nil, fmt.Errorf("encode proof: %d bytes, want %d (a proof with commitments?)", buf.Len(), ProofSize)
	}
	return buf.Bytes(), nil
}

// Verify checks a proof that output is the circuit's function of input,
// made for binding (see Binding). It returns nil for a valid proof, and
// otherwise an error wrapping ErrUnknownCircuit (no key for circuit),
// ErrBadInput or ErrBadOutput (the JSON does not parse; a bad binding is
// ErrBadInput), ErrProofEncoding (the bytes are not a proof: size, curve,
// subgroup, canonical form) or ErrProofInvalid (the pairing check fails:
// another input, output, binding or circuit than the proof was made for).
func (ks *KeySet) Verify(circuit string, proof []byte, input, output []byte, binding *big.Int) error {
	ck, err := ks.circuit(circuit)
	if err != nil {
		return err
	}
	b, err := bindingElement(binding)
	if err != nil {
		return fmt.Errorf("verify %s: %w", circuit, err)
	}
	pub, err := ck.def.publicVector(input, output, b)
	if err != nil {
		return fmt.Errorf("verify %s: %w", circuit, err)
	}
	p, err := decodeProof(proof)
	if err != nil {
		return fmt.Errorf("verify %s: %w", circuit, err)
	}
	if err := groth16bn254.Verify(p, ck.vk, pub); err != nil {
		return fmt.Errorf("verify %s: %w: %v", circuit, ErrProofInvalid, err)
	}
	return nil
}
