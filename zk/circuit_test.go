package zk

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/consensys/gnark-crypto/ecc"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	nativemimc "github.com/consensys/gnark-crypto/ecc/bn254/fr/mimc"
	"github.com/consensys/gnark/constraint/solver"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/std/math/bits"
	"github.com/proofmesh/proofmesh/protocol/spec"
)

// isSolved reports whether the compiled constraint system of d accepts the
// assignment (nil) or why not.
func isSolved(t *testing.T, d *circuitDef, assignment frontend.Circuit, opts ...solver.Option) error {
	t.Helper()
	ccs, err := d.compile()
	if err != nil {
		t.Fatal(err)
	}
	w, err := frontend.NewWitness(assignment, ecc.BN254.ScalarField())
	if err != nil {
		t.Fatalf("witness: %v", err)
	}
	return ccs.IsSolved(w, opts...)
}

func elem(v int64) fr.Element { return int64Element(v) }

func TestCircuitsCompile(t *testing.T) {
	for _, d := range builtinCircuits {
		ccs, err := d.compile()
		if err != nil {
			t.Fatal(err)
		}
		if got := ccs.GetNbPublicVariables() - 1; got != len(d.publicNames) {
			t.Errorf("%s: %d public inputs, want %d", d.id, got, len(d.publicNames))
		}
		if ccs.GetNbSecretVariables() != 0 {
			t.Errorf("%s: %d secret inputs, want none", d.id, ccs.GetNbSecretVariables())
		}
		t.Logf("%s: %d constraints, %d public inputs", d.id, ccs.GetNbConstraints(), len(d.publicNames))
	}
	ccs, _ := mimcDef.compile()
	// 330 constraints per MiMC hash, one for y, one for the binding.
	if want := 330*spec.MiMCChainLength + 2; ccs.GetNbConstraints() != want {
		t.Errorf("mimc.chain.v1: %d constraints, want %d", ccs.GetNbConstraints(), want)
	}
}

// TestPublicInputOrder checks that the public vector this package builds
// from task JSON is exactly gnark's public witness of the assignment, in
// the same order, binding last.
func TestPublicInputOrder(t *testing.T) {
	binding := Binding([]byte("task"), []byte("executor"))
	var b fr.Element
	b.SetBigInt(binding)
	for _, d := range builtinCircuits {
		in, out := d.sample()
		a, err := d.assign(in, out, b)
		if err != nil {
			t.Fatal(err)
		}
		w, err := frontend.NewWitness(a, ecc.BN254.ScalarField(), frontend.PublicOnly())
		if err != nil {
			t.Fatal(err)
		}
		want := w.Vector().(fr.Vector)
		got, err := d.publicVector(in, out, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d public values, gnark has %d", d.id, len(got), len(want))
		}
		for i := range got {
			if !got[i].Equal(&want[i]) {
				t.Errorf("%s: public input %d (%s) = %s, gnark has %s", d.id, i, d.publicNames[i], got[i].String(), want[i].String())
			}
		}
		strs, err := PublicInputs(d.id, in, out, binding)
		if err != nil {
			t.Fatal(err)
		}
		if strs[len(strs)-1] != binding.String() {
			t.Errorf("%s: last public input %s, want the binding %s", d.id, strs[len(strs)-1], binding)
		}
	}
}

// TestMiMCMatchesSpec checks the native chain against gnark-crypto's MiMC
// used exactly as protocol/spec describes it, and the circuit against the
// native chain.
func TestMiMCMatchesSpec(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, x := range []int64{0, 1, 42, -1, rng.Int64(), -rng.Int64()} {
		h := elem(x)
		for range spec.MiMCChainLength {
			m := nativemimc.NewMiMC()
			b := h.Bytes()
			if _, err := m.Write(b[:]); err != nil {
				t.Fatal(err)
			}
			h.SetBytes(m.Sum(nil))
		}
		y := mimcChain(elem(x))
		if !y.Equal(&h) {
			t.Fatalf("x=%d: mimcChain %s, spec %s", x, y.String(), h.String())
		}
		if err := isSolved(t, mimcDef, &mimcChainCircuit{X: elem(x), Y: y, Binding: 7}); err != nil {
			t.Errorf("x=%d: honest assignment rejected: %v", x, err)
		}
	}
}

