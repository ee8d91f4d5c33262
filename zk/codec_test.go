package zk

import (
	"bytes"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/proofmesh/proofmesh/protocol/spec"
)

var rMinus1 = new(big.Int).Sub(fr.Modulus(), big.NewInt(1)).String()

func TestParseMiMC(t *testing.T) {
	good := map[string]string{
		`{"x":"0"}`:               "0",
		`{"x":"42"}`:              "42",
		` { "x" : "42" } `:        "42",
		`{"x":"` + rMinus1 + `"}`: rMinus1,
	}
	for in, want := range good {
		got, err := parseMiMCInput([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if decimal(got.X) != want {
			t.Errorf("%s: x = %s, want %s", in, decimal(got.X), want)
		}
	}
	bad := []string{
		``, `null`, `[]`, `"42"`, `{}`, `{"x":42}`, `{"x":"042"}`, `{"x":"-1"}`, `{"x":"+1"}`,
		`{"x":" 1"}`, `{"x":"1e3"}`, `{"x":""}`, `{"x":"\u0031"}`, `{"x":"` + fr.Modulus().String() + `"}`,
		`{"x":"1","x":"1"}`, `{"x":"1","y":"1"}`, `{"X":"1"}`, `{"x":"1"} {}`, `{"x":"1"`, `{"x":"1"}]`,
		`{"x":"` + strings.Repeat("9", 100) + `"}`, `{"x":"１"}`,
	}
	for _, in := range bad {
		if _, err := parseMiMCInput([]byte(in)); !errors.Is(err, ErrBadInput) {
			t.Errorf("input %s: %v, want ErrBadInput", in, err)
		}
		out := strings.Replace(in, `"x"`, `"y"`, 1)
		if _, err := parseMiMCOutput([]byte(out)); !errors.Is(err, ErrBadOutput) {
			t.Errorf("output %s: %v, want ErrBadOutput", out, err)
		}
	}
	if _, err := parseMiMCInput(append([]byte(`{"x":"1"}`), bytes.Repeat([]byte(" "), MaxTaskJSONBytes)...)); !errors.Is(err, ErrBadInput) {
		t.Errorf("oversized input: %v", err)
	}
}

func TestParseMLP(t *testing.T) {
	x := [spec.MLPInputs]int64{-128, 127, 0, 1, -1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	in, err := parseMLPInput(formatMLPInput(x))
	if err != nil || in.X != x {
		t.Fatalf("round trip: %v %v", in.X, err)
	}
	spaced := []byte(`{ "x" : [ -128 , 127 , 0 , 1 , -1 , 2 , 3 , 4 , 5 , 6 , 7 , 8 , 9 , 10 , 11 , 12 ] }`)
	if in, err := parseMLPInput(spaced); err != nil || in.X != x {
		t.Errorf("whitespace: %v %v", in.X, err)
	}
	zeros := func(first string, n int) string {
		return `{"x":[` + first + strings.Repeat(",0", n-1) + `]}`
	}
	bad := []string{
		zeros("128", 16), zeros("-129", 16), zeros("0", 15), zeros("0", 17), zeros("1.0", 16), zeros("1e1", 16),
		zeros(`"1"`, 16), zeros("-0", 16), zeros("01", 16), zeros("null", 16), `{"x":{}}`, `{"x":[]}`, `{"x":null}`,
		zeros("99999999999999999999999", 16), `{"x":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"y":1}`,
	}
	for _, in := range bad {
		if _, err := parseMLPInput([]byte(in)); !errors.Is(err, ErrBadInput) {
			t.Errorf("%s: %v, want ErrBadInput", in, err)
		}
	}
	out, err := parseMLPOutput([]byte(`{"class":2,"scores":[1,-2,3,-4]}`))
	if err != nil || out.Class != 2 || out.Scores != [4]int64{1, -2, 3, -4} {
		t.Errorf("output: %+v %v", out, err)
	}
	badOut := []string{
		`{"scores":[1,2,3,4]}`, `{"class":0}`, `{"scores":[1,2,3,4],"class":4}`, `{"scores":[1,2,3,4],"class":-1}`,
		`{"scores":[1,2,3],"class":0}`, `{"scores":[1,2,3,4,5],"class":0}`, `{"scores":[4194304,0,0,0],"class":0}`,
		`{"scores":[1,2,3,4],"class":0,"extra":1}`, `{"scores":[1,2,3,4],"class":"0"}`, `{"scores":[1,2,3,4],"class":0.0}`,
	}
	for _, o := range badOut {
		if _, err := parseMLPOutput([]byte(o)); !errors.Is(err, ErrBadOutput) {
			t.Errorf("%s: %v, want ErrBadOutput", o, err)
		}
	}
}

func TestDecimalIsCanonical(t *testing.T) {
	var e fr.Element
	e.SetInt64(-5) // fr.Element.String would write "-5"
	if got := decimal(e); got != new(big.Int).Sub(fr.Modulus(), big.NewInt(5)).String() {
		t.Errorf("decimal(r-5) = %s", got)
	}
	if _, err := parseFieldDecimal([]byte(`"` + decimal(e) + `"`)); err != nil {
		t.Error(err)
	}
}
