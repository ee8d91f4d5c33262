package zk

import (
	"fmt"
	"math/big"
	"slices"
	"sync"

	"github.com/consensys/gnark-crypto/ecc"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/consensys/gnark/constraint"
	cs "github.com/consensys/gnark/constraint/bn254"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/frontend/cs/r1cs"
	"github.com/consensys/gnark/logger"
	"github.com/rs/zerolog"
)

// circuitDef ties a circuit id to its gnark circuit and to the parsers that
// turn a task's JSON input and output into the circuit's public inputs.
type circuitDef struct {
	id    string
	blank func() frontend.Circuit
	// publicNames names the public inputs in the circuit's order, the
	// binding last. It is written into the manifest and checked against
	// the compiled circuit by the tests.
	publicNames []string
	// public returns the public inputs without the binding, in the
	// circuit's order; errors wrap ErrBadInput or ErrBadOutput.
	public func(input, output []byte) ([]fr.Element, error)
	// assign returns the full assignment; it checks natively that output is
	// the function of input first (ErrBadOutput otherwise).
	assign func(input, output []byte, binding fr.Element) (frontend.Circuit, error)
	// sample returns a valid input and output, used to check fresh keys.
	sample func() (input, output []byte)

	once sync.Once
	ccs  *cs.R1CS
	err  error
}

// registry is a set of circuits a key set or a ceremony knows about. The
// package uses builtinCircuits; the tests add small circuits of their own.
type registry []*circuitDef

// builtinCircuits are the circuits of the built-in groth16 task types, in
// manifest order.
var builtinCircuits = registry{mimcDef, mlpDef}

// CircuitIDs returns the ids of the built-in circuits; each equals the id
// of the task type it proves.
func CircuitIDs() []string { return builtinCircuits.ids() }

func (r registry) ids() []string {
	ids := make([]string, len(r))
	for i, d := range r {
		ids[i] = d.id
	}
	return ids
}

func (r registry) lookup(id string) (*circuitDef, error) {
	for _, d := range r {
		if d.id == id {
			return d, nil
		}
	}
	return nil, fmt.Errorf("circuit %q: %w (known: %q)", id, ErrUnknownCircuit, r.ids())
}

var quietOnce sync.Once

// quiet silences gnark's logger, once per process, before gnark is used.
func quiet() {
	quietOnce.Do(func() { logger.Set(zerolog.Nop()) })
}

// compile returns the circuit's constraint system, compiled once per
// process. Compilation is deterministic for a given gnark version, so the
// result matches the constraint system of the ceremony that made the keys;
// the key set checks the constraint count against the manifest.
func (d *circuitDef) compile() (*cs.R1CS, error) {
	d.once.Do(func() {
		quiet()
		ccs, err := frontend.Compile(ecc.BN254.ScalarField(), r1cs.NewBuilder, d.blank())
		if err != nil {
			d.err = fmt.Errorf("compile %s: %w", d.id, err)
			return
		}
		r, ok := ccs.(*cs.R1CS)
		if !ok {
			d.err = fmt.Errorf("compile %s: unexpected constraint system %T", d.id, ccs)
			return
		}
		// Pedersen commitments (api.Commit, or gadgets built on it) would
		// add commitment keys and change the proof format this package
		// fixes; the circuits do not use them.
		if c, ok := r.CommitmentInfo.(constraint.Groth16Commitments); !ok || len(c) != 0 {
			d.err = fmt.Errorf("compile %s: the circuit uses Pedersen commitments, which this package does not support", d.id)
			return
		}
		if got, want := r.GetNbPublicVariables()-1, len(d.publicNames); got != want {
			d.err = fmt.Errorf("compile %s: %d public inputs, the definition names %d", d.id, got, want)
			return
		}
		d.ccs = r
	})
	return d.ccs, d.err
}

// nbPublic is the number of public inputs (without gnark's constant-one
// wire), the binding included.
func (d *circuitDef) nbPublic() int { return len(d.publicNames) }

// publicVector returns the full public witness: the task's values and the
// binding last.
func (d *circuitDef) publicVector(input, output []byte, binding fr.Element) (fr.Vector, error) {
	pub, err := d.public(input, output)
	if err != nil {
		return nil, err
	}
	return append(slices.Clip(pub), binding), nil
}

// PublicInputs returns the public inputs of a proof of circuit for this
// input, output and binding, as canonical decimal field elements (a
// negative integer v is written as r-|v|, r the BN254 scalar field order),
// in the circuit's order:
//
//	mimc.chain.v1: x, y, binding
//	mlp.infer.v1:  x[0..15], scores[0..3], class, binding
//
// It parses input and output strictly (ErrBadInput, ErrBadOutput); it does
// not check that output is the function of input (a proof does that).
func PublicInputs(circuit string, input, output []byte, binding *big.Int) ([]string, error) {
	d, err := builtinCircuits.lookup(circuit)
	if err != nil {
		return nil, err
	}
	b, err := bindingElement(binding)
	if err != nil {
		return nil, err
	}
	pub, err := d.publicVector(input, output, b)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(pub))
	for i := range pub {
		out[i] = decimal(pub[i])
	}
	return out, nil
}
