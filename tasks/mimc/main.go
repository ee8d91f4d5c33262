//go:build wasip1

// Command mimc is the WASM guest of the mimc.chain.v1 task type.
//
// It reads {"x": "<decimal field element>"} on stdin and writes
// {"y":"<decimal>"} on stdout, where y is spec.MiMCChainLength iterations of
// gnark-crypto's MiMC-BN254 over x (see protocol/spec). An input that is not
// exactly that object, or whose x is not a canonical decimal element of the
// BN254 scalar field, makes it exit with status 1 and a message on stderr.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr/mimc"

	"github.com/proofmesh/proofmesh/protocol/spec"
)

// maxInput bounds what the guest reads; the sandbox bounds it too.
const maxInput = 4096

func main() {
	out, err := run(os.Stdin)
	if err == nil {
		_, err = os.Stdout.Write(out)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mimc.chain.v1: %v\n", err)
		os.Exit(1)
	}
}

func run(r io.Reader) ([]byte, error) {
	in, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	if len(in) > maxInput {
		return nil, fmt.Errorf("input longer than %d bytes", maxInput)
	}
	x, err := parseInput(in)
	if err != nil {
		return nil, err
	}
	y, err := chain(x)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Y string `json:"y"`
	}{Y: y.String()})
}

// parseInput accepts exactly {"x": "<canonical decimal < r>"}.
func parseInput(in []byte) (*big.Int, error) {
	var msg struct {
		X *string `json:"x"`
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&msg); err != nil {
		return nil, fmt.Errorf(`input must be {"x": "<decimal field element>"}: %w`, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("input has data after the JSON object")
	}
	if msg.X == nil {
		return nil, errors.New(`input lacks "x"`)
	}
	s := *msg.X
	if s == "" {
		return nil, errors.New("x is empty: want a decimal field element")
	}
	if len(s) > 1 && s[0] == '0' {
		return nil, fmt.Errorf("x %q has a leading zero: write it canonically", s)
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("x %q is not a decimal number (digits 0-9 only, no sign)", s)
		}
	}
	x, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("x %q is not a decimal number", s)
	}
	if x.Cmp(fr.Modulus()) >= 0 {
		return nil, fmt.Errorf("x is not below the BN254 scalar field modulus %s", fr.Modulus())
	}
	return x, nil
}

// chain computes h(spec.MiMCChainLength) with h0 = x, h(i+1) = MiMC(h(i)).
func chain(x *big.Int) (*big.Int, error) {
	var buf [fr.Bytes]byte
	x.FillBytes(buf[:])
	h := buf[:]
	for range spec.MiMCChainLength {
		m := mimc.NewMiMC()
		if _, err := m.Write(h); err != nil {
			return nil, fmt.Errorf("mimc: %w", err)
		}
		h = m.Sum(nil)
	}
	return new(big.Int).SetBytes(h), nil
}
