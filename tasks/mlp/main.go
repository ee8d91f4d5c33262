//go:build wasip1

// Command mlp is the WASM guest of the mlp.infer.v1 task type.
//
// It reads {"x": [16 integers in -128..127]} on stdin and writes
// {"scores":[4 integers],"class":k} on stdout, computed by spec.MLPInfer.
// Any other input makes it exit with status 1 and a message on stderr.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

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
		fmt.Fprintf(os.Stderr, "mlp.infer.v1: %v\n", err)
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
	scores, class := spec.MLPInfer(x)
	return json.Marshal(struct {
		Scores [spec.MLPOutputs]int64 `json:"scores"`
		Class  int                    `json:"class"`
	}{scores, class})
}

// parseInput accepts exactly {"x": [16 integers in -128..127]}.
func parseInput(in []byte) (x [spec.MLPInputs]int64, err error) {
	var msg struct {
		X *[]int64 `json:"x"`
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&msg); err != nil {
		return x, fmt.Errorf(`input must be {"x": [%d integers in -128..127]}: %w`, spec.MLPInputs, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return x, errors.New("input has data after the JSON object")
	}
	if msg.X == nil {
		return x, errors.New(`input lacks "x"`)
	}
	v := *msg.X
	if len(v) != spec.MLPInputs {
		return x, fmt.Errorf("x has %d values, want exactly %d", len(v), spec.MLPInputs)
	}
	for i, e := range v {
		if e < -128 || e > 127 {
			return x, fmt.Errorf("x[%d] = %d is outside -128..127", i, e)
		}
		x[i] = e
	}
	return x, nil
}
