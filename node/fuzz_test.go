package node

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/zk"
)

// FuzzVerifyBundle feeds outside bytes to the offline verifier: it never
// panics, and everything it refuses wraps ErrBadBundle.
func FuzzVerifyBundle(f *testing.F) {
	keys, err := zk.DefaultKeys()
	if err != nil {
		f.Fatal(err)
	}
	reg := bootstrap.DefaultNetwork().Registry()
	f.Add([]byte(`{"format":"proofmesh-bundle/v2","task":"AAAA","results":["AAAA"]}`))
	f.Add([]byte(`{"format":"proofmesh-bundle/v2","task":"","results":[]}`))
	f.Add([]byte(`{"format":"proofmesh-bundle/v2","FORMAT":"x","task":"","results":[],"results":[]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := VerifyBundle(data, reg, keys)
		if err != nil {
			if !errors.Is(err, ErrBadBundle) || rep.Valid {
				t.Fatalf("refusal %v (valid=%v) does not wrap ErrBadBundle", err, rep.Valid)
			}
			return
		}
		if !rep.Valid {
			t.Fatal("no error but not valid")
		}
	})
}

// FuzzDecodeInput feeds the API's "input" field to the submission decoder.
func FuzzDecodeInput(f *testing.F) {
	reg := bootstrap.DefaultNetwork().Registry()
	f.Add([]byte(`{"x":"1"}`), "mimc.chain.v1")
	f.Add([]byte(`"aGVsbG8="`), "wasm.exec.v1")
	f.Fuzz(func(t *testing.T, raw []byte, typ string) {
		tt, err := reg.Lookup(typ)
		if err != nil {
			return
		}
		in, err := decodeInput(tt, json.RawMessage(raw))
		if err == nil && tt.ModuleHash != "" && !json.Valid(in) {
			t.Fatalf("typed input decoded to invalid JSON %q", in)
		}
	})
}

// Parser differential: a bundle with a duplicated key, a case variant of
// a key, or two results lists is refused, not read one way here and
// another elsewhere.
func TestBundleWithDuplicateOrCaseVariantKeysRefused(t *testing.T) {
	keys, err := zk.DefaultKeys()
	if err != nil {
		t.Fatal(err)
	}
	reg := bootstrap.DefaultNetwork().Registry()
	for _, b := range []string{
		`{"format":"proofmesh-bundle/v2","format":"proofmesh-bundle/v2","task":"","results":[]}`,
		`{"FORMAT":"proofmesh-bundle/v2","task":"","results":[]}`,
		`{"format":"proofmesh-bundle/v2","task":"","results":[],"results":[]}`,
	} {
		_, err := VerifyBundle([]byte(b), reg, keys)
		if !errors.Is(err, ErrBadBundle) || !(strings.Contains(err.Error(), "duplicate") || strings.Contains(err.Error(), "case")) {
			t.Errorf("%s: %v", b, err)
		}
	}
}
