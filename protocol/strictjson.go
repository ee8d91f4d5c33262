package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
)

// DecodeStrict decodes JSON of at most limit bytes into v: the parser for
// JSON that is not a wire message (policies, bundles, typed inputs). It
// refuses what encoding/json would quietly accept and another parser
// could read differently:
//
//   - a duplicate object key at any depth (encoding/json keeps the last,
//     other parsers the first);
//   - a key that names a field of v only case-insensitively ("FORMAT" for
//     "format");
//   - unknown fields, trailing data, and more than limit bytes;
//   - objects and arrays nested deeper than MaxJSONDepth.
//
// Numbers are kept exact (json.Number in interfaces). Errors wrap
// ErrMalformed (naming the key and its path) or ErrOversized.
func DecodeStrict(data []byte, limit int, v any) error { return decodeJSON(data, limit, v, true) }

// DecodeWire decodes a wire message (gossip, signed envelopes) of at most
// limit bytes into v. It is DecodeStrict except for one rule: a field this
// build does not know is skipped, so that a newer release of the same
// protocol major can add optional fields without its messages being
// refused (docs/PROTOCOL.md). Ids and signatures are over the exact bytes
// sent, so nothing is lost by skipping. Duplicate and case-variant keys
// stay refused at every depth (inside unknown fields too), known fields
// keep their types, and the size limit holds.
func DecodeWire(data []byte, limit int, v any) error { return decodeJSON(data, limit, v, false) }

func decodeJSON(data []byte, limit int, v any, strictFields bool) error {
	if len(data) > limit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrOversized, len(data), limit)
	}
	if err := checkKeys(data, reflect.TypeOf(v)); err != nil {
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
	// dec.More is false before a stray ']' or '}', so look at the bytes.
	if rest := bytes.TrimSpace(data[dec.InputOffset():]); len(rest) > 0 {
		return fmt.Errorf("%w: trailing data after JSON value", ErrMalformed)
	}
	return nil
}

// decodeStrict is DecodeStrict under the name the package's decoders use.
func decodeStrict(data []byte, limit int, v any) error { return DecodeStrict(data, limit, v) }

// decodeWire is DecodeWire under the name the package's decoders use.
func decodeWire(data []byte, limit int, v any) error { return DecodeWire(data, limit, v) }

// MaxJSONDepth is how deeply objects and arrays may nest in JSON the
// protocol decodes (wire messages, policies, bundles, typed inputs), far
// deeper than any of them nests. checkKeys keeps one frame and its path per
// level, so without it a message of n brackets cost O(n²) memory before
// encoding/json's own limit (10,000) is reached: 100 KB of '[' took
// 2.7 GB and a 512 KB result would have taken tens of GB.
const MaxJSONDepth = 64

// keyFrame is one open object or array of checkKeys' walk.
type keyFrame struct {
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

// checkKeys walks data's tokens once (linear in its size, iteratively, so
// nesting costs no Go stack) alongside the Go type it will decode into,
// and refuses duplicate keys, keys that match a struct field only
// case-insensitively, and nesting deeper than MaxJSONDepth. Syntax errors
// are left to the decoder.
func checkKeys(data []byte, typ reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*keyFrame
	// child returns the type and path of the value that comes next.
	child := func() (reflect.Type, string) {
		if len(stack) == 0 {
			return typ, "$"
		}
		f := stack[len(stack)-1]
		if f.object {
			return f.valTyp, f.path + "." + f.key
		}
		return elemType(f.typ), f.path + "[]"
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil // the decoder reports syntax errors with their offset
		}
		top := (*keyFrame)(nil)
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
			vt, err := fieldType(top.typ, key, top.path)
			if err != nil {
				return err
			}
			top.key, top.valTyp, top.wantValue = key, vt, true
			continue
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if len(stack) == MaxJSONDepth {
					return fmt.Errorf("%w: JSON nested deeper than %d levels", ErrMalformed, MaxJSONDepth)
				}
				t, path := child()
				if top != nil && top.object {
					top.wantValue = false
				}
				stack = append(stack, &keyFrame{object: d == '{', typ: deref(t), seen: map[string]bool{}, path: path})
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

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// deref strips pointers; nil for types whose content encoding/json does
// not map onto fields (interfaces, raw messages, custom unmarshalers).
func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t == rawMessageType || t.Kind() == reflect.Interface ||
		reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil
	}
	return t
}

func elemType(t reflect.Type) reflect.Type {
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		return t.Elem()
	}
	return nil
}

// fieldType returns the type of key's value inside an object decoded into
// t: a struct field matched exactly, or a map's element. A key that
// matches a field only when case is ignored is an error.
func fieldType(t reflect.Type, key, path string) (reflect.Type, error) {
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
	return nil, nil // unknown: DecodeStrict refuses it, DecodeWire skips it
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields maps the JSON names of a struct's fields (promoted ones of
// untagged embedded structs included) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					if _, ok := m[k]; !ok {
						m[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldCache.Store(t, m)
	return m
}
