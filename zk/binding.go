package zk

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
)

// bindingDomain separates the binding hash from every other use of SHA-256.
const bindingDomain = "proofmesh/binding/v1"

// Binding returns the field element that binds a proof to one task and one
// executor:
//
//	SHA-256("proofmesh/binding/v1" ‖ uint32be(len(taskID)) ‖ taskID ‖
//	        uint32be(len(executorID)) ‖ executorID)
//
// read as a big-endian integer and reduced modulo the BN254 scalar field
// order r. Callers pass the task id bytes and the executor's libp2p
// peer-ID bytes. Every circuit takes it as its last public input and
// constrains it, so a proof made for one (task, executor) does not verify
// for another.
func Binding(taskID, executorID []byte) *big.Int {
	h := sha256.New()
	h.Write([]byte(bindingDomain))
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(taskID)))
	h.Write(l[:])
	h.Write(taskID)
	binary.BigEndian.PutUint32(l[:], uint32(len(executorID)))
	h.Write(l[:])
	h.Write(executorID)
	v := new(big.Int).SetBytes(h.Sum(nil))
	return v.Mod(v, fr.Modulus())
}

// bindingElement converts a caller's binding to a field element; it must be
// canonical (0 ≤ b < r), as Binding returns it. Anything else wraps
// ErrBadInput: it is the caller's part of the statement.
func bindingElement(b *big.Int) (fr.Element, error) {
	var e fr.Element
	if b == nil {
		return e, fmt.Errorf("binding: %w: missing", ErrBadInput)
	}
	if b.Sign() < 0 || b.Cmp(fr.Modulus()) >= 0 {
		return e, fmt.Errorf("binding: %w: not in [0, r) (use Binding to compute it)", ErrBadInput)
	}
	e.SetBigInt(b)
	return e, nil
}
