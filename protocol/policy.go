package protocol

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// Capability value kinds of the policy.
const (
	KindInteger = "integer"
	KindBoolean = "boolean"
	KindEnum    = "enum"
	KindString  = "string"
)

// Capability keys of the default policy.
const (
	CapCPUCores      = "cpu_cores"
	CapMemoryGB      = "memory_gb"
	CapGPUAvailable  = "gpu_available"
	CapBandwidthMbps = "bandwidth_mbps"
	CapNodeType      = "node_type"
	CapRegion        = "region"
)

// Node types of the default policy.
const (
	NodeTypeCompute  = "compute"
	NodeTypeStorage  = "storage"
	NodeTypeGateway  = "gateway"
	NodeTypeVerifier = "verifier"
)

// Rule constrains one capability key.
type Rule struct {
	Kind   string   `json:"type"`
	Min    *int64   `json:"min,omitempty"`     // integer: smallest allowed value
	Max    *int64   `json:"max,omitempty"`     // integer: largest allowed value
	Values []string `json:"values,omitempty"`  // enum: allowed values
	MinLen int      `json:"min_len,omitempty"` // string: shortest allowed length
	MaxLen int      `json:"max_len,omitempty"` // string: longest allowed length
	// Charset lists the characters a string may use, as ranges ("a-z0-9-").
	Charset string `json:"charset,omitempty"`
}

// Policy is the versioned whitelist of capabilities a node may announce.
type Policy struct {
	Version int             `json:"version"`
	Rules   map[string]Rule `json:"rules"`
}

// Capabilities are what a node announces: key to integer (int64), boolean or
// string. Values decoded from JSON are normalised by Policy.Check.
type Capabilities map[string]any

// Equal reports whether c and o hold the same keys with the same values,
// as reflect.DeepEqual would, without reflection for the values a wire
// decode and a policy check produce (strings, json.Number, booleans and
// int64).
func (c Capabilities) Equal(o Capabilities) bool {
	if len(c) != len(o) || (c == nil) != (o == nil) {
		return false
	}
	for k, v := range c {
		w, ok := o[k]
		if !ok {
			return false
		}
		switch v := v.(type) {
		case string:
			if w, ok := w.(string); !ok || v != w {
				return false
			}
		case json.Number:
			if w, ok := w.(json.Number); !ok || v != w {
				return false
			}
		case bool:
			if w, ok := w.(bool); !ok || v != w {
				return false
			}
		case int64:
			if w, ok := w.(int64); !ok || v != w {
				return false
			}
		default:
			if !reflect.DeepEqual(v, w) {
				return false
			}
		}
	}
	return true
}

func i64(v int64) *int64 { return &v }

// DefaultPolicy returns the built-in capability policy of DESIGN.md.
func DefaultPolicy() Policy {
	return Policy{
		Version: 1,
		Rules: map[string]Rule{
			CapCPUCores:      {Kind: KindInteger, Min: i64(1), Max: i64(256)},
			CapMemoryGB:      {Kind: KindInteger, Min: i64(1), Max: i64(2048)},
			CapGPUAvailable:  {Kind: KindBoolean},
			CapBandwidthMbps: {Kind: KindInteger, Min: i64(10), Max: i64(100000)},
			CapNodeType:      {Kind: KindEnum, Values: []string{NodeTypeCompute, NodeTypeStorage, NodeTypeGateway, NodeTypeVerifier}},
			CapRegion:        {Kind: KindString, MinLen: 1, MaxLen: 32, Charset: "a-z0-9-"},
		},
	}
}

// Validate refuses a policy that cannot be applied.
func (p Policy) Validate() error {
	if p.Version < 1 {
		return fmt.Errorf("%w: version must be at least 1, got %d", ErrInvalidPolicy, p.Version)
	}
	if len(p.Rules) == 0 || len(p.Rules) > 64 {
		return fmt.Errorf("%w: must have between 1 and 64 rules, got %d", ErrInvalidPolicy, len(p.Rules))
	}
	for k, r := range p.Rules {
		if !validKey(k) {
			return fmt.Errorf("%w: key %q must be 1-32 of [a-z0-9_]", ErrInvalidPolicy, k)
		}
		switch r.Kind {
		case KindInteger:
			if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
				return fmt.Errorf("%w: key %q: min %d > max %d", ErrInvalidPolicy, k, *r.Min, *r.Max)
			}
		case KindBoolean:
		case KindEnum:
			if len(r.Values) == 0 {
				return fmt.Errorf("%w: key %q: enum without values", ErrInvalidPolicy, k)
			}
		case KindString:
			if r.MaxLen <= 0 || r.MinLen < 0 || r.MinLen > r.MaxLen {
				return fmt.Errorf("%w: key %q: string lengths %d..%d", ErrInvalidPolicy, k, r.MinLen, r.MaxLen)
			}
			if _, err := parseCharset(r.Charset); err != nil {
				return fmt.Errorf("%w: key %q: %v", ErrInvalidPolicy, k, err)
			}
		default:
			return fmt.Errorf("%w: key %q: unknown type %q (want integer, boolean, enum or string)", ErrInvalidPolicy, k, r.Kind)
		}
	}
	return nil
}

