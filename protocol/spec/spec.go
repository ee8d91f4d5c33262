// Package spec fixes the functions computed by the built-in groth16 task
// types, so that the WASM modules in tasks/, the circuits in zk/ and the
// reference implementations used in tests all compute exactly the same thing.
//
// It imports nothing beyond the standard library: it is compiled into the
// WASM guests as well as into the node.
package spec

// Task type identifiers of the built-in registry.
const (
	TypeMiMCChain = "mimc.chain.v1"
	TypeMLPInfer  = "mlp.infer.v1"
	TypeWASMExec  = "wasm.exec.v1"
)

// MiMCChainLength is the number of MiMC-BN254 hashes in mimc.chain.v1:
// h0 = x, h(i+1) = MiMC(h(i)) with gnark-crypto's Miyaguchi–Preneel MiMC
// over the BN254 scalar field (one field element written, Sum taken), and
// y = h(MiMCChainLength). 64 hashes make ≈ 21k constraints: a proof takes
// well under a second on two cores.
const MiMCChainLength = 64

// MLP dimensions of mlp.infer.v1.
const (
	MLPInputs  = 16 // input vector length, each value an int8 (-128..127)
	MLPHidden  = 8  // hidden units, ReLU then requantized
	MLPOutputs = 4  // output scores; the class is their argmax
	// MLPShift requantizes the hidden layer: h = ReLU(acc) >> MLPShift.
	MLPShift = 7
)

// MLPW1 are the int8 weights of the hidden layer, [hidden][input].
var MLPW1 = [MLPHidden][MLPInputs]int64{
	{66, 20, 102, 119, 40, -1, -87, -83, 81, 16, -105, 11, 91, -31, -28, 61},
	{-80, -120, 40, 123, -109, -102, -19, 40, -58, 59, -99, 45, 78, -114, -55, -40},
	{-8, 42, -44, -116, 115, -112, 67, -58, -115, -7, 83, 94, 66, 17, 124, -67},
	{-77, 85, 101, 58, -5, 23, -98, 60, 36, -45, 77, -23, -24, 5, -33, 99},
	{22, 39, 98, -20, -27, 58, -115, 10, 4, 85, 36, 5, -60, -48, -51, -95},
	{-113, -43, 45, -26, -1, 45, 75, 53, -71, -59, -124, 77, -19, 96, -8, 35},
	{109, 1, 68, 12, 43, -51, 60, -80, -79, 34, 50, 105, -7, -13, 16, 51},
	{46, 35, 102, -84, 83, -23, 114, 58, -119, -95, 81, -61, 45, -96, 51, 122},
}

// MLPB1 are the int32 biases of the hidden layer.
var MLPB1 = [MLPHidden]int64{-247, 164, -1026, -610, -1332, 935, 867, 603}

// MLPW2 are the int8 weights of the output layer, [output][hidden].
var MLPW2 = [MLPOutputs][MLPHidden]int64{
	{-52, -63, 107, 96, 5, -42, -24, -80},
	{113, 11, -16, -49, 40, -74, 46, 30},
	{-123, -24, -70, -116, 103, 85, 0, -109},
	{-70, -103, -112, -42, -120, -27, -9, -67},
}

// MLPB2 are the int32 biases of the output layer.
var MLPB2 = [MLPOutputs]int64{1868, -1176, -9, -1187}

// Bounds that the circuit range-checks; they follow from the int8 ranges.
const (
	// MLPAcc1Bits bounds |acc1| < 2^MLPAcc1Bits for any int8 input.
	MLPAcc1Bits = 19
	// MLPHiddenBits bounds a requantized hidden value h < 2^MLPHiddenBits.
	MLPHiddenBits = 12
	// MLPScoreBits bounds |score| < 2^MLPScoreBits.
	MLPScoreBits = 22
)

// MLPInfer is the reference implementation of mlp.infer.v1:
//
//	acc1[j] = B1[j] + Σi W1[j][i]·x[i]
//	h[j]    = max(acc1[j], 0) >> MLPShift
//	s[k]    = B2[k] + Σj W2[k][j]·h[j]
//	class   = the smallest k with s[k] maximal
//
// x values must be within -128..127; callers validate that first.
func MLPInfer(x [MLPInputs]int64) (scores [MLPOutputs]int64, class int) {
	_, h := MLPHiddenLayer(x)
	for k := range MLPOutputs {
		s := MLPB2[k]
		for j := range MLPHidden {
			s += MLPW2[k][j] * h[j]
		}
		scores[k] = s
		if s > scores[class] {
			class = k
		}
	}
	return scores, class
}

// MLPHiddenLayer returns the requantized hidden activations and the raw
// accumulators for x; the circuit's prover uses them as its witness.
func MLPHiddenLayer(x [MLPInputs]int64) (acc [MLPHidden]int64, h [MLPHidden]int64) {
	for j := range MLPHidden {
		a := MLPB1[j]
		for i := range MLPInputs {
			a += MLPW1[j][i] * x[i]
		}
		acc[j] = a
		if a > 0 {
			h[j] = a >> MLPShift
		}
	}
	return acc, h
}
