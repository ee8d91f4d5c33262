package protocol

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/proofmesh/proofmesh/internal/testkeys"
)

// Issue 13: a newer build that added one heartbeat field was REJECTED by
// every older node (and gossip-penalised for it). Within a major, fields a
// build does not know are skipped by every wire decoder; duplicate and
// case-variant keys, types of known fields and sizes stay strict.
func TestWireDecodersSkipUnknownFields(t *testing.T) {
	priv, me := testkeys.New(t)
	hb, _ := validHeartbeat(me, 1, time.Now()).Encode()
	newer := addFields(t, hb, `"uptime_s":42,"nat":{"reachability":"public","addrs":["x"]}`)
	got, err := DecodeHeartbeat(newer)
	if err != nil {
		t.Fatalf("heartbeat with a newer release's fields: %v", err)
	}
	if got.NodeID != me.String() || got.Seq != 1 {
		t.Fatalf("known fields lost: %+v", got)
	}

	leave, _ := json.Marshal(&Leave{NodeID: me.String(), Time: 1, Reason: "bye"})
	if env := sealRaw(t, priv, DomainLeave, (&Leave{}).Codec(), addFields(t, leave, `"restart":true`)); env != nil {
		if l, _, err := OpenLeave(env); err != nil || l.Reason != "bye" {
			t.Fatalf("leave with a newer field: %v %+v", err, l)
		}
	}

	task := strings.Repeat("ab", 32)
	cancel, _ := json.Marshal(&Cancel{TaskID: task, Submitter: me.String(), Time: 1})
	cenv := sealRaw(t, priv, DomainCancel, (&Cancel{}).Codec(), addFields(t, cancel, `"priority":"now"`))
	if c, err := OpenCancel(cenv); err != nil || c.TaskID != task {
		t.Fatalf("cancel with a newer field: %v", err)
	}

	out := []byte("out")
	res, _ := json.Marshal(&Result{TaskID: task, Type: "t", Executor: me.String(), InputHash: HashHex(nil), Output: out, OutputHash: HashHex(out), Time: 1})
	res = []byte(strings.Replace(string(res), `"stats":{`, `"stats":{"cpu_ms":7,`, 1))
	renv := sealRaw(t, priv, DomainResult, (&Result{}).Codec(), addFields(t, res, `"attestation":{"kind":"tee"}`))
	if r, err := OpenResult(renv); err != nil || string(r.Output) != "out" {
		t.Fatalf("result with newer fields: %v", err)
	}

	// A kind of message a newer release added to the tasks topic is
	// IGNORED (nobody penalised); an empty one is still malformed.
	if _, err := DecodeTaskMessage([]byte(`{"claim":{"task_id":"x"}}`)); !errors.Is(err, ErrUnknownKind) || !Ignorable(err) {
		t.Fatalf("unknown kind: %v", err)
	}
	if _, err := DecodeTaskMessage([]byte(`{}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty task message: %v", err)
	}

	msg := `{"progress":{"task_id":"` + task + `","executor":"` + me.String() + `","state":"running","time":1,"percent":40},"hint":"x"}`
	if m, err := DecodeTaskMessage([]byte(msg)); err != nil || m.Progress == nil || m.Progress.State != StateRunning {
		t.Fatalf("progress with newer fields: %v", err)
	}
}

func TestWireDecodersStayStrict(t *testing.T) {
	_, me := testkeys.New(t)
	hb, _ := validHeartbeat(me, 1, time.Now()).Encode()
	for _, tc := range []struct {
		name  string
		data  []byte
		want  error
		words string
	}{
		{"duplicate known key", addFields(t, hb, `"seq":2`), ErrMalformed, `duplicate key "seq"`},
		{"duplicate unknown key", addFields(t, hb, `"x":1,"x":2`), ErrMalformed, `duplicate key "x"`},
		{"duplicate inside an unknown field", addFields(t, hb, `"x":{"a":1,"a":2}`), ErrMalformed, `duplicate key "a" in $.x`},
		{"duplicate capability", []byte(strings.Replace(string(hb), `"cpu_cores":2`, `"cpu_cores":2,"cpu_cores":200`, 1)), ErrMalformed, "duplicate"},
		{"case variant of a known key", addFields(t, hb, `"Seq":2`), ErrMalformed, "case-insensitively"},
		{"known field of the wrong type", []byte(strings.Replace(string(hb), `"seq":1`, `"seq":"1"`, 1)), ErrMalformed, "seq"},
		{"oversized", addFields(t, hb, `"pad":"`+strings.Repeat("x", MaxHeartbeatBytes)+`"`), ErrOversized, ""},
		{"trailing data", append(hb, []byte(`{}`)...), ErrMalformed, "trailing"},
		{"bad version", []byte(strings.Replace(string(hb), `"version":"test"`, `"version":"v1 \u001b[2J"`, 1)), ErrMalformed, "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeHeartbeat(tc.data)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("got %v, want %v naming %q", err, tc.want, tc.words)
			}
		})
	}
	// Not wire messages: policies (network.json, the API) refuse fields
	// they do not know, naming them.
	pol, _ := json.Marshal(DefaultPolicy())
	if _, err := DecodePolicy(addFields(t, pol, `"typo_field":1`)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `"typo_field"`) {
		t.Fatalf("policy with an unknown field: %v", err)
	}
}

// newerTask is a Task of a later release of major 1 with an optional
// field this build does not know.
type newerTask struct {
	Task
	Priority int `json:"priority"`
}

func (*newerTask) Domain() string                   { return DomainTask }
func (*newerTask) Codec() []byte                    { return (&Task{}).Codec() }
func (t *newerTask) MarshalRecord() ([]byte, error) { return json.Marshal(t) }
func (t *newerTask) UnmarshalRecord(b []byte) error { return json.Unmarshal(b, t) }

// The task id is over the exact bytes received: a newer release's task
// keeps its id (and signature) on an older node, and an id that leaves the
// unknown field out does not pass for it.
func TestNewerTaskKeepsItsID(t *testing.T) {
	priv, sub := testkeys.New(t)
	_, c1 := testkeys.New(t)
	reg := Registry{"gpu.v1": gpuType()}
	now := time.Now()
	in := []byte("hello")
	base := Task{Type: "gpu.v1", Input: in, InputHash: HashHex(in), InputSize: len(in), Submitter: sub.String(),
		Created: now.UnixMilli(), Deadline: now.Add(2 * time.Second).UnixMilli(), Replicas: 1,
		Candidates: []string{c1.String()}, LeaseMS: 1000}

	// Today's tasks: the id of the bytes is ContentID.
	old := base
	old.ID = old.ContentID()
	env, _ := Seal(&old, priv)
	got, err := OpenTask(env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckTask(got, reg, now, DefaultClockSkew); err != nil {
		t.Fatalf("today's task: %v", err)
	}

	nt := &newerTask{Task: base, Priority: 7}
	b, _ := json.Marshal(nt)
	nt.ID = HashHex(b) // the newer build's ContentID: its own encoding with the id empty
	env, _ = Seal(nt, priv)
	got, err = OpenTask(env)
	if err != nil {
		t.Fatalf("newer task refused: %v", err)
	}
	if got.ID != nt.ID {
		t.Fatalf("id %s, want %s", got.ID, nt.ID)
	}
	if _, err := CheckTask(got, reg, now, DefaultClockSkew); err != nil {
		t.Fatalf("newer task: %v", err)
	}

	// An id that does not cover the field is not the id of these bytes.
	nt.ID = base.ContentID()
	env, _ = Seal(nt, priv)
	if _, err := OpenTask(env); !errors.Is(err, ErrTaskIDMismatch) {
		t.Fatalf("id without the unknown field: %v", err)
	}
}

func TestWireContentID(t *testing.T) {
	id := strings.Repeat("0", 64)
	for _, tc := range []struct {
		in, hashed string
		ok         bool
	}{
		{`{"id":"` + id + `","type":"x"}`, `{"id":"","type":"x"}`, true},
		{`{"type":"x","job":{"id":"nested"},"id":"` + id + `"}`, `{"type":"x","job":{"id":"nested"},"id":""}`, true},
		{`{"a":[{"id":"x"}],"id" : "` + id + `" }`, `{"a":[{"id":"x"}],"id" : "" }`, true},
		{`{"id":1}`, "", false},
		{`{"id":"short"}`, "", false},
		{`{"id":"` + strings.Repeat("0", 63) + `\u0030"}`, "", false}, // escapes: not the plain form
		{`{"type":"x"}`, "", false},
		{`["id","` + id + `"]`, "", false},
		{`"id"`, "", false},
	} {
		got, err := wireContentID([]byte(tc.in))
		if tc.ok != (err == nil) || (tc.ok && got != HashHex([]byte(tc.hashed))) {
			t.Errorf("%s: %s %v", tc.in, got, err)
		}
	}
}

func TestParseProtocols(t *testing.T) {
	ids := []string{
		"/ipfs/id/1.0.0", "/meshsub/1.1.0", "/proofmesh/devnet/kad/1.0.0",
		"/proofmesh/devnet/blob/1", "/proofmesh/devnet/blob/2", "/proofmesh/othernet/blob/1",
		"/proofmesh/BAD/blob/1", "/proofmesh/devnet/blob/x", "/proofmesh/devnet/blob/0", "/proofmesh/x/blob/1/extra",
		"/proofmesh/devnet/files/2.1", "/proofmesh/devnet/blob/01", "/proofmesh/kadonly/kad/1.0.0",
	}
	pp := ParseProtocols(ids)
	if !slices.Equal(pp.Majors["devnet"], []int{1, 2}) || !slices.Equal(pp.Majors["othernet"], []int{1}) || len(pp.Majors) != 3 {
		t.Fatalf("%+v", pp.Majors)
	}
	if d := pp.Describe(); d != "devnet v1,v2; kadonly v?; othernet v1" {
		t.Fatalf("Describe %q", d)
	}
	for _, tc := range []struct {
		ids  []string
		want Compatibility
	}{
		{nil, NotProofmesh},
		{[]string{"/ipfs/kad/1.0.0"}, NotProofmesh},
		{[]string{MarkerProtocolID("devnet", 1)}, Compatible},
		{[]string{MarkerProtocolID("devnet", 1), MarkerProtocolID("devnet", 2)}, Compatible},
		{[]string{MarkerProtocolID("devnet", 2)}, OtherMajor},
		{[]string{MarkerProtocolID("othernet", 1)}, OtherNetwork},
		{[]string{MarkerProtocolID("othernet", 1), MarkerProtocolID("devnet", 2)}, OtherMajor},
		{[]string{"/proofmesh/devnet/kad/1.0.0"}, NotProofmesh},
		{[]string{"/proofmesh/devnet/kad/1.0.0", "/proofmesh/devnet/files/2.0.0"}, OtherMajor},
		{[]string{"/proofmesh/othernet/kad/1.0.0"}, OtherNetwork},
	} {
		if got := ParseProtocols(tc.ids).Classify("devnet", 1); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.ids, got, tc.want)
		}
	}
	var many []string
	for i := range 50 {
		many = append(many, MarkerProtocolID("net"+strings.Repeat("x", i%30)+string(rune('a'+i%26)), 1))
	}
	if n := len(ParseProtocols(many).Majors); n > maxProtocolNetworks {
		t.Fatalf("%d networks kept", n)
	}
}

func TestValidVersion(t *testing.T) {
	for s, ok := range map[string]bool{
		"v0.4.0": true, "v0.4.0-3-g1a2b3c4-dirty": true, "1a2b3c4d5e6f-dirty": true, "dev": true,
		"": false, "v1 2": false, strings.Repeat("v", 65): false, "v1\n": false,
	} {
		if ValidVersion(s) != ok {
			t.Errorf("ValidVersion(%q) = %v", s, !ok)
		}
	}
}

// addFields inserts members at the start of a JSON object.
func addFields(t *testing.T, obj []byte, members string) []byte {
	t.Helper()
	if len(obj) < 2 || obj[0] != '{' {
		t.Fatalf("not an object: %s", obj)
	}
	return []byte("{" + members + "," + string(obj[1:]))
}

// rawRecord is a record.Record carrying exact bytes.
type rawRecord struct {
	domain string
	codec  []byte
	b      []byte
}

func (r *rawRecord) Domain() string                 { return r.domain }
func (r *rawRecord) Codec() []byte                  { return r.codec }
func (r *rawRecord) MarshalRecord() ([]byte, error) { return r.b, nil }
func (r *rawRecord) UnmarshalRecord(b []byte) error { r.b = b; return nil }

func sealRaw(t *testing.T, priv crypto.PrivKey, domain string, codec, payload []byte) []byte {
	t.Helper()
	env, err := Seal(&rawRecord{domain: domain, codec: codec, b: payload}, priv)
	if err != nil {
		t.Fatal(err)
	}
	return env
}