func validKey(k string) bool {
	if len(k) == 0 || len(k) > 32 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Keys returns the allowed keys, sorted.
func (p Policy) Keys() []string {
	keys := make([]string, 0, len(p.Rules))
	for k := range p.Rules {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Check validates caps strictly against the policy and returns them
// normalised (integers as int64). The error names the key and the rule.
func (p Policy) Check(caps Capabilities) (Capabilities, error) {
	out := make(Capabilities, len(caps))
	for _, k := range sortedKeys(caps) {
		r, ok := p.Rules[k]
		if !ok {
			return nil, fmt.Errorf("capability %q: %w (policy v%d allows: %s)", k, ErrUnknownCapability, p.Version, strings.Join(p.Keys(), ", "))
		}
		v, err := r.check(k, caps[k])
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// CheckClaimed validates capabilities that a peer announced under policy
// version claimed. A peer on our version or an older one must pass strictly.
// A peer on a newer version may carry keys we do not know: they are dropped
// (never routed on), and the keys we know must still pass our rules.
func (p Policy) CheckClaimed(claimed int, caps Capabilities) (Capabilities, error) {
	if claimed < 1 {
		return nil, fmt.Errorf("%w: policy_version %d", ErrMalformed, claimed)
	}
	if claimed <= p.Version {
		return p.Check(caps)
	}
	known := make(Capabilities, len(caps))
	for k, v := range caps {
		if _, ok := p.Rules[k]; ok {
			known[k] = v
		}
	}
	return p.Check(known)
}

func sortedKeys(m Capabilities) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (r Rule) check(key string, v any) (any, error) {
	switch r.Kind {
	case KindInteger:
		n, ok := asInt(v)
		if !ok {
			return nil, fmt.Errorf("capability %q: %w: want an integer, got %s", key, ErrCapabilityType, describe(v))
		}
		if (r.Min != nil && n < *r.Min) || (r.Max != nil && n > *r.Max) {
			return nil, fmt.Errorf("capability %q: %w: %d is not within %s", key, ErrCapabilityRange, n, r.rangeText())
		}
		return n, nil
	case KindBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("capability %q: %w: want true or false, got %s", key, ErrCapabilityType, describe(v))
		}
		return b, nil
	case KindEnum:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("capability %q: %w: want one of %s, got %s", key, ErrCapabilityType, strings.Join(r.Values, ", "), describe(v))
		}
		if !slices.Contains(r.Values, s) {
			return nil, fmt.Errorf("capability %q: %w: %q is not one of %s", key, ErrCapabilityRange, s, strings.Join(r.Values, ", "))
		}
		return s, nil
	case KindString:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("capability %q: %w: want a string, got %s", key, ErrCapabilityType, describe(v))
		}
		if len(s) < r.MinLen || len(s) > r.MaxLen {
			return nil, fmt.Errorf("capability %q: %w: length %d is not within %d..%d", key, ErrCapabilityRange, len(s), r.MinLen, r.MaxLen)
		}
		for _, c := range s {
			if !inCharset(r.Charset, c) {
				return nil, fmt.Errorf("capability %q: %w: character %q is not in [%s]", key, ErrCapabilityRange, c, r.Charset)
			}
		}
		return s, nil
	}
	return nil, fmt.Errorf("capability %q: %w: rule type %q", key, ErrInvalidPolicy, r.Kind)
}

func (r Rule) rangeText() string {
	lo, hi := "-inf", "+inf"
	if r.Min != nil {
		lo = fmt.Sprint(*r.Min)
	}
	if r.Max != nil {
		hi = fmt.Sprint(*r.Max)
	}
	return lo + ".." + hi
}

// asInt accepts the integer forms JSON decoding and Go callers produce.
func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("string %q", v)
	case bool:
		return fmt.Sprintf("boolean %t", v)
	case json.Number:
		return "number " + v.String()
	case float64:
		return fmt.Sprintf("number %g", v)
	}
	return fmt.Sprintf("%T", v)
}

// parseCharset turns "a-z0-9-" into a membership test. A trailing or leading
// '-' is literal. An empty charset allows everything.
func parseCharset(cs string) (func(rune) bool, error) {
	if cs == "" {
		return nil, nil
	}
	type span struct{ lo, hi rune }
	var spans []span
	rs := []rune(cs)
	for i := 0; i < len(rs); i++ {
		if i+2 < len(rs) && rs[i+1] == '-' {
			if rs[i] > rs[i+2] {
				return nil, fmt.Errorf("charset %q: range %c-%c is reversed", cs, rs[i], rs[i+2])
			}
			spans = append(spans, span{rs[i], rs[i+2]})
			i += 2
			continue
		}
		spans = append(spans, span{rs[i], rs[i]})
	}
	return func(c rune) bool {
		for _, s := range spans {
			if c >= s.lo && c <= s.hi {
				return true
			}
		}
		return false
	}, nil
}

// inCharset reports whether c is in the charset cs as parseCharset reads
// it, without building the test (this runs for every string capability of
// every heartbeat). Like parseCharset's nil test, an empty charset or one
// that does not parse (a reversed range, which Validate refuses) allows
// everything.
func inCharset(cs string, c rune) bool {
	if cs == "" {
		return true
	}
	rs := []rune(cs) // on the stack: it does not escape
	in := false
	for i := 0; i < len(rs); i++ {
		lo, hi := rs[i], rs[i]
		if i+2 < len(rs) && rs[i+1] == '-' {
			if hi = rs[i+2]; lo > hi {
				return true
			}
			i += 2
		}
		in = in || lo <= c && c <= hi
	}
	return in
}

// DecodePolicy parses a policy from outside bytes (network.json, the API).
func DecodePolicy(data []byte) (Policy, error) {
	var p Policy
	if err := decodeStrict(data, MaxPolicyBytes, &p); err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// MaxPolicyBytes bounds an encoded policy.
const MaxPolicyBytes = 64 << 10
