package zk

import (
	"errors"
	"fmt"
	"math/big"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/consensys/gnark/frontend"
	"github.com/proofmesh/proofmesh/protocol/spec"
)

// mlpInferCircuit proves (scores, class) = spec.MLPInfer(x) for mlp.infer.v1.
// Public inputs, in this order: X[0..15], Scores[0..3], Class, Binding.
// Negative integers are their field representatives r-|v|. There is no
// private input: every intermediate value (accumulators, signs, hidden
// activations, remainders, comparison results) is an internal wire fixed by
// a bit decomposition, so the witness is unique for a given x.
type mlpInferCircuit struct {
	X       [spec.MLPInputs]frontend.Variable  `gnark:",public"`
	Scores  [spec.MLPOutputs]frontend.Variable `gnark:",public"`
	Class   frontend.Variable                  `gnark:",public"`
	Binding frontend.Variable                  `gnark:",public"`
}

// Define implements frontend.Circuit.
//
//   - each x is range-checked to int8: x+128 has 8 bits;
//   - acc1[j] = B1[j] + Σ W1[j][i]·x[i] is a linear combination. Since
//     |acc1| < 2^MLPAcc1Bits for int8 inputs (TestMLPBounds recomputes
//     this from the weights), acc1[j] + 2^19 lies in [1, 2^20) and has a
//     unique 20-bit decomposition: bit 19 is 1 iff acc1 ≥ 0, and then bits
//     0..18 are acc1 itself;
//   - h[j] = ReLU(acc1[j]) >> 7 = bit19 · Σ_{k=7..18} bit_k·2^(k-7). The
//     7-bit remainder (bits 0..6) is range-checked by the same
//     decomposition, and h < 2^MLPHiddenBits by construction;
//   - s[k] = B2[k] + Σ W2[k][j]·h[j] must equal the public Scores[k]; with
//     h < 2^12, |s| < 2^MLPScoreBits for any h (TestMLPBounds);
//   - class has 2 bits (0..3). With best = s[class] (a 2-bit lookup), for
//     every k, best - s[k] - [k < class] has MLPScoreBits+1 bits, i.e. is
//     ≥ 0 (a negative difference is r-|d|, far above 2^23): s[class] is
//     maximal and strictly above every earlier score, so ties go to the
//     lowest index.
func (c *mlpInferCircuit) Define(api frontend.API) error {
	if spec.MLPOutputs != 4 {
		return errors.New("mlp.infer.v1 circuit: the class lookup is written for exactly 4 outputs")
	}
	for i := range spec.MLPInputs {
		api.ToBinary(api.Add(c.X[i], 128), 8)
	}
	var h [spec.MLPHidden]frontend.Variable
	for j := range spec.MLPHidden {
		var acc frontend.Variable = spec.MLPB1[j]
		for i := range spec.MLPInputs {
			acc = api.Add(acc, api.Mul(spec.MLPW1[j][i], c.X[i]))
		}
		bits := api.ToBinary(api.Add(acc, int64(1)<<spec.MLPAcc1Bits), spec.MLPAcc1Bits+1)
		nonNegative := bits[spec.MLPAcc1Bits]
		shifted := weightedSum(api, bits[spec.MLPShift:spec.MLPAcc1Bits])
		h[j] = api.Mul(nonNegative, shifted)
	}
	var s [spec.MLPOutputs]frontend.Variable
	for k := range spec.MLPOutputs {
		var acc frontend.Variable = spec.MLPB2[k]
		for j := range spec.MLPHidden {
			acc = api.Add(acc, api.Mul(spec.MLPW2[k][j], h[j]))
		}
		s[k] = acc
		api.AssertIsEqual(c.Scores[k], acc)
	}
	cb := api.ToBinary(c.Class, 2)
	best := api.Lookup2(cb[0], cb[1], s[0], s[1], s[2], s[3])
	for k := range spec.MLPOutputs {
		// lt[cl] = 1 if k < cl, for class cl = 0, 1, 2, 3.
		var lt [4]frontend.Variable
		for cl := range 4 {
			lt[cl] = 0
			if k < cl {
				lt[cl] = 1
			}
		}
		less := api.Lookup2(cb[0], cb[1], lt[0], lt[1], lt[2], lt[3])
		api.ToBinary(api.Sub(best, s[k], less), spec.MLPScoreBits+1)
	}
	constrainBinding(api, c.Binding)
	return nil
}

