package protocol

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
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
		h, err := DecodeHeartbeat(data)
		if err != nil {
			return
		}
		_, _ = ValidateHeartbeat(h, HeartbeatCheck{Now: time.Now(), Skew: time.Second, Policy: DefaultPolicy()})
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
	priv, id := newKey(f)
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
	priv, id := newKey(f)
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
	priv, id := newKey(f)
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
