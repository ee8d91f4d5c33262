package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
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
//   - unknown fields, trailing data, and more than limit bytes.
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
	if rest := bytes.Trim(data[dec.InputOffset():], jsonSpace); len(rest) > 0 {
		return fmt.Errorf("%w: trailing data after JSON value", ErrMalformed)
	}
	return nil
}

// jsonSpace is JSON's whitespace (RFC 8259): the only bytes allowed after
// a document. bytes.TrimSpace would also pass a vertical tab, U+0085 or a
// no-break space, which encoding/json refuses.
const jsonSpace = " \t\r\n"

// decodeStrict is DecodeStrict under the name the package's decoders use.
func decodeStrict(data []byte, limit int, v any) error { return DecodeStrict(data, limit, v) }

// decodeWire is DecodeWire under the name the package's decoders use.
func decodeWire(data []byte, limit int, v any) error { return DecodeWire(data, limit, v) }

// maxKeyDepth bounds the nesting checkKeys follows: encoding/json refuses
// deeper documents too (its scanner's limit), so nothing it would accept
// is refused, and the key check never stops short of a document the
// decoder goes on to read.
const maxKeyDepth = 10000

// linearKeys is how many keys of one object are compared one by one;
// beyond it the object's keys go into a map, so a wide object stays linear.
const linearKeys = 16

// scanFrame is one open object or array of checkKeys' scan.
type scanFrame struct {
	object bool
	shape  *shape
	keys   int                 // where this object's keys start on the key stack
	seen   map[string]struct{} // this object's keys, once it has more than linearKeys
	key    []byte              // the key whose value is being read (objects)
	valTyp reflect.Type        // the Go type of that value
}

