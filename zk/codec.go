package zk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/proofmesh/proofmesh/protocol/spec"
)

// MaxTaskJSONBytes bounds the task input and output JSON this package parses.
// The typed tasks' JSON is a few hundred bytes at most.
const MaxTaskJSONBytes = 4 << 10

// maxDecimalDigits is the number of decimal digits of r-1 (77) plus one.
const maxDecimalDigits = 78

// mimcInput is the parsed input of mimc.chain.v1.
type mimcInput struct{ X fr.Element }

// mimcOutput is the parsed output of mimc.chain.v1.
type mimcOutput struct{ Y fr.Element }

// mlpInput is the parsed input of mlp.infer.v1.
type mlpInput struct{ X [spec.MLPInputs]int64 }

// mlpOutput is the parsed output of mlp.infer.v1.
type mlpOutput struct {
	Scores [spec.MLPOutputs]int64
	Class  int64
}

// decodeObject reads one JSON object whose keys are exactly those of fields,
// each present once, with nothing after it. Each value is returned raw.
func decodeObject(data []byte, fields ...string) (map[string]json.RawMessage, error) {
	if len(data) > MaxTaskJSONBytes {
		return nil, fmt.Errorf("%d bytes, more than the limit of %d", len(data), MaxTaskJSONBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	out := make(map[string]json.RawMessage, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("not a JSON object")
		}
		known := false
		for _, f := range fields {
			known = known || f == key
		}
		if !known {
			return nil, fmt.Errorf("unknown field %q (expected %q)", key, fields)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("field %q appears twice", key)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("field %q: %v", key, err)
		}
		out[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	for _, f := range fields {
		if _, ok := out[f]; !ok {
			return nil, fmt.Errorf("missing field %q", f)
		}
	}
	return out, nil
}

// parseFieldDecimal parses a JSON string holding a canonical field element
// in plain decimal: a quoted run of ASCII digits with no escapes, no sign,
// no leading zeros, less than r. Exactly one spelling is accepted for each
// element.
func parseFieldDecimal(raw json.RawMessage) (fr.Element, error) {
	var e fr.Element
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return e, errors.New("must be a JSON string of decimal digits")
	}
	s := raw[1 : len(raw)-1]
	if len(s) == 0 || len(s) > maxDecimalDigits {
		return e, fmt.Errorf("%d digits, want 1 to %d", len(s), maxDecimalDigits)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return e, errors.New("must hold decimal digits only (no sign, spaces or escapes)")
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return e, errors.New("leading zeros are not canonical")
	}
	v, _ := new(big.Int).SetString(string(s), 10)
	if v.Cmp(fr.Modulus()) >= 0 {
		return e, errors.New("not less than the BN254 scalar field order r")
	}
	e.SetBigInt(v)
	return e, nil
}

// parseInt parses a canonical JSON integer (no fraction, no exponent, no
// "-0") within [lo, hi].
func parseInt(raw json.RawMessage, lo, hi int64) (int64, error) {
	s := string(raw)
	digits := strings.TrimPrefix(s, "-")
	ok := len(digits) > 0 && len(digits) <= 19 && (digits == "0" || digits[0] != '0') && (s == digits || digits != "0")
	for i := 0; ok && i < len(digits); i++ {
		ok = digits[i] >= '0' && digits[i] <= '9'
	}
	if !ok {
		return 0, fmt.Errorf("%.24q is not a canonical JSON integer", s)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%.24s is outside %d..%d", s, lo, hi)
	}
	return v, nil
}

// parseIntArray parses a JSON array of exactly n integers within [lo, hi].
func parseIntArray(raw json.RawMessage, n int, lo, hi int64) ([]int64, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, errors.New("must be a JSON array")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	if len(items) != n {
		return nil, fmt.Errorf("%d values, want %d", len(items), n)
	}
	out := make([]int64, n)
	for i, it := range items {
		v, err := parseInt(it, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %v", i, err)
		}
		out[i] = v
	}
	return out, nil
}

func parseMiMCInput(data []byte) (mimcInput, error) {
	var in mimcInput
	obj, err := decodeObject(data, "x")
	if err != nil {
		return in, fmt.Errorf("%s input: %w: %v", spec.TypeMiMCChain, ErrBadInput, err)
	}
	if in.X, err = parseFieldDecimal(obj["x"]); err != nil {
		return in, fmt.Errorf("%s input: %w: x: %v", spec.TypeMiMCChain, ErrBadInput, err)
	}
	return in, nil
}

func parseMiMCOutput(data []byte) (mimcOutput, error) {
	var out mimcOutput
	obj, err := decodeObject(data, "y")
	if err != nil {
		return out, fmt.Errorf("%s output: %w: %v", spec.TypeMiMCChain, ErrBadOutput, err)
	}
	if out.Y, err = parseFieldDecimal(obj["y"]); err != nil {
		return out, fmt.Errorf("%s output: %w: y: %v", spec.TypeMiMCChain, ErrBadOutput, err)
	}
	return out, nil
}

func parseMLPInput(data []byte) (mlpInput, error) {
	var in mlpInput
	obj, err := decodeObject(data, "x")
	if err != nil {
		return in, fmt.Errorf("%s input: %w: %v", spec.TypeMLPInfer, ErrBadInput, err)
	}
	xs, err := parseIntArray(obj["x"], spec.MLPInputs, -128, 127)
	if err != nil {
		return in, fmt.Errorf("%s input: %w: x: %v", spec.TypeMLPInfer, ErrBadInput, err)
	}
	copy(in.X[:], xs)
	return in, nil
}

func parseMLPOutput(data []byte) (mlpOutput, error) {
	var out mlpOutput
	obj, err := decodeObject(data, "scores", "class")
	if err != nil {
		return out, fmt.Errorf("%s output: %w: %v", spec.TypeMLPInfer, ErrBadOutput, err)
	}
	const bound = int64(1)<<spec.MLPScoreBits - 1
	ss, err := parseIntArray(obj["scores"], spec.MLPOutputs, -bound, bound)
	if err != nil {
		return out, fmt.Errorf("%s output: %w: scores: %v", spec.TypeMLPInfer, ErrBadOutput, err)
	}
	copy(out.Scores[:], ss)
	if out.Class, err = parseInt(obj["class"], 0, spec.MLPOutputs-1); err != nil {
		return out, fmt.Errorf("%s output: %w: class: %v", spec.TypeMLPInfer, ErrBadOutput, err)
	}
	return out, nil
}

// decimal writes a field element as its canonical decimal representative
// in [0, r). (fr.Element.String writes elements close to r as negative
// numbers, which the strict parsers of this package refuse.)
func decimal(e fr.Element) string {
	var b big.Int
	return e.BigInt(&b).String()
}

// int64Element maps a signed integer to the field (negative values to r-|v|).
func int64Element(v int64) fr.Element {
	var e fr.Element
	e.SetInt64(v)
	return e
}

// formatMLPInput writes an mlp.infer.v1 input as task JSON.
func formatMLPInput(x [spec.MLPInputs]int64) []byte {
	return appendJSONInts([]byte(`{"x":`), x[:], '}')
}

// formatMLPOutput writes an mlp.infer.v1 output as task JSON.
func formatMLPOutput(scores [spec.MLPOutputs]int64, class int64) []byte {
	b := appendJSONInts([]byte(`{"scores":`), scores[:], ',')
	b = append(b, `"class":`...)
	b = strconv.AppendInt(b, class, 10)
	return append(b, '}')
}

func appendJSONInts(b []byte, vs []int64, closer byte) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, v, 10)
	}
	return append(b, ']', closer)
}
