package zk

import (
	"fmt"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	nativemimc "github.com/consensys/gnark-crypto/ecc/bn254/fr/mimc"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/std/hash/mimc"
	"github.com/proofmesh/proofmesh/protocol/spec"
)

// mimcChainCircuit proves y = MiMC^64(x) for mimc.chain.v1: h0 = x,
// h(i+1) = MiMC(h(i)) (gnark's MiMC-BN254, Miyaguchi–Preneel, one field
// element absorbed per hash), y = h(spec.MiMCChainLength).
// Public inputs, in this order: X, Y, Binding. There is no private input:
// the chain's intermediate values are internal wires, each one fixed by the
// previous one through the round constraints.
type mimcChainCircuit struct {
	X       frontend.Variable `gnark:",public"`
	Y       frontend.Variable `gnark:",public"`
	Binding frontend.Variable `gnark:",public"`
}

// Define implements frontend.Circuit.
func (c *mimcChainCircuit) Define(api frontend.API) error {
	h := c.X
	for range spec.MiMCChainLength {
		m, err := mimc.NewMiMC(api)
		if err != nil {
			return err
		}
		m.Write(h)
		h = m.Sum()
	}
	api.AssertIsEqual(h, c.Y)
	constrainBinding(api, c.Binding)
	return nil
}

// constrainBinding puts the binding into a real constraint (b·b = w, w a
// fresh internal wire). A public input that appears in no constraint gets
// the point at infinity as its verifying-key term, and a proof would then
// verify with any binding. With the constraint, the binding's term
// [β·u(τ) + α·v(τ)]/γ is a non-trivial point, so the pairing check binds
// the value b itself (not b²: the public wire enters linearly). gnark also
// refuses to compile a circuit with an unconstrained public input, and the
// tests check that no verifying-key term of any public input is the point
// at infinity and that a proof fails under another binding.
func constrainBinding(api frontend.API, b frontend.Variable) {
	api.Mul(b, b)
}

// mimcHash is one native MiMC-BN254 hash of one field element, as the
// spec fixes it: Write the 32-byte big-endian element, then Sum.
func mimcHash(x fr.Element) fr.Element {
	m := nativemimc.NewMiMC()
	b := x.Bytes()
	if _, err := m.Write(b[:]); err != nil {
		panic(fmt.Sprintf("zk: mimc of a canonical element: %v", err)) // cannot happen: x is reduced
	}
	var out fr.Element
	out.SetBytes(m.Sum(nil))
	return out
}

// mimcChain computes mimc.chain.v1 natively: h0 = x, h(i+1) = MiMC(h(i)),
// the result is h(spec.MiMCChainLength).
func mimcChain(x fr.Element) fr.Element {
	h := x
	for range spec.MiMCChainLength {
		h = mimcHash(h)
	}
	return h
}

// parseXY decodes the input {"x": "<dec>"} and the output {"y": "<dec>"}
// of mimc.chain.v1 (and of the tests' small circuit, which shares them).
func parseXY(input, output []byte) (x, y fr.Element, err error) {
	in, err := parseMiMCInput(input)
	if err != nil {
		return x, y, err
	}
	out, err := parseMiMCOutput(output)
	if err != nil {
		return x, y, err
	}
	return in.X, out.Y, nil
}

// publicXY is the public part of the statement for the x → y shapes.
func publicXY(input, output []byte) ([]fr.Element, error) {
	x, y, err := parseXY(input, output)
	if err != nil {
		return nil, err
	}
	return []fr.Element{x, y}, nil
}

var mimcDef = &circuitDef{
	id:          spec.TypeMiMCChain,
	blank:       func() frontend.Circuit { return &mimcChainCircuit{} },
	publicNames: []string{"x", "y", "binding"},
	sample: func() (input, output []byte) {
		var x fr.Element
		x.SetUint64(42)
		y := mimcChain(x)
		return []byte(`{"x":"42"}`), []byte(`{"y":"` + decimal(y) + `"}`)
	},
	public: publicXY,
	assign: func(input, output []byte, binding fr.Element) (frontend.Circuit, error) {
		x, y, err := parseXY(input, output)
		if err != nil {
			return nil, err
		}
		if want := mimcChain(x); !want.Equal(&y) {
			return nil, fmt.Errorf("%s: %w: y is not the MiMC chain of x (want %s)", spec.TypeMiMCChain, ErrBadOutput, decimal(want))
		}
		return &mimcChainCircuit{X: x, Y: y, Binding: binding}, nil
	},
}