func TestMiMCWrongAssignmentFails(t *testing.T) {
	x := elem(42)
	y := mimcChain(x)
	var yPlus1, yOneShort fr.Element
	yPlus1.Add(&y, &yPlus1).Add(&yPlus1, new(fr.Element).SetOne())
	yOneShort = x
	for range spec.MiMCChainLength - 1 {
		yOneShort = mimcHash(yOneShort)
	}
	cases := map[string]*mimcChainCircuit{
		"y+1":               {X: x, Y: yPlus1, Binding: 1},
		"63 hashes":         {X: x, Y: yOneShort, Binding: 1},
		"other x":           {X: elem(43), Y: y, Binding: 1},
		"y of x as x, y":    {X: y, Y: y, Binding: 1},
		"zero y for zero x": {X: elem(0), Y: elem(0), Binding: 1},
	}
	for name, a := range cases {
		if err := isSolved(t, mimcDef, a); err == nil {
			t.Errorf("%s: wrong assignment accepted", name)
		}
	}
}

// mlpCase is an input and the assignment the honest prover makes for it.
func mlpCase(x [spec.MLPInputs]int64) *mlpInferCircuit {
	scores, class := spec.MLPInfer(x)
	return mlpAssignment(mlpInput{X: x}, mlpOutput{Scores: scores, Class: int64(class)}, elem(5))
}

// findTie searches for an int8 input whose top score is shared by two
// outputs, so the tie rule matters; the output layer's integer weights make
// this rare but reachable by local search.
func findTie(t *testing.T) ([spec.MLPInputs]int64, int, int) {
	t.Helper()
	var x [spec.MLPInputs]int64
	seed := uint64(0x9e3779b97f4a7c15)
	next := func() uint64 { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed }
	for range 2_000_000 {
		for i := range x {
			x[i] = int64(next()%256) - 128
		}
		s, class := spec.MLPInfer(x)
		for k := class + 1; k < spec.MLPOutputs; k++ {
			if s[k] == s[class] {
				return x, class, k
			}
		}
	}
	t.Skip("no tie found")
	return x, 0, 0
}

func TestMLPHonestAssignments(t *testing.T) {
	inputs := [][spec.MLPInputs]int64{
		{},
		{127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127},
		{-128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128},
		{12, -7, 100, -128, 127, 0, 3, -55, 64, 9, -1, 33, -90, 18, 77, -20},
	}
	// the input that maximises each hidden unit's accumulator and the one
	// that minimises it, so both ends of every range check are exercised.
	for j := range spec.MLPHidden {
		var hi, lo [spec.MLPInputs]int64
		for i := range spec.MLPInputs {
			if spec.MLPW1[j][i] > 0 {
				hi[i], lo[i] = 127, -128
			} else {
				hi[i], lo[i] = -128, 127
			}
		}
		inputs = append(inputs, hi, lo)
	}
	// and random inputs.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		var x [spec.MLPInputs]int64
		for i := range x {
			x[i] = rng.Int64N(256) - 128
		}
		inputs = append(inputs, x)
	}
	classes := map[int]bool{}
	for _, x := range inputs {
		_, class := spec.MLPInfer(x)
		classes[class] = true
		if err := isSolved(t, mlpDef, mlpCase(x)); err != nil {
			t.Errorf("x=%v: honest assignment rejected: %v", x, err)
		}
	}
	t.Logf("classes covered: %v", classes)
}