// checkKeys scans data once, byte by byte, alongside the Go type it will
// decode into, and refuses duplicate keys (compared as encoding/json
// unquotes them) and keys that match a struct field only
// case-insensitively, at every depth, in objects the type does not know
// too. It follows values after the first the same way (the decoder then
// refuses them as trailing data). It allocates nothing for a document of
// modest nesting and width whose keys need no unquoting, and only for
// the error it returns. At a syntax error it stops and returns nil:
// the decoder reports it with its offset; a document nested deeper than
// maxKeyDepth is refused.
//
// It keeps the semantics of the token walk over encoding/json's
// Decoder.Token it replaced (strictjson_ref_test.go, compared by
// FuzzKeyScannerMatchesReference).
func checkKeys(data []byte, typ reflect.Type) error {
	var (
		frameBuf [16]scanFrame
		keyBuf   [32][]byte
		tmp      []byte // unquoted keys that needed it
	)
	frames, keys := frameBuf[:0], keyBuf[:0]
	const (
		wantValue = iota
		wantKey
		afterValue
	)
	state, i, n := wantValue, 0, len(data)
	for {
		for i < n && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
			i++
		}
		switch state {
		case wantValue:
			if i == n {
				return nil // the end of the input, or of a truncated one
			}
			switch c := data[i]; c {
			case '{', '[':
				if len(frames) == maxKeyDepth {
					return fmt.Errorf("%w: nesting deeper than %d levels", ErrMalformed, maxKeyDepth)
				}
				var t reflect.Type
				if len(frames) == 0 {
					t = typ
				} else if p := &frames[len(frames)-1]; p.object {
					t = p.valTyp
				} else if p.shape.kind == shapeList {
					t = p.shape.elem
				}
				frames = append(frames, scanFrame{object: c == '{', shape: shapeOf(t), keys: len(keys)})
				i++
				for i < n && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
					i++
				}
				if i < n && data[i] == c+2 { // '{'+2 is '}', '['+2 is ']'
					frames = frames[:len(frames)-1]
					i++
					state = afterValue
				} else if c == '{' {
					state = wantKey
				}
			case '"':
				end, _ := scanString(data, i)
				if end < 0 {
					return nil
				}
				i, state = end, afterValue
			case 't', 'f', 'n':
				lit := "null"
				if c == 't' {
					lit = "true"
				} else if c == 'f' {
					lit = "false"
				}
				if n-i < len(lit) || string(data[i:i+len(lit)]) != lit {
					return nil
				}
				i, state = i+len(lit), afterValue
			default:
				if i = scanNumber(data, i); i < 0 {
					return nil
				}
				state = afterValue
			}
		case wantKey:
			if i == n || data[i] != '"' {
				return nil
			}
			end, plain := scanString(data, i)
			if end < 0 {
				return nil
			}
			key := data[i+1 : end-1]
			if !plain {
				start := len(tmp)
				tmp = appendUnquoted(tmp, key)
				key = tmp[start:len(tmp):len(tmp)]
			}
			i = end
			f := &frames[len(frames)-1]
			if f.seen != nil {
				if _, dup := f.seen[string(key)]; dup {
					return fmt.Errorf("%w: duplicate key %q in %s", ErrMalformed, string(key), framePath(frames))
				}
				f.seen[string(key)] = struct{}{}
			} else {
				for _, k := range keys[f.keys:] {
					if string(k) == string(key) {
						return fmt.Errorf("%w: duplicate key %q in %s", ErrMalformed, string(key), framePath(frames))
					}
				}
				if len(keys)-f.keys < linearKeys {
					keys = append(keys, key)
				} else {
					f.seen = make(map[string]struct{}, 2*linearKeys)
					for _, k := range keys[f.keys:] {
						f.seen[string(k)] = struct{}{}
					}
					f.seen[string(key)] = struct{}{}
					keys = keys[:f.keys]
				}
			}
			vt, err := f.shape.field(key, frames)
			if err != nil {
				return err
			}
			f.key, f.valTyp = key, vt
			for i < n && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
				i++
			}
			if i == n || data[i] != ':' {
				return nil
			}
			i, state = i+1, wantValue
		case afterValue:
			if len(frames) == 0 {
				state = wantValue // a value after the first, or the end
				continue
			}
			if i == n {
				return nil
			}
			f := &frames[len(frames)-1]
			switch c := data[i]; {
			case c == ',':
				i, state = i+1, wantValue
				if f.object {
					state = wantKey
				}
			case c == '}' && f.object, c == ']' && !f.object:
				keys = keys[:f.keys]
				frames = frames[:len(frames)-1]
				i++
			default:
				return nil
			}
		}
	}
}

// framePath names the innermost open container of frames as the error
// messages do: $ for the top, .key for an object member, [] for an
// array element.
func framePath(frames []scanFrame) string {
	var b strings.Builder
	b.WriteString("$")
	for _, f := range frames[:len(frames)-1] {
		if f.object {
			b.WriteString(".")
			b.Write(f.key)
		} else {
			b.WriteString("[]")
		}
	}
	return b.String()
}

// scanString returns the end (one past the closing quote) of the JSON
// string starting at data[i], -1 if it is not valid JSON, and whether its
// bytes are its value as they stand (no escape, nothing beyond ASCII).
func scanString(data []byte, i int) (end int, plain bool) {
	plain = true
	for i++; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			return i + 1, plain
		case c < 0x20:
			return -1, false
		case c >= utf8.RuneSelf:
			plain = false
		case c == '\\':
			plain = false
			if i++; i == len(data) {
				return -1, false
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(data)-i < 5 {
					return -1, false
				}
				for _, h := range data[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1, false
					}
				}
				i += 4
			default:
				return -1, false
			}
		}
	}
	return -1, false
}

