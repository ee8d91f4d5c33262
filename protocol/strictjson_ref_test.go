package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/internal/testkeys"
)

// The token-walk implementation of the key check that the single-pass
// scanner (strictjson.go) replaced, kept as the reference of the
// differential fuzz target FuzzKeyScannerMatchesReference: it walks
// encoding/json's Decoder.Token stream, which is slow (a few hundred
// allocations per heartbeat) but whose semantics the scanner must keep.

// decodeJSONRef is decodeJSON with the reference key check.
func decodeJSONRef(data []byte, limit int, v any, strictFields bool) error {
	if len(data) > limit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrOversized, len(data), limit)
	}
	if err := checkKeysRef(data, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if strictFields {
		dec.DisallowUnknownFields()
	}
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if rest := bytes.Trim(data[dec.InputOffset():], jsonSpace); len(rest) > 0 {
		return fmt.Errorf("%w: trailing data after JSON value", ErrMalformed)
	}
	return nil
}

// keyFrameRef is one open object or array of checkKeysRef's walk.
type keyFrameRef struct {
	object bool
	typ    reflect.Type // Go type the container decodes into; nil: unknown (any, RawMessage)
	seen   map[string]bool
	path   string
	// Objects alternate key and value; key is the pending key (its type in
	// valTyp) while a value is expected.
	wantValue bool
	key       string
	valTyp    reflect.Type
}

// checkKeysRef walks data's tokens once alongside the Go type it will
// decode into, and refuses duplicate keys and keys that match a struct
// field only case-insensitively. Syntax errors are left to the decoder.
func checkKeysRef(data []byte, typ reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*keyFrameRef
	child := func() (reflect.Type, string) {
		if len(stack) == 0 {
			return typ, "$"
		}
		f := stack[len(stack)-1]
		if f.object {
			return f.valTyp, f.path + "." + f.key
		}
		return elemTypeRef(f.typ), f.path + "[]"
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil // the decoder reports syntax errors with their offset
		}
		top := (*keyFrameRef)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && !top.wantValue {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			key, _ := tok.(string)
			if top.seen[key] {
				return fmt.Errorf("%w: duplicate key %q in %s", ErrMalformed, key, top.path)
			}
			top.seen[key] = true
			vt, err := fieldTypeRef(top.typ, key, top.path)
			if err != nil {
				return err
			}
			top.key, top.valTyp, top.wantValue = key, vt, true
			continue
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				t, path := child()
				if top != nil && top.object {
					top.wantValue = false
				}
				stack = append(stack, &keyFrameRef{object: d == '{', typ: derefRef(t), seen: map[string]bool{}, path: path})
			case ']':
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top != nil && top.object {
			top.wantValue = false // a scalar value ends the member
		}
	}
}

func derefRef(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t == reflect.TypeFor[json.RawMessage]() || t.Kind() == reflect.Interface ||
		reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil
	}
	return t
}

func elemTypeRef(t reflect.Type) reflect.Type {
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		return t.Elem()
	}
	return nil
}

func fieldTypeRef(t reflect.Type, key, path string) (reflect.Type, error) {
	if t == nil {
		return nil, nil
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem(), nil
	case reflect.Struct:
		fields := jsonFields(t)
		if ft, ok := fields[key]; ok {
			return ft, nil
		}
		for name := range fields {
			if strings.EqualFold(name, key) {
				return nil, fmt.Errorf("%w: key %q in %s matches field %q only case-insensitively", ErrMalformed, key, path, name)
			}
		}
	}
	return nil, nil
}

// diffShape has what checkKeys follows into: an embedded struct with a
// shadowed field, raw messages, a custom unmarshaler, pointers to
// pointers, arrays, maps of structs and of lists, untyped values,
// untagged and skipped fields.
type diffShape struct {
	diffInner
	Over     string                      `json:"over"`
	Named    diffInner                   `json:"named"`
	Raw      json.RawMessage             `json:"raw"`
	Custom   customJSON                  `json:"custom"`
	PP       **diffInner                 `json:"pp"`
	Pair     [2]diffInner                `json:"pair"`
	ByName   map[string]diffInner        `json:"by_name"`
	Lists    map[string][]map[string]int `json:"lists"`
	Any      any                         `json:"any"`
	Num      json.Number                 `json:"num"`
	Untagged int
	Skip     int    `json:"-"`
	Kind     string `json:"kind"`
}

type diffInner struct {
	Inner string `json:"inner"`
	Over  int    `json:"over"`
}

// customJSON keeps its JSON as it came.
type customJSON struct{ raw []byte }

func (c *customJSON) UnmarshalJSON(b []byte) error {
	c.raw = append([]byte(nil), b...)
	return nil
}

// BenchmarkDecodeWireHeartbeat decodes the same heartbeat (the shape of
// mesh's BenchmarkHeartbeatHandling, with a newer release's unknown
// field) with the key scanner and with the reference token walk, in one
// run: compare the allocations, and the times as a ratio.
func BenchmarkDecodeWireHeartbeat(b *testing.B) {
	_, me := testkeys.New(b)
	h := validHeartbeat(me, 1, time.Now())
	h.Capabilities = Capabilities{CapCPUCores: 8, CapMemoryGB: 32, CapGPUAvailable: false, CapBandwidthMbps: 1000, CapNodeType: NodeTypeCompute, CapRegion: "eu-west-1"}
	h.NodeType, h.Region, h.Version = NodeTypeCompute, "eu-west-1", "proofmesh/0.1.0"
	h.TaskTypes, h.ListenAddrs = []string{"wasm", "mimc-chain"}, []string{"/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/udp/4001/quic-v1"}
	hb, _ := h.Encode()
	data := append(hb[:len(hb)-1:len(hb)-1], `,"nat":{"reachability":"public"}}`...)
	for _, c := range []struct {
		name   string
		decode func([]byte, int, any, bool) error
	}{{"scanner", decodeJSON}, {"token-walk", decodeJSONRef}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var got Heartbeat
				if err := c.decode(data, MaxHeartbeatBytes, &got, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
