package protocol

import (
	"testing"
	"time"
)

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add([]byte(`{"node_id":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","seq":1,"time":1,"capabilities":{"cpu_cores":2},"policy_version":1,"node_type":"compute","load":0,"health":1,"version":"x","interval_ms":1000}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := DecodeHeartbeat(data)
		if err != nil {
			return
		}
		_, _ = ValidateHeartbeat(h, HeartbeatCheck{Now: time.Now(), Skew: time.Second, Policy: DefaultPolicy()})
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
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeTaskMessage(data)
		if err != nil || m.Task == nil {
			return
		}
		_ = m.Task.ContentID()
		_ = CheckInput(m.Task.Type, m.Task.Input)
	})
}