// scanNumber returns the end of the JSON number starting at data[i], -1
// if there is none.
func scanNumber(data []byte, i int) int {
	n := len(data)
	digits := func(i int) int {
		for i < n && '0' <= data[i] && data[i] <= '9' {
			i++
		}
		return i
	}
	if data[i] == '-' {
		i++
	}
	switch {
	case i < n && data[i] == '0':
		i++
	case i < n && '1' <= data[i] && data[i] <= '9':
		i = digits(i + 1)
	default:
		return -1
	}
	if i < n && data[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// appendUnquoted appends the value of a JSON string's contents s (valid,
// between its quotes) as encoding/json unquotes it: escapes resolved, a
// lone or broken surrogate and each byte of invalid UTF-8 replaced by
// U+FFFD, so that two keys encoding/json reads as one compare equal.
func appendUnquoted(dst, s []byte) []byte {
	for r := 0; r < len(s); {
		switch c := s[r]; {
		case c == '\\':
			r++
			switch e := s[r]; e {
			case 'b':
				dst, r = append(dst, '\b'), r+1
			case 'f':
				dst, r = append(dst, '\f'), r+1
			case 'n':
				dst, r = append(dst, '\n'), r+1
			case 'r':
				dst, r = append(dst, '\r'), r+1
			case 't':
				dst, r = append(dst, '\t'), r+1
			case 'u':
				rr := getu4(s[r-1:])
				r += 5
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != unicode.ReplacementChar {
						dst, r = utf8.AppendRune(dst, dec), r+6
						break
					}
					rr = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, rr)
			default: // '"', '\\', '/'
				dst, r = append(dst, e), r+1
			}
		case c < utf8.RuneSelf:
			dst, r = append(dst, c), r+1
		default:
			rr, size := utf8.DecodeRune(s[r:])
			dst, r = utf8.AppendRune(dst, rr), r+size
		}
	}
	return dst
}

// getu4 decodes \uXXXX at the start of s; -1 if there is none.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// shape is what checkKeys needs of the Go type a JSON container decodes
// into, computed once per type.
type shape struct {
	kind   shapeKind
	fields map[string]reflect.Type // shapeStruct: JSON names to field types
	names  [][]byte                // shapeStruct: the same names, sorted
	elem   reflect.Type            // shapeMap, shapeList: the element type
}

type shapeKind uint8

const (
	shapeOther  shapeKind = iota // nothing known: any, RawMessage, an Unmarshaler, a scalar
	shapeStruct                  // an object's keys name fields
	shapeMap                     // an object's values are elem
	shapeList                    // an array's elements are elem
)

var (
	shapes       sync.Map // reflect.Type -> *shape
	unknownShape = &shape{}
)

// shapeOf returns the shape of t (nil: unknown).
func shapeOf(t reflect.Type) *shape {
	if t == nil {
		return unknownShape
	}
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	s := &shape{}
	if d := deref(t); d != nil {
		switch d.Kind() {
		case reflect.Struct:
			s.kind, s.fields = shapeStruct, jsonFields(d)
			for name := range s.fields {
				s.names = append(s.names, []byte(name))
			}
			slices.SortFunc(s.names, bytes.Compare)
		case reflect.Map:
			s.kind, s.elem = shapeMap, d.Elem()
		case reflect.Slice, reflect.Array:
			s.kind, s.elem = shapeList, d.Elem()
		}
	}
	shapes.Store(t, s)
	return s
}

// field returns the Go type of key's value in an object of shape s (the
// innermost of frames): a struct field matched exactly, or a map's
// element; nil if unknown (DecodeStrict refuses it, DecodeWire skips
// it). A key that matches a field only when case is ignored is an error.
func (s *shape) field(key []byte, frames []scanFrame) (reflect.Type, error) {
	switch s.kind {
	case shapeMap:
		return s.elem, nil
	case shapeStruct:
		if ft, ok := s.fields[string(key)]; ok {
			return ft, nil
		}
		for _, name := range s.names {
			if bytes.EqualFold(name, key) {
				return nil, fmt.Errorf("%w: key %q in %s matches field %q only case-insensitively", ErrMalformed, string(key), framePath(frames), string(name))
			}
		}
	}
	return nil, nil
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
