package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/internal/testkeys"
)

// payloadRecord seals payload bytes as they are, under the domain and codec
// of a real record: what a hostile submitter, who holds its own key, can
// put inside a validly signed task or cancel envelope.
type payloadRecord struct {
	domain string
	codec  []byte
	body   []byte
}

func (r *payloadRecord) Domain() string                 { return r.domain }
func (r *payloadRecord) Codec() []byte                  { return r.codec }
func (r *payloadRecord) MarshalRecord() ([]byte, error) { return r.body, nil }
func (r *payloadRecord) UnmarshalRecord(b []byte) error { r.body = b; return nil }
func rawTask(body []byte) *payloadRecord                { return &payloadRecord{DomainTask, (&Task{}).Codec(), body} }
func rawCancel(body []byte) *payloadRecord {
	return &payloadRecord{DomainCancel, (&Cancel{}).Codec(), body}
}
func fuzzTaskSeed(sub string, now time.Time) *Task {
	in := []byte("hello")
	tk := &Task{Type: "gpu.v1", Input: in, InputHash: HashHex(in), InputSize: len(in), Submitter: sub,
		Created: now.UnixMilli(), Deadline: now.Add(time.Hour).UnixMilli(), Replicas: 1,
		Candidates: []string{sub}, LeaseMS: 1000, ModuleHash: "", Job: &JobSpec{Args: []string{"-v"}, Env: map[string]string{"A": "b"}}}
	tk.ID = tk.ContentID()
	return tk
}

// FuzzTaskUnmarshalRecord feeds arbitrary record bytes to the task
// decoder (decodeWire and the content id over the exact bytes). Whatever it
// accepts carries a 64-digit hex id of its bytes, and re-encodes to bytes
// that decode to the same task, whose id over those bytes is ContentID.
func FuzzTaskUnmarshalRecord(f *testing.F) {
	_, sub := testkeys.New(f)
	seed, _ := json.Marshal(fuzzTaskSeed(sub.String(), time.UnixMilli(1_700_000_000_000)))
	f.Add(seed)
	f.Add([]byte(`{"id":"` + HashHex(nil) + `","newer":{"id":"x"},"type":"gpu.v1"}`))
	f.Add([]byte(`{"type":"x","id":"\u0030000000000000000000000000000000000000000000000000000000000000"}`))
	f.Add([]byte(`{"id":"` + HashHex(nil) + `","ID":"` + HashHex(nil) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var tk Task
		if err := tk.UnmarshalRecord(data); err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrOversized) {
				t.Fatalf("error wraps no protocol sentinel: %v", err)
			}
			return
		}
		if !isHexHash(tk.wireID) {
			t.Fatalf("accepted task has content id %q", tk.wireID)
		}
		if len(data) > MaxTaskMessageBytes {
			t.Fatalf("accepted %d bytes, over MaxTaskMessageBytes %d", len(data), MaxTaskMessageBytes)
		}
		again, err := json.Marshal(&tk)
		if err != nil {
			t.Fatalf("accepted task does not re-encode: %v", err)
		}
		if len(again) > MaxTaskMessageBytes {
			return // a decoded null input re-encodes longer only in pathological cases; not a round trip to check
		}
		var tk2 Task
		if err := tk2.UnmarshalRecord(again); err != nil {
			t.Fatalf("re-encoded task does not decode: %v\n%s", err, again)
		}
		// Compared as encoded: an empty list and a missing one (omitempty)
		// are the same task.
		if third, _ := json.Marshal(&tk2); !bytes.Equal(third, again) {
			t.Fatalf("round trip changed the task:\n%s\n%s", again, third)
		}
		if tk2.wireID != tk2.ContentID() {
			t.Fatalf("id of this build's encoding %s, ContentID %s\n%s", tk2.wireID, tk2.ContentID(), again)
		}
	})
}

// FuzzOpenTaskPayload seals arbitrary task payloads with a real key, as a
// submitter can, and opens them: the signature holds, so everything after
// it (the strict decoder, the content id, the submitter check, then
// CheckTask's rules) sees hostile bytes. A payload whose only fault is its
// id is also given its right id, so the fuzzer gets past that check.
// Accepted tasks name their signer and carry the id of their bytes; errors
// wrap a protocol sentinel.
func FuzzOpenTaskPayload(f *testing.F) {
	priv, sub := testkeys.New(f)
	now := time.UnixMilli(1_700_000_000_000)
	seed, _ := json.Marshal(fuzzTaskSeed(sub.String(), now))
	f.Add(seed)
	f.Add([]byte(`{"id":"","submitter":"` + sub.String() + `","type":"gpu.v1","input_size":-1,"replicas":-5,"candidates":["` + sub.String() + `"]}`))
	reg := Registry{"gpu.v1": gpuType()}
	sentinels := []error{ErrMalformed, ErrOversized, ErrForged, ErrTaskIDMismatch}
	f.Fuzz(func(t *testing.T, payload []byte) {
		check := func(body []byte) {
			env, err := Seal(rawTask(body), priv)
			if err != nil {
				return
			}
			tk, err := OpenTask(env)
			if err != nil {
				for _, s := range sentinels {
					if errors.Is(err, s) {
						return
					}
				}
				t.Fatalf("OpenTask error wraps no sentinel: %v", err)
			}
			if tk.Submitter != sub.String() {
				t.Fatalf("task of %q opened from %s's envelope", tk.Submitter, sub)
			}
			if id, _ := wireContentID(body); tk.ID != id {
				t.Fatalf("task id %s, id of its bytes %s", tk.ID, id)
			}
			_, _ = CheckTask(tk, reg, now, DefaultClockSkew)
			_ = CheckInput(tk.Type, tk.Input)
		}
		check(payload)
		// The same payload with its id set to that of its bytes.
		var m map[string]json.RawMessage
		if json.Unmarshal(payload, &m) != nil {
			return
		}
		m["id"] = json.RawMessage(`""`)
		body, err := json.Marshal(m)
		if err != nil {
			return
		}
		id, err := wireContentID(body)
		if err != nil {
			return
		}
		m["id"] = json.RawMessage(`"` + id + `"`)
		if body, err = json.Marshal(m); err == nil {
			check(body)
		}
	})
}

// FuzzOpenCancelPayload does the same for cancel envelopes: an accepted
// cancel names its signer, a 64-digit hex task id and a reason within 200
// bytes.
func FuzzOpenCancelPayload(f *testing.F) {
	priv, sub := testkeys.New(f)
	seed, _ := json.Marshal(&Cancel{TaskID: HashHex([]byte("t")), Submitter: sub.String(), Time: 1, Reason: "no longer needed"})
	f.Add(seed)
	f.Add([]byte(`{"task_id":"x","submitter":"` + sub.String() + `","time":-1,"reason":"` + string(make([]byte, 201)) + `"}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		env, err := Seal(rawCancel(payload), priv)
		if err != nil {
			return
		}
		c, err := OpenCancel(env)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrOversized) && !errors.Is(err, ErrForged) {
				t.Fatalf("OpenCancel error wraps no sentinel: %v", err)
			}
			return
		}
		if c.Submitter != sub.String() || !isHexHash(c.TaskID) || len(c.Reason) > 200 {
			t.Fatalf("malformed cancel opened: %+v", c)
		}
		if len(env) > MaxCancelBytes+1024 {
			t.Fatalf("cancel envelope of %d bytes opened, over the limit", len(env))
		}
	})
}
