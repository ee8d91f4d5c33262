package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/internal/testkeys"
)

// fullHeartbeat is a heartbeat with every field set, as a node sends one.
func fullHeartbeat(id peer.ID, seq uint64, now time.Time) *Heartbeat {
	h := validHeartbeat(id, seq, now)
	h.Capabilities[CapRegion] = "eu-west-1"
	h.Capabilities[CapGPUAvailable] = false
	h.Region = "eu-west-1"
	h.TaskTypes = []string{"wasm.exec.v1", "mimc-chain"}
	h.ListenAddrs = []string{"/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/udp/4001/quic-v1"}
	h.Load, h.Health = 0.25, 0.875
	h.Version = "proofmesh/0.3.0+dev"
	h.Refutes = 7
	return h
}

// decodeReference is the general path alone: decodeWire, no fast path.
func decodeReference(data []byte) (*Heartbeat, error) {
	var h Heartbeat
	if err := decodeWire(data, MaxHeartbeatBytes, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// What every node's Encode writes takes the fast path, and decodes to what
// the general path decodes. (Were the fast path to fall back on these, the
// heartbeat validator would cost twice as much again, and nothing else
// would say so.)
func TestHeartbeatFastPathTakesEncodedHeartbeats(t *testing.T) {
	_, id := testkeys.New(t)
	now := time.Now()
	empty := validHeartbeat(id, 1, now)
	empty.Capabilities = Capabilities{}
	empty.TaskTypes, empty.ListenAddrs = []string{}, []string{}
	for name, h := range map[string]*Heartbeat{
		"minimal": validHeartbeat(id, 1, now),
		"full":    fullHeartbeat(id, 1<<40, now),
		"empty":   empty,
	} {
		data, err := h.Encode()
		if err != nil {
			t.Fatal(err)
		}
		variants := [][]byte{data, indentJSON(t, data)}
		for _, d := range variants {
			fast, ok := decodeHeartbeatFast(d, nil)
			if !ok {
				t.Fatalf("%s: the fast path refused %s", name, d)
			}
			ref, err := decodeReference(d)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fast, ref) {
				t.Fatalf("%s: fast path %+v, general path %+v", name, fast, ref)
			}
		}
	}
}

func indentJSON(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(" \n")
	for _, c := range data {
		b.WriteByte(c)
		if c == ',' || c == ':' || c == '{' || c == '[' {
			b.WriteString("\r\n\t ")
		}
	}
	b.WriteString("\n")
	return b.Bytes()
}

// Input outside the plain form is left to the general path, and
// DecodeHeartbeat's answer for it is the general path's.
func TestHeartbeatFastPathDeclinesWhatItDoesNotKnow(t *testing.T) {
	_, id := testkeys.New(t)
	base, err := fullHeartbeat(id, 3, time.Now()).Encode()
	if err != nil {
		t.Fatal(err)
	}
	doc := string(base)
	replace := func(old, new string) string {
		if !strings.Contains(doc, old) {
			t.Fatalf("%q not in %s", old, doc)
		}
		return strings.Replace(doc, old, new, 1)
	}
	timeRe := regexp.MustCompile(`"time":[0-9]+`)
	if !timeRe.MatchString(doc) {
		t.Fatalf("no time in %s", doc)
	}
	cases := map[string]string{
		"escape in a string":       replace(`"version":"proofmesh/0.3.0+dev"`, `"version":"proofmesh\/0.3.0+dev"`),
		"unicode escape":           replace(`"region":"eu-west-1"`, `"region":"eu\u002dwest-1"`),
		"control character":        replace(`"region":"eu-west-1"`, "\"region\":\"eu\twest\""),
		"unit separator (0x1f)":    replace(`"region":"eu-west-1"`, "\"region\":\"eu\x1fwest\""),
		"time beyond int64":        timeRe.ReplaceAllString(doc, `"time":9223372036854775808`),
		"time below int64":         timeRe.ReplaceAllString(doc, `"time":-9223372036854775809`),
		"invalid UTF-8":            replace(`"version":"proofmesh/0.3.0+dev"`, "\"version\":\"\xff\""),
		"null string":              replace(`"region":"eu-west-1"`, `"region":null`),
		"null list":                replace(`"task_types":[`, `"task_types":null,"x":[`),
		"fraction in seq":          replace(`"seq":3`, `"seq":3.0`),
		"exponent in time":         strings.Replace(doc, `"time":`, `"time":1e3,"t":`, 1),
		"negative seq":             replace(`"seq":3`, `"seq":-3`),
		"negative zero seq":        replace(`"seq":3`, `"seq":-0`),
		"leading zero":             replace(`"seq":3`, `"seq":03`),
		"seq beyond uint64":        replace(`"seq":3`, `"seq":18446744073709551616`),
		"load beyond float64":      replace(`"load":0.25`, `"load":1e999`),
		"duplicate key":            replace(`"seq":3`, `"seq":3,"seq":4`),
		"duplicate capability":     replace(`"capabilities":{`, `"capabilities":{"cpu_cores":3,`),
		"case-variant key":         replace(`"seq":3`, `"Seq":3`),
		"unknown key (newer node)": replace(`"seq":3`, `"seq":3,"uptime":[1,2]`),
		"nested capability":        replace(`"capabilities":{`, `"capabilities":{"x":{"y":1},`),
		"null capability":          replace(`"capabilities":{`, `"capabilities":{"x":null,`),
		"string where a number is": replace(`"seq":3`, `"seq":"3"`),
		"trailing data":            doc + `{}`,
		"trailing comma":           replace(`"seq":3`, `"seq":3,`) + "",
		"truncated":                doc[:len(doc)-1],
		"an array":                 `[` + doc + `]`,
		"oversized":                strings.Replace(doc, `{`, `{`+strings.Repeat(" ", MaxHeartbeatBytes), 1),
	}
	for name, in := range cases {
		if _, ok := decodeHeartbeatFast([]byte(in), nil); ok {
			t.Errorf("%s: the fast path took %s", name, in)
			continue
		}
		got, gotErr := DecodeHeartbeat([]byte(in))
		ref, refErr := decodeReference([]byte(in))
		if refErr == nil {
			refErr = ref.checkForm(nil)
		}
		if refErr != nil {
			if gotErr == nil || !strings.HasSuffix(gotErr.Error(), refErr.Error()) {
				t.Errorf("%s: DecodeHeartbeat says %v, the general path %v", name, gotErr, refErr)
			}
			continue
		}
		if gotErr != nil || !reflect.DeepEqual(got, ref) {
			t.Errorf("%s: DecodeHeartbeat %+v, %v; the general path %+v", name, got, gotErr, ref)
		}
	}
}

// FuzzHeartbeatFastPath: whatever the fast path takes, the general path
// (encoding/json behind the strict key scan) decodes without error into
// the same heartbeat, whatever earlier heartbeat it reuses strings of.
func FuzzHeartbeatFastPath(f *testing.F) {
	full := []byte(`{"node_id":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","seq":1,"time":1,"capabilities":{"cpu_cores":2,"gpu_available":false,"region":"x"},"policy_version":1,"node_type":"compute","region":"eu","load":0.5,"health":1e0,"version":"x","task_types":["a"],"listen_addrs":[],"interval_ms":1000,"refutes":2}`)
	f.Add(full, full)
	f.Add([]byte(`{"node_id":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","seq":2,"capabilities":{"cpu_cores":3,"gpu_available":false,"region":"y","x":"x"},"task_types":["a","b"],"region":"e"}`), full)
	f.Add([]byte(` { "seq" : 18446744073709551615 , "time" : -9223372036854775808 , "load" : -0.0e-7 } `), []byte(`{}`))
	f.Add([]byte(`{"capabilities":{"a":true,"b":-1.5E+3,"c":"\u00e9"}}`), []byte(`{"capabilities":{"b":-1.5E+3}}`))
	f.Add([]byte(`{"region":"é✓","interval_ms":-0,"policy_version":9223372036854775807}`), []byte(`{"region":"é✓"}`))
	f.Fuzz(func(t *testing.T, data, prevData []byte) {
		prev, err := decodeReference(prevData)
		if err != nil {
			prev = nil
		}
		fast, ok := decodeHeartbeatFast(data, prev)
		if !ok {
			return
		}
		ref, err := decodeReference(data)
		if err != nil {
			t.Fatalf("the fast path took what the general path refuses (%v): %q", err, data)
		}
		if !reflect.DeepEqual(fast, ref) {
			t.Fatalf("fast path %#v, general path %#v for %q (prev %q)", fast, ref, data, prevData)
		}
	})
}

// A field equal to the one in Prev (the node's last accepted heartbeat) is
// not checked again; a field that differs is, and a heartbeat of another
// node gains nothing from Prev.
func TestHeartbeatCheckAgainstPrev(t *testing.T) {
	_, me := testkeys.New(t)
	_, other := testkeys.New(t)
	now := time.Now()
	policy := DefaultPolicy()
	// Prev as the validator keeps it: decoded from the wire (capability
	// numbers are json.Number there, so that an equal set is recognised).
	prevData, err := fullHeartbeat(me, 4, now).Encode()
	if err != nil {
		t.Fatal(err)
	}
	prev, prevCaps, err := DecodeAndValidateHeartbeat(prevData, HeartbeatCheck{From: me, Now: now, Skew: DefaultClockSkew, Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	check := HeartbeatCheck{From: me, Now: now, Skew: DefaultClockSkew, LastSeq: 4, Policy: policy, Prev: prev, PrevCaps: prevCaps}
	tests := []struct {
		name   string
		from   peer.ID
		mutate func(h *Heartbeat)
		want   error
	}{
		{"same settings, next seq", me, func(h *Heartbeat) {}, nil},
		{"a new listen address that is no multiaddr", me, func(h *Heartbeat) { h.ListenAddrs = append(h.ListenAddrs, "not/a/multiaddr") }, ErrMalformed},
		{"a capability out of range", me, func(h *Heartbeat) { h.Capabilities[CapCPUCores] = 1000 }, ErrCapabilityRange},
		{"an unknown capability", me, func(h *Heartbeat) { h.Capabilities["x"] = true }, ErrUnknownCapability},
		{"policy version 0", me, func(h *Heartbeat) { h.PolicyVersion = 0 }, ErrMalformed},
		{"another node's id", me, func(h *Heartbeat) { h.NodeID = other.String() }, ErrForged},
		{"a node id that is no peer id", me, func(h *Heartbeat) { h.NodeID = "x" }, ErrMalformed},
		{"this node's id, sent by another node (checked against that node's Prev)", other, func(h *Heartbeat) {}, ErrForged},
		{"a node type the capabilities contradict", me, func(h *Heartbeat) { h.NodeType = "verifier" }, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fullHeartbeat(me, 5, now)
			tt.mutate(h)
			data, err := h.Encode()
			if err != nil {
				t.Fatal(err)
			}
			c := check
			if tt.from != me {
				// Prev is always the sender's own last heartbeat.
				data, err := fullHeartbeat(tt.from, 4, now).Encode()
				if err != nil {
					t.Fatal(err)
				}
				theirs, theirCaps, err := DecodeAndValidateHeartbeat(data, HeartbeatCheck{From: tt.from, Now: now, Skew: DefaultClockSkew, Policy: policy})
				if err != nil {
					t.Fatal(err)
				}
				c.From, c.Prev, c.PrevCaps = tt.from, theirs, theirCaps
			}
			got, caps, err := DecodeAndValidateHeartbeat(data, c)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			// Without Prev the verdict is the same.
			c.Prev, c.PrevCaps = nil, nil
			_, capsNoPrev, errNoPrev := DecodeAndValidateHeartbeat(data, c)
			if fmt.Sprint(errNoPrev) != fmt.Sprint(err) || !reflect.DeepEqual(caps, capsNoPrev) {
				t.Fatalf("with Prev: %v, %v; without: %v, %v", caps, err, capsNoPrev, errNoPrev)
			}
			if err == nil && got.Seq != 5 {
				t.Fatalf("decoded %+v", got)
			}
		})
	}
}

// The capability check's result is reused only for the same capabilities
// under the same policy version: a newer version's unknown keys are
// dropped, not refused, and the same keys under our version must still be
// refused.
func TestHeartbeatPrevCapsKeyedOnPolicyVersion(t *testing.T) {
	_, me := testkeys.New(t)
	now := time.Now()
	policy := DefaultPolicy()
	hb := func(seq uint64, version int) []byte {
		h := validHeartbeat(me, seq, now)
		h.PolicyVersion = version
		h.Capabilities["x"] = true
		data, err := h.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	check := HeartbeatCheck{From: me, Now: now, Skew: DefaultClockSkew, Policy: policy}
	prev, prevCaps, err := DecodeAndValidateHeartbeat(hb(1, policy.Version+1), check)
	if err != nil {
		t.Fatalf("a newer policy version's unknown key must be dropped: %v", err)
	}
	if _, ok := prevCaps["x"]; ok {
		t.Fatalf("unknown key kept: %v", prevCaps)
	}
	check.LastSeq = 1
	for _, p := range []*Heartbeat{nil, prev} {
		check.Prev, check.PrevCaps = p, nil
		if p != nil {
			check.PrevCaps = prevCaps
		}
		if _, _, err := DecodeAndValidateHeartbeat(hb(2, policy.Version), check); !errors.Is(err, ErrUnknownCapability) {
			t.Fatalf("prev %v: the same capabilities under our version: %v, want %v", p != nil, err, ErrUnknownCapability)
		}
	}
	// And the same heartbeat again does reuse the result.
	check.Prev, check.PrevCaps = prev, prevCaps
	if _, caps, err := DecodeAndValidateHeartbeat(hb(2, policy.Version+1), check); err != nil || !caps.Equal(prevCaps) {
		t.Fatalf("same capabilities, same version: %v, %v", caps, err)
	}
}

// FuzzHeartbeatPrevChangesNothing: checking a heartbeat against a previous
// accepted heartbeat of its node gives the verdict and capabilities the
// full check gives.
func FuzzHeartbeatPrevChangesNothing(f *testing.F) {
	id := "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
	hb := func(seq int, caps, addrs string) []byte {
		return fmt.Appendf(nil, `{"node_id":%q,"seq":%d,"time":1000,"capabilities":{%s},"policy_version":1,"node_type":"compute","load":0,"health":1,"version":"x","listen_addrs":[%s],"interval_ms":1000}`, id, seq, caps, addrs)
	}
	f.Add(hb(1, `"cpu_cores":2`, `"/ip4/1.2.3.4/tcp/1"`), hb(2, `"cpu_cores":2`, `"/ip4/1.2.3.4/tcp/1"`))
	f.Add(hb(1, `"cpu_cores":2`, `"/ip4/1.2.3.4/tcp/1"`), hb(2, `"cpu_cores":2000`, `"/ip4/1.2.3.4/tcp/1"`))
	f.Add(hb(1, `"cpu_cores":2`, `"/ip4/1.2.3.4/tcp/1"`), hb(2, `"cpu_cores":2`, `"/ip4/1.2.3.4/tcpx/1"`))
	f.Fuzz(func(t *testing.T, prevData, data []byte) {
		pid, err := peer.Decode(id)
		if err != nil {
			t.Fatal(err)
		}
		now := time.UnixMilli(1000)
		check := HeartbeatCheck{From: pid, Now: now, Skew: time.Minute, Policy: DefaultPolicy()}
		prev, prevCaps, err := DecodeAndValidateHeartbeat(prevData, check)
		if err != nil {
			return // Prev is only ever an accepted heartbeat
		}
		h, caps, err := DecodeAndValidateHeartbeat(data, check)
		check.Prev, check.PrevCaps = prev, prevCaps
		hp, capsP, errP := DecodeAndValidateHeartbeat(data, check)
		if fmt.Sprint(err) != fmt.Sprint(errP) || !reflect.DeepEqual(h, hp) || !reflect.DeepEqual(caps, capsP) {
			t.Fatalf("without Prev: %+v, %v, %v; with Prev: %+v, %v, %v", h, caps, err, hp, capsP, errP)
		}
	})
}

// Capabilities.Equal agrees with reflect.DeepEqual.
func TestCapabilitiesEqual(t *testing.T) {
	a := Capabilities{"s": "x", "n": json.Number("2"), "b": true, "i": int64(2)}
	same := Capabilities{"s": "x", "n": json.Number("2"), "b": true, "i": int64(2)}
	pairs := []struct{ x, y Capabilities }{
		{a, same},
		{a, Capabilities{"s": "x", "n": json.Number("2"), "b": true, "i": int64(3)}},
		{a, Capabilities{"s": "x", "n": json.Number("2.0"), "b": true, "i": int64(2)}},
		{a, Capabilities{"s": "x", "n": "2", "b": true, "i": int64(2)}},
		{a, Capabilities{"s": "x", "n": json.Number("2"), "b": false, "i": int64(2)}},
		{a, Capabilities{"s": "x", "n": json.Number("2"), "b": true}},
		{a, Capabilities{"s": "x", "n": json.Number("2"), "b": true, "j": int64(2)}},
		{Capabilities{"x": []any{1}}, Capabilities{"x": []any{1}}},
		{Capabilities{"x": nil}, Capabilities{"x": nil}},
		{Capabilities{"x": nil}, Capabilities{"y": nil}},
		{nil, Capabilities{}},
		{nil, nil},
		{Capabilities{}, Capabilities{}},
	}
	for _, p := range pairs {
		if got, want := p.x.Equal(p.y), reflect.DeepEqual(p.x, p.y); got != want {
			t.Errorf("%v.Equal(%v) = %t, reflect.DeepEqual says %t", p.x, p.y, got, want)
		}
	}
}
