package protocol

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// decodeHeartbeatFast decodes a heartbeat written in the plain form every
// node's Encode writes, without reflection: an object of known keys, each
// once, whose strings hold no escape, control character or invalid UTF-8,
// whose integers are plain integers and whose capabilities are strings,
// numbers and booleans. Whitespace and key order are free.
//
// It answers ok only for input that decodeWire decodes without error into
// the same value (FuzzHeartbeatFastPath holds it to that); anything else
// (an unknown key of a newer release, an escape, a null, a duplicate key,
// a malformed document) is not ok, and the caller decodes it with
// decodeWire, whose value or error stands. So it changes what a heartbeat
// costs to read, never what it means.
//
// prev (nil: none) is an earlier heartbeat of the same node: a string
// equal to the one prev holds in the same place is taken from prev rather
// than allocated again (strings are immutable; prev's slices and map are
// not shared).
func decodeHeartbeatFast(data []byte, prev *Heartbeat) (*Heartbeat, bool) {
	if len(data) > MaxHeartbeatBytes {
		return nil, false
	}
	if prev == nil {
		prev = &Heartbeat{}
	}
	s := plainScanner{b: data, prev: prev}
	h := new(Heartbeat)
	if !s.take('{') {
		return nil, false
	}
	var seen uint16
	if !s.take('}') {
		for {
			key, ok := s.raw()
			if !ok || !s.take(':') {
				return nil, false
			}
			bit, ok := s.field(h, key)
			if !ok || seen&bit != 0 {
				return nil, false
			}
			seen |= bit
			if s.take(',') {
				continue
			}
			if s.take('}') {
				break
			}
			return nil, false
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, false
	}
	return h, true
}

// plainScanner reads the plain JSON subset decodeHeartbeatFast accepts.
// Every method answers false for anything outside it.
type plainScanner struct {
	b    []byte
	i    int
	prev *Heartbeat // never nil
}

// field reads the value of key into h and returns the key's bit.
func (s *plainScanner) field(h *Heartbeat, key []byte) (uint16, bool) {
	var ok bool
	p := s.prev
	switch string(key) {
	case "node_id":
		h.NodeID, ok = s.str(p.NodeID)
		return 1 << 0, ok
	case "seq":
		h.Seq, ok = s.uint()
		return 1 << 1, ok
	case "time":
		h.Time, ok = s.int()
		return 1 << 2, ok
	case "capabilities":
		h.Capabilities, ok = s.caps()
		return 1 << 3, ok
	case "policy_version":
		var v int64
		v, ok = s.int()
		h.PolicyVersion = int(v) // int is 64 bits wide wherever this builds
		return 1 << 4, ok && int64(h.PolicyVersion) == v
	case "node_type":
		h.NodeType, ok = s.str(p.NodeType)
		return 1 << 5, ok
	case "region":
		h.Region, ok = s.str(p.Region)
		return 1 << 6, ok
	case "load":
		h.Load, ok = s.float()
		return 1 << 7, ok
	case "health":
		h.Health, ok = s.float()
		return 1 << 8, ok
	case "version":
		h.Version, ok = s.str(p.Version)
		return 1 << 9, ok
	case "task_types":
		h.TaskTypes, ok = s.strs(p.TaskTypes)
		return 1 << 10, ok
	case "listen_addrs":
		h.ListenAddrs, ok = s.strs(p.ListenAddrs)
		return 1 << 11, ok
	case "interval_ms":
		h.IntervalMS, ok = s.int()
		return 1 << 12, ok
	case "refutes":
		h.Refutes, ok = s.uint()
		return 1 << 13, ok
	}
	return 0, false
}

// ws skips JSON whitespace.
func (s *plainScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// take consumes c, after whitespace, if it comes next.
func (s *plainScanner) take(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// raw reads a string with no escape and no control character, in valid
// UTF-8, and returns its bytes: exactly what encoding/json would decode.
func (s *plainScanner) raw() ([]byte, bool) {
	if !s.take('"') {
		return nil, false
	}
	start := s.i
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := s.b[start:j]
			if !utf8.Valid(v) {
				return nil, false
			}
			s.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// str reads a string as raw does; one equal to old is old.
func (s *plainScanner) str(old string) (string, bool) {
	v, ok := s.raw()
	if !ok {
		return "", false
	}
	if string(v) == old {
		return old, true
	}
	return string(v), true
}

// strs reads an array of strings (an empty one as an empty, non-nil
// slice, as encoding/json does); an element equal to old's in the same
// place is old's.
func (s *plainScanner) strs(old []string) ([]string, bool) {
	if !s.take('[') {
		return nil, false
	}
	out := make([]string, 0, len(old))
	if s.take(']') {
		return out, true
	}
	for {
		var was string
		if len(out) < len(old) {
			was = old[len(out)]
		}
		v, ok := s.str(was)
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if s.take(',') {
			continue
		}
		return out, s.take(']')
	}
}

// number reads a JSON number's literal; integer reports whether it has
// neither fraction nor exponent.
func (s *plainScanner) number() (lit []byte, integer, ok bool) {
	s.ws()
	b, start := s.b, s.i
	j := start
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	default:
		return nil, false, false
	}
	integer = true
	if j < len(b) && b[j] == '.' {
		integer = false
		j++
		if j >= len(b) || b[j] < '0' || b[j] > '9' {
			return nil, false, false
		}
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		integer = false
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || b[j] < '0' || b[j] > '9' {
			return nil, false, false
		}
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	}
	s.i = j
	return b[start:j], integer, true
}

// uint reads an unsigned integer as encoding/json reads one into a
// uint64 (strconv.ParseUint): digits only, no overflow.
func (s *plainScanner) uint() (uint64, bool) {
	lit, integer, ok := s.number()
	if !ok || !integer || lit[0] == '-' {
		return 0, false
	}
	var v uint64
	for _, c := range lit {
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// int reads an integer as encoding/json reads one into an int64
// (strconv.ParseInt): an optional minus, digits, no overflow.
func (s *plainScanner) int() (int64, bool) {
	lit, integer, ok := s.number()
	if !ok || !integer {
		return 0, false
	}
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // -2^63
	}
	var v uint64
	for _, c := range lit {
		d := uint64(c - '0')
		if v > (limit-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		return -int64(v), true // -2^63 wraps onto itself
	}
	return int64(v), true
}

// float reads a number as encoding/json reads one into a float64.
func (s *plainScanner) float() (float64, bool) {
	lit, _, ok := s.number()
	if !ok {
		return 0, false
	}
	switch string(lit) { // a node's usual load and health, without a copy
	case "0":
		return 0, true
	case "1":
		return 1, true
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	return v, err == nil
}

// capabilityKeys holds the built-in policy's capability names, so that a
// decoded key is one of these strings rather than a new copy.
var capabilityKeys = func() map[string]string {
	m := make(map[string]string)
	for k := range DefaultPolicy().Rules {
		m[k] = k
	}
	return m
}()

// caps reads a capabilities object whose values are strings, numbers (as
// json.Number, the wire decoder's UseNumber) and booleans, each key once.
func (s *plainScanner) caps() (Capabilities, bool) {
	if !s.take('{') {
		return nil, false
	}
	out := Capabilities{}
	if s.take('}') {
		return out, true
	}
	for {
		rawKey, ok := s.raw()
		if !ok || !s.take(':') {
			return nil, false
		}
		if _, dup := out[string(rawKey)]; dup {
			return nil, false
		}
		key, known := capabilityKeys[string(rawKey)]
		if !known {
			key = string(rawKey)
		}
		was := s.prev.Capabilities[key]
		s.ws()
		if s.i >= len(s.b) {
			return nil, false
		}
		switch c := s.b[s.i]; {
		case c == '"':
			old, _ := was.(string)
			v, ok := s.str(old)
			if !ok {
				return nil, false
			}
			out[key] = v
		case c == 't' || c == 'f':
			v, ok := s.boolean()
			if !ok {
				return nil, false
			}
			out[key] = v
		default:
			lit, _, ok := s.number()
			if !ok {
				return nil, false
			}
			if old, _ := was.(json.Number); string(lit) == string(old) && old != "" {
				out[key] = old
			} else {
				out[key] = json.Number(lit)
			}
		}
		if s.take(',') {
			continue
		}
		return out, s.take('}')
	}
}

// boolean reads true or false.
func (s *plainScanner) boolean() (bool, bool) {
	rest := s.b[s.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		s.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		s.i += 5
		return false, true
	}
	return false, false
}