func TestMLPWrongAssignmentFails(t *testing.T) {
	x := [spec.MLPInputs]int64{12, -7, 100, -128, 127, 0, 3, -55, 64, 9, -1, 33, -90, 18, 77, -20}
	scores, class := spec.MLPInfer(x)
	type mutate func(c *mlpInferCircuit)
	cases := map[string]mutate{
		"score+1":     func(c *mlpInferCircuit) { c.Scores[0] = elem(scores[0] + 1) },
		"score-1":     func(c *mlpInferCircuit) { c.Scores[3] = elem(scores[3] - 1) },
		"other class": func(c *mlpInferCircuit) { c.Class = elem(int64((class + 1) % spec.MLPOutputs)) },
		"class 4":     func(c *mlpInferCircuit) { c.Class = elem(4) },
		"class -1":    func(c *mlpInferCircuit) { c.Class = elem(-1) },
		"other x":     func(c *mlpInferCircuit) { c.X[2] = elem(x[2] + 1) },
		"x 128":       func(c *mlpInferCircuit) { c.X[0] = elem(128) },
		"x -129":      func(c *mlpInferCircuit) { c.X[0] = elem(-129) },
	}
	// Every wrong class must fail, not only the next one.
	for k := range spec.MLPOutputs {
		if k != class {
			cases[fmt.Sprintf("class %d of %d", k, class)] = func(c *mlpInferCircuit) { c.Class = elem(int64(k)) }
		}
	}
	for name, m := range cases {
		c := mlpCase(x)
		m(c)
		if err := isSolved(t, mlpDef, c); err == nil {
			t.Errorf("%s: wrong assignment accepted", name)
		}
	}
}

func TestMLPReLUAndShift(t *testing.T) {
	// An input that drives an accumulator negative must give h = 0, and a
	// claimed output computed without the ReLU (or without the shift) must
	// be rejected.
	x := [spec.MLPInputs]int64{12, -7, 100, -128, 127, 0, 3, -55, 64, 9, -1, 33, -90, 18, 77, -20}
	acc, h := spec.MLPHiddenLayer(x)
	var noReLU, noShift [spec.MLPHidden]int64
	negatives := 0
	for j := range acc {
		noReLU[j] = acc[j] >> spec.MLPShift
		noShift[j] = max(acc[j], 0)
		if acc[j] < 0 {
			negatives++
		}
	}
	if negatives == 0 {
		t.Fatal("test input has no negative accumulator")
	}
	for name, hh := range map[string][spec.MLPHidden]int64{"without ReLU": noReLU, "without shift": noShift} {
		if hh == h {
			t.Fatalf("%s: same hidden layer", name)
		}
		var s [spec.MLPOutputs]int64
		class := 0
		for k := range spec.MLPOutputs {
			s[k] = spec.MLPB2[k]
			for j := range spec.MLPHidden {
				s[k] += spec.MLPW2[k][j] * hh[j]
			}
			if s[k] > s[class] {
				class = k
			}
		}
		c := mlpAssignment(mlpInput{X: x}, mlpOutput{Scores: s, Class: int64(class)}, elem(1))
		if err := isSolved(t, mlpDef, c); err == nil {
			t.Errorf("%s: output accepted", name)
		}
	}
}

func TestMLPTieGoesToLowestIndex(t *testing.T) {
	x, lo, hi := findTie(t)
	c := mlpCase(x)
	if err := isSolved(t, mlpDef, c); err != nil {
		t.Fatalf("honest tie (classes %d and %d) rejected: %v", lo, hi, err)
	}
	c.Class = elem(int64(hi))
	if err := isSolved(t, mlpDef, c); err == nil {
		t.Errorf("tie between %d and %d: higher index %d accepted", lo, hi, hi)
	}
}

// TestMLPDecompositionsAreBound tampers with every bit decomposition the
// prover supplies (the range checks of x, the sign/shift/remainder split of
// every hidden accumulator, the class bits and the argmax differences): a
// malicious prover controls exactly these hint outputs, and any change to
// one of them must leave the constraint system unsatisfied.
func TestMLPDecompositionsAreBound(t *testing.T) {
	x := [spec.MLPInputs]int64{12, -7, 100, -128, 127, 0, 3, -55, 64, 9, -1, 33, -90, 18, 77, -20}
	var nBitsHint solver.Hint
	for _, h := range bits.GetHints() {
		if strings.HasSuffix(solver.GetHintName(h), ".nBits") {
			nBitsHint = h
		}
	}
	if nBitsHint == nil {
		t.Fatal("gnark's nBits hint not found")
	}
	id := solver.GetHintID(nBitsHint)
	// count the decompositions.
	calls := 0
	counting := func(m *big.Int, in, out []*big.Int) error { calls++; return nBitsHint(m, in, out) }
	if err := isSolved(t, mlpDef, mlpCase(x), solver.OverrideHint(id, counting)); err != nil {
		t.Fatal(err)
	}
	if want := spec.MLPInputs + spec.MLPHidden + 1 + spec.MLPOutputs; calls != want {
		t.Fatalf("%d decompositions, want %d", calls, want)
	}
	for target := range calls {
		for _, flip := range []int{0, 1, 6, 7, 8, 18, 19, 22} {
			call, flipped := 0, false
			tampered := func(m *big.Int, in, out []*big.Int) error {
				defer func() { call++ }()
				if err := nBitsHint(m, in, out); err != nil {
					return err
				}
				if call == target && flip < len(out) {
					out[flip].SetUint64(1 - out[flip].Uint64())
					flipped = true
				}
				return nil
			}
			err := isSolved(t, mlpDef, mlpCase(x), solver.OverrideHint(id, tampered))
			if flipped && err == nil {
				t.Errorf("decomposition %d with bit %d flipped accepted", target, flip)
			}
		}
	}
}

