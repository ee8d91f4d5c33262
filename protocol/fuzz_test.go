package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/internal/testkeys"
)

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add([]byte(`{"node_id":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","seq":1,"time":1,"capabilities":{"cpu_cores":2},"policy_version":1,"node_type":"compute","load":0,"health":1,"version":"x","interval_ms":1000}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	// Issue 12: duplicate and case-variant keys, terminal escapes.
	f.Add([]byte(`{"node_id":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","seq":1,"seq":2,"time":1,"capabilities":{"cpu_cores":2,"cpu_cores":3},"policy_version":1,"node_type":"compute","load":0,"health":1,"version":"x","interval_ms":1000}`))
	f.Add([]byte(`{"NODE_ID":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","seq":1,"time":1,"capabilities":{"cpu_cores":2},"policy_version":1,"node_type":"compute","load":0,"health":1,"version":"x","interval_ms":1000}`))
	f.Add([]byte(`{"node_id":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","seq":1,"time":1,"capabilities":{"cpu_cores":2},"policy_version":1,"node_type":"compute","region":"\u001b[31mred\r\n","load":0,"health":1,"version":"1.0\u001b[2J","listen_addrs":["/ip4/1.2.3.4/tcp/1\r\nforged row"],"interval_ms":1000}`))
	// Issue 13: a newer release's optional fields are skipped, not refused.
	f.Add([]byte(`{"nat":{"addrs":["x"],"k":{"k":1}},"node_id":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","seq":1,"time":1,"capabilities":{"cpu_cores":2},"policy_version":1,"node_type":"compute","load":0,"health":1,"version":"v0.4.0-3-g1a2b3c4-dirty","interval_ms":1000,"uptime":[1,2]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := HeartbeatCheck{Now: time.Now(), Skew: time.Second, Policy: DefaultPolicy()}
		h, err := DecodeHeartbeat(data)
		one, oneCaps, oneErr := DecodeAndValidateHeartbeat(data, check)
		if err != nil {
			if one != nil || fmt.Sprint(oneErr) != fmt.Sprint(err) {
				t.Fatalf("DecodeAndValidateHeartbeat: %v, %v; DecodeHeartbeat: %v", one, oneErr, err)
			}
			return
		}
		caps, err := ValidateHeartbeat(h, check)
		if !reflect.DeepEqual(one, h) || !reflect.DeepEqual(oneCaps, caps) || fmt.Sprint(oneErr) != fmt.Sprint(err) {
			t.Fatalf("DecodeAndValidateHeartbeat: %+v, %v, %v; the two steps: %+v, %v, %v", one, oneCaps, oneErr, h, caps, err)
		}
		if id, err := peer.Decode(h.NodeID); err == nil { // the rules past the signer's
			check.From, check.LastSeq = id, h.Seq/2
			one, oneCaps, oneErr = DecodeAndValidateHeartbeat(data, check)
			caps, err := ValidateHeartbeat(h, check)
			if !reflect.DeepEqual(one, h) || !reflect.DeepEqual(oneCaps, caps) || fmt.Sprint(oneErr) != fmt.Sprint(err) {
				t.Fatalf("DecodeAndValidateHeartbeat from its node: %+v, %v, %v; the two steps: %+v, %v, %v", one, oneCaps, oneErr, h, caps, err)
			}
		}
		for _, s := range append([]string{h.Region, h.Version, h.NodeType}, h.ListenAddrs...) {
			if strings.ContainsFunc(s, unicode.IsControl) {
				t.Fatalf("decoded heartbeat holds a control character: %q", s)
			}
		}
		if _, err := h.Encode(); err != nil && len(data) < MaxHeartbeatBytes/2 {
			t.Fatalf("decoded heartbeat does not re-encode: %v", err)
		}
	})
}

func FuzzOpenLeave(f *testing.F) {
	priv, id := testkeys.New(f)
	env, _ := Seal(&Leave{NodeID: id.String(), Time: 1}, priv)
	f.Add(env)
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		l, signer, err := OpenLeave(data)
		if err == nil && l.NodeID != signer.String() {
			t.Fatal("leave opened for a node other than its signer")
		}
	})
}

func FuzzOpenAuditCheckpoint(f *testing.F) {
	priv, id := testkeys.New(f)
	env, _ := Seal(&AuditCheckpoint{NodeID: id.String(), Seq: 3, Hash: HashHex([]byte("entry")), Time: 1}, priv)
	f.Add(env)
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := OpenAuditCheckpoint(data)
		if err == nil && (c.Seq == 0 || !isHexHash(c.Hash)) {
			t.Fatalf("malformed checkpoint opened: %+v", c)
		}
	})
}

func FuzzOpenResult(f *testing.F) {
	priv, id := testkeys.New(f)
	out := []byte("o")
	env, _ := Seal(&Result{TaskID: "0000000000000000000000000000000000000000000000000000000000000000", Executor: id.String(), Output: out, OutputHash: HashHex(out)}, priv)
	f.Add(env)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := OpenResult(data)
		if err == nil && HashHex(r.Output) != r.OutputHash {
			t.Fatal("result with mismatched output hash opened")
		}
	})
}

func FuzzDecodePolicy(f *testing.F) {
	f.Add([]byte(`{"version":1,"rules":{"cpu_cores":{"type":"integer","min":1,"max":4}}}`))
	f.Add([]byte(`{"version":1,"rules":{"region":{"type":"string","max_len":3,"charset":"z-a"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePolicy(data)
		if err != nil {
			return
		}
		_, _ = p.Check(Capabilities{"cpu_cores": int64(2), "region": "ab"})
	})
}

func FuzzDecodeTaskMessage(f *testing.F) {
	f.Add([]byte(`{"progress":{"task_id":"0000000000000000000000000000000000000000000000000000000000000000","executor":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","state":"running","time":1}}`))
	f.Add([]byte(`{"task":"eyJpZCI6IngifQ=="}`))
	f.Add([]byte(`{"cancel":"AAAA"}`))
	f.Add([]byte(`{"progress":{"task_id":"0000000000000000000000000000000000000000000000000000000000000000","executor":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","state":"running","time":1,"percent":3},"newer":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeTaskMessage(data)
		if err != nil || m.Task == nil {
			return
		}
		if m.Task.ID != m.Task.id() {
			t.Fatal("task opened with an id that is not the id of its bytes")
		}
		_ = CheckInput(m.Task.Type, m.Task.Input)
	})
}

// FuzzDecodeWire: whatever DecodeWire accepts has no duplicate key at any
// depth (unknown fields included) and no case-variant of a known key, and
// encoding/json reads the same known fields from it.
func FuzzDecodeWire(f *testing.F) {
	f.Add([]byte(`{"format":"v1","input_hash":"aa","newer":{"x":[1,{"y":2}]}}`))
	f.Add([]byte(`{"format":"v1","newer":{"x":1,"x":2}}`))
	f.Add([]byte(`{"Input_Hash":"aa","newer":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b bundleLike
		if err := DecodeWire(data, 1<<16, &b); err != nil {
			return
		}
		var generic any
		if err := DecodeWire(data, 1<<16, &generic); err != nil {
			t.Fatalf("accepted as a bundle but not as a generic value: %v", err)
		}
		if m, ok := generic.(map[string]any); ok {
			names := jsonFields(reflect.TypeFor[bundleLike]())
			for k := range m {
				for name := range names {
					if k != name && strings.EqualFold(k, name) {
						t.Fatalf("accepted key %q, a case variant of field %q", k, name)
					}
				}
			}
		}
		var again bundleLike
		if err := json.Unmarshal(data, &again); err != nil {
			t.Fatalf("encoding/json refuses what DecodeWire accepted: %v", err)
		}
		if again.Format != b.Format || again.InputHash != b.InputHash || len(again.Results) != len(b.Results) {
			t.Fatalf("encoding/json reads %+v, DecodeWire %+v", again, b)
		}
	})
}

// FuzzDecodeStrict: whatever DecodeStrict accepts has no duplicate key and
// no case-variant key, so any other JSON parser reads the same document.
func FuzzDecodeStrict(f *testing.F) {
	f.Add([]byte(`{"format":"v1","input_hash":"aa","results":[{"task_id":"x"}]}`))
	f.Add([]byte(`{"format":"v1","input_hash":"aa","input_hash":"bb"}`))
	f.Add([]byte(`{"FORMAT":"v1"}`))
	f.Add([]byte(`{"results":[],"results":[{"task_id":"x"}]}`))
	f.Add([]byte(`{"raw":{"k":1,"k":2},"meta":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b bundleLike
		if err := DecodeStrict(data, 1<<16, &b); err != nil {
			return
		}
		var generic any
		if err := DecodeStrict(data, 1<<16, &generic); err != nil {
			t.Fatalf("accepted as a bundle but not as a generic value: %v", err)
		}
		if m, ok := generic.(map[string]any); ok {
			names := jsonFields(reflect.TypeFor[bundleLike]())
			for k := range m {
				if _, ok := names[k]; !ok {
					t.Fatalf("accepted key %q that is not a field name", k)
				}
			}
		}
		var again bundleLike
		if err := json.Unmarshal(data, &again); err != nil {
			t.Fatalf("encoding/json refuses what DecodeStrict accepted: %v", err)
		}
	})
}

// FuzzKeyScannerMatchesReference: the single-pass key scanner (checkKeys)
// and the token walk it replaced (checkKeysRef, strictjson_ref_test.go)
// give the same verdict with the same message on any input and Go type,
// and DecodeStrict and DecodeWire built on either accept the same
// documents and decode them alike. The one difference allowed: the
// scanner refuses nesting deeper than maxKeyDepth itself, which the
// reference leaves to the decoder (which refuses it too).
func FuzzKeyScannerMatchesReference(f *testing.F) {
	for _, s := range []string{
		`{"format":"v1","input_hash":"aa","results":[{"task_id":"x","stats":{"wall_ms":1}}],"meta":{"a":"1","A":"2"},"inner":{"hash":"h"},"raw":{"k":1,"K":[1,{"x":2}]}}`,
		`{"format":"v1","input_hash":"aa","input_hash":"bb"}`,
		`{"FORMAT":"v1"}`,
		`{"results":[{"Task_ID":"x"}]}`,
		`{"results":[{"stats":{"Wall_MS":1}}]}`,
		`{"format":"v1","form\u0061t":"v2"}`,
		`{"format":"v1","input_haſh":"aa"}`,
		`{"\u212aind":1,"kind":2}`,
		`{"kind":1,"\u212Aind":2}`,
		"{\"a\xff\":1,\"a\xfe\":2}",
		`{"\ud800":1,"\udbff":2}`,
		`{"\ud83d\ude00":1,"😀":2}`,
		`{"\ud83d\u0041":1,"\ufffdA":2}`,
		`{"a\/b":1,"a/b":2}`,
		`{"a":1} {"a":1,"a":2}`,
		`{"a":1}x{"a":1,"a":2}`,
		`1 2 {"b":[{"c":1,"c":2}]}`,
		`truefalse{"x":1,"x":1}`,
		`{"a":01,"a":2}`,
		`{"a":-0.5e+3,"b":1E9,"a":2}`,
		`{"a":1.,"a":2}`,
		`{"a" 1,"a":2}`,
		`{"a":1,}`,
		`{"a":1,"a"`,
		`{"a":tru,"a":1}`,
		`[1 2]`,
		`{"x":"\u00zz","x":1}`,
		"{\"x\":\"a\tb\",\"x\":1}",
		`{"":1,"":2}`,
		`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"r":18,"s":19,"a":20}`,
		`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"p":18}`,
		`{"by_name":{"x":{"INNER":1}},"pair":[{"inner":"a"},{"Over":1}]}`,
		`{"pp":{"inner":"x","Inner":"y"}}`,
		`{"custom":{"a":1,"a":2,"A":3}}`,
		`{"raw":{"a":1,"a":2}}`,
		`{"lists":{"x":[{"a":1},{"a":1,"a":2}]}}`,
		`{"Untagged":1,"untagged":2}`,
		`{"untagged":1}`,
		`{"-":1,"skip":2,"Skip":3}`,
		`{"over":"x","OVER":1}`,
		`{"named":{"inner":"x"},"Named":1}`,
		`{"any":[[[{"q":1,"q":2}]]]}`,
		`{"node_id":"x","seq":1,"SEQ":2}`,
		`{"version":1,"rules":{"cpu_cores":{"type":"integer","min":1,"MIN":2}}}`,
		`{"progress":{"task_id":"x","state":"running","State":"x"}}`,
		` {"a" : [ ] , "b" : { } , "a" : 1 } `,
		"{\"a\":1}\v",
		``, ` `, `{`, `[`, `"`, `-`, `}`,
	} {
		for which := range uint8(16) {
			f.Add([]byte(s), which)
		}
	}
	targets := []func() any{
		func() any { return new(bundleLike) },
		func() any { return new(any) },
		func() any { return new(Heartbeat) },
		func() any { return new(Policy) },
		func() any { return new(TaskMessage) },
		func() any { return new(diffShape) },
		func() any { return new([]map[string]bundleLike) },
		func() any { return new(map[string]*diffShape) },
	}
	deep := func(err error) bool { return err != nil && strings.Contains(err.Error(), "nesting deeper than") }
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		mk := targets[int(which>>1)%len(targets)]
		strict := which&1 == 1
		typ := reflect.TypeOf(mk())
		got, want := checkKeys(data, typ), checkKeysRef(data, typ)
		if fmt.Sprint(got) != fmt.Sprint(want) && !deep(got) {
			t.Fatalf("%s: key scanner says %v, the reference %v", typ, got, want)
		}
		a, b := mk(), mk()
		errNew, errRef := decodeJSON(data, 1<<16, a, strict), decodeJSONRef(data, 1<<16, b, strict)
		if deep(errNew) {
			if !errors.Is(errRef, ErrMalformed) {
				t.Fatalf("%s: scanner refuses deep nesting, the reference says %v", typ, errRef)
			}
			return
		}
		if fmt.Sprint(errNew) != fmt.Sprint(errRef) {
			t.Fatalf("%s (strict %v): decoder says %v, the reference %v", typ, strict, errNew, errRef)
		}
		if errNew == nil && !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: decoded %#v, the reference %#v", typ, a, b)
		}
	})
}

// FuzzInCharset: inCharset, which Rule.check runs per character, says
// what parseCharset's test says, for any charset and character.
func FuzzInCharset(f *testing.F) {
	for _, cs := range []string{"", "a-z0-9-", "-a-z", "z-a", "a-", "-", "--", "a-c-e", "ä-ü_", "\xff-\xfe", "a-zA-Z0-9._+/-"} {
		for _, c := range "az-09_äZ\ufffd" {
			f.Add(cs, c)
		}
	}
	f.Fuzz(func(t *testing.T, cs string, c rune) {
		allowed, _ := parseCharset(cs)
		if want := allowed == nil || allowed(c); inCharset(cs, c) != want {
			t.Fatalf("inCharset(%q, %q) = %v, parseCharset says %v", cs, c, !want, want)
		}
	})
}

func FuzzDecodeSuspicion(f *testing.F) {
	f.Add([]byte(`{"suspect":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","seq":1,"time":1}`))
	f.Add([]byte(`{"suspect":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","seq":1,"seq":2,"time":1}`))
	f.Add([]byte(`{"SUSPECT":"x","time":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, id, err := DecodeSuspicion(data)
		if err != nil {
			return
		}
		_ = CheckSuspicion(s, id, "", time.Now(), time.Second)
		if _, err := s.Encode(); err != nil {
			t.Fatalf("decoded suspicion does not re-encode: %v", err)
		}
	})
}