// weightedSum returns Σ bits[i]·2^i as a linear combination (no constraint;
// the bits are already boolean-constrained by ToBinary).
func weightedSum(api frontend.API, bits []frontend.Variable) frontend.Variable {
	var sum frontend.Variable = 0
	for i, b := range bits {
		sum = api.Add(sum, api.Mul(new(big.Int).Lsh(big.NewInt(1), uint(i)), b))
	}
	return sum
}

// mlpPublicNames are the names of mlp.infer.v1's public inputs, in order.
func mlpPublicNames() []string {
	names := make([]string, 0, spec.MLPInputs+spec.MLPOutputs+2)
	for i := range spec.MLPInputs {
		names = append(names, fmt.Sprintf("x[%d]", i))
	}
	for k := range spec.MLPOutputs {
		names = append(names, fmt.Sprintf("scores[%d]", k))
	}
	return append(names, "class", "binding")
}

var mlpDef = &circuitDef{
	id:          spec.TypeMLPInfer,
	blank:       func() frontend.Circuit { return &mlpInferCircuit{} },
	publicNames: mlpPublicNames(),
	sample: func() (input, output []byte) {
		x := [spec.MLPInputs]int64{12, -7, 100, -128, 127, 0, 3, -55, 64, 9, -1, 33, -90, 18, 77, -20}
		scores, class := spec.MLPInfer(x)
		return formatMLPInput(x), formatMLPOutput(scores, int64(class))
	},
	public: func(input, output []byte) ([]fr.Element, error) {
		in, out, err := parseMLP(input, output)
		if err != nil {
			return nil, err
		}
		return mlpPublic(in, out), nil
	},
	assign: func(input, output []byte, binding fr.Element) (frontend.Circuit, error) {
		in, out, err := parseMLP(input, output)
		if err != nil {
			return nil, err
		}
		scores, class := spec.MLPInfer(in.X)
		if scores != out.Scores || int64(class) != out.Class {
			return nil, fmt.Errorf("%s: %w: output is not MLPInfer of x (want scores %v, class %d)", spec.TypeMLPInfer, ErrBadOutput, scores, class)
		}
		return mlpAssignment(in, out, binding), nil
	},
}

// parseMLP decodes a statement of mlp.infer.v1: its input and output.
func parseMLP(input, output []byte) (mlpInput, mlpOutput, error) {
	in, err := parseMLPInput(input)
	if err != nil {
		return mlpInput{}, mlpOutput{}, err
	}
	out, err := parseMLPOutput(output)
	return in, out, err
}

func mlpPublic(in mlpInput, out mlpOutput) []fr.Element {
	pub := make([]fr.Element, 0, spec.MLPInputs+spec.MLPOutputs+2)
	for _, x := range in.X {
		pub = append(pub, int64Element(x))
	}
	for _, s := range out.Scores {
		pub = append(pub, int64Element(s))
	}
	return append(pub, int64Element(out.Class))
}

// mlpAssignment builds the full assignment; the circuit has no private
// inputs (the hidden layer is derived in-circuit from bit decompositions).
func mlpAssignment(in mlpInput, out mlpOutput, binding fr.Element) *mlpInferCircuit {
	var c mlpInferCircuit
	for i, x := range in.X {
		c.X[i] = int64Element(x)
	}
	for k, s := range out.Scores {
		c.Scores[k] = int64Element(s)
	}
	c.Class = int64Element(out.Class)
	c.Binding = binding
	return &c
}