// TestMLPBounds recomputes from the weights the bounds the circuit relies
// on: |acc1| < 2^MLPAcc1Bits for every int8 input, and |score| <
// 2^MLPScoreBits for every hidden vector below 2^MLPHiddenBits (not only
// reachable ones: the argmax range check must hold for any witness).
func TestMLPBounds(t *testing.T) {
	if spec.MLPAcc1Bits-spec.MLPShift != spec.MLPHiddenBits {
		t.Fatalf("hidden bits %d, want acc bits - shift = %d", spec.MLPHiddenBits, spec.MLPAcc1Bits-spec.MLPShift)
	}
	for j := range spec.MLPHidden {
		hi, lo := spec.MLPB1[j], spec.MLPB1[j]
		for i := range spec.MLPInputs {
			w := spec.MLPW1[j][i]
			hi += max(127*w, -128*w)
			lo += min(127*w, -128*w)
		}
		if hi >= 1<<spec.MLPAcc1Bits || lo <= -(1<<spec.MLPAcc1Bits) {
			t.Errorf("hidden %d: accumulator range [%d, %d] exceeds 2^%d", j, lo, hi, spec.MLPAcc1Bits)
		}
	}
	const hmax = 1<<spec.MLPHiddenBits - 1
	for k := range spec.MLPOutputs {
		hi, lo := spec.MLPB2[k], spec.MLPB2[k]
		for j := range spec.MLPHidden {
			w := spec.MLPW2[k][j]
			hi += max(0, w*hmax)
			lo += min(0, w*hmax)
		}
		if hi >= 1<<spec.MLPScoreBits || lo <= -(1<<spec.MLPScoreBits) {
			t.Errorf("score %d: range [%d, %d] exceeds 2^%d", k, lo, hi, spec.MLPScoreBits)
		}
	}
}

func TestBinding(t *testing.T) {
	a := Binding([]byte("task-a"), []byte("exec-1"))
	cases := map[string]*big.Int{
		"other task":     Binding([]byte("task-b"), []byte("exec-1")),
		"other executor": Binding([]byte("task-a"), []byte("exec-2")),
		// the length prefixes keep the split between the two ids.
		"shifted split": Binding([]byte("task-ae"), []byte("xec-1")),
	}
	for name, b := range cases {
		if a.Cmp(b) == 0 {
			t.Errorf("%s: same binding", name)
		}
	}
	if a.Cmp(fr.Modulus()) >= 0 || a.Sign() < 0 {
		t.Errorf("binding %s not reduced", a)
	}
	// A fixed vector, so that other implementations can check theirs.
	if got, want := Binding([]byte{1, 2, 3}, []byte("peer")).Text(16), bindingVector; got != want {
		t.Errorf("Binding(0x010203, \"peer\") = %s, want %s", got, want)
	}
	for _, bad := range []*big.Int{nil, big.NewInt(-1), fr.Modulus()} {
		if _, err := bindingElement(bad); !errors.Is(err, ErrBadInput) {
			t.Errorf("binding %v: %v, want ErrBadInput", bad, err)
		}
	}
}

// bindingVector is Binding([]byte{1, 2, 3}, []byte("peer")) in hex,
// computed independently (Python hashlib).
const bindingVector = "27e4f081e7b78552845e6507673586221fa3c049fb01b44095350e781d65e2ae"
