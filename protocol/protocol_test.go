package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/internal/testkeys"
)

func TestPolicyCheck(t *testing.T) {
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		caps    Capabilities
		wantErr error
		wantMsg string
	}{
		{"valid", Capabilities{CapCPUCores: 4, CapMemoryGB: json.Number("16"), CapGPUAvailable: true, CapNodeType: "compute", CapRegion: "eu-west-1"}, nil, ""},
		{"unknown key", Capabilities{"tpu_count": 1}, ErrUnknownCapability, `"tpu_count"`},
		{"cores too high", Capabilities{CapCPUCores: 257}, ErrCapabilityRange, "1..256"},
		{"cores zero", Capabilities{CapCPUCores: 0}, ErrCapabilityRange, `"cpu_cores"`},
		{"cores fractional", Capabilities{CapCPUCores: 1.5}, ErrCapabilityType, "integer"},
		{"cores string", Capabilities{CapCPUCores: "4"}, ErrCapabilityType, "integer"},
		{"bandwidth low", Capabilities{CapBandwidthMbps: 9}, ErrCapabilityRange, "10..100000"},
		{"gpu not bool", Capabilities{CapGPUAvailable: "yes"}, ErrCapabilityType, "true or false"},
		{"bad node type", Capabilities{CapNodeType: "miner"}, ErrCapabilityRange, "compute"},
		{"region upper", Capabilities{CapRegion: "EU"}, ErrCapabilityRange, "a-z0-9-"},
		{"region empty", Capabilities{CapRegion: ""}, ErrCapabilityRange, "length"},
		{"region long", Capabilities{CapRegion: strings.Repeat("a", 33)}, ErrCapabilityRange, "length"},
		{"region path", Capabilities{CapRegion: "../etc"}, ErrCapabilityRange, "character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Check(tc.caps)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if got[CapMemoryGB] != int64(16) {
					t.Fatalf("memory not normalised: %#v", got[CapMemoryGB])
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error %q does not name %q", err, tc.wantMsg)
			}
		})
	}
}

func TestPolicyCheckClaimedNewerVersionDropsUnknownKeys(t *testing.T) {
	p := DefaultPolicy()
	caps := Capabilities{CapCPUCores: 4, "tpu_count": 2}
	got, err := p.CheckClaimed(p.Version+1, caps)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["tpu_count"]; ok {
		t.Fatal("unknown key of a newer policy was kept")
	}
	if _, err := p.CheckClaimed(p.Version, caps); !errors.Is(err, ErrUnknownCapability) {
		t.Fatalf("same version with unknown key: %v", err)
	}
	if _, err := p.CheckClaimed(p.Version+1, Capabilities{CapCPUCores: 999}); !errors.Is(err, ErrCapabilityRange) {
		t.Fatalf("newer version must still check known keys: %v", err)
	}
}

func validHeartbeat(id peer.ID, seq uint64, now time.Time) *Heartbeat {
	return &Heartbeat{
		NodeID: id.String(), Seq: seq, Time: now.UnixMilli(),
		Capabilities:  Capabilities{CapCPUCores: 2, CapNodeType: "compute"},
		PolicyVersion: 1, NodeType: "compute", Load: 0.1, Health: 1, Version: "test",
		IntervalMS: 1000,
	}
}

func TestValidateHeartbeat(t *testing.T) {
	_, me := testkeys.New(t)
	_, other := testkeys.New(t)
	now := time.Now()
	check := HeartbeatCheck{From: me, Now: now, Skew: DefaultClockSkew, LastSeq: 5, Policy: DefaultPolicy()}
	tests := []struct {
		name   string
		mutate func(h *Heartbeat)
		want   error
		ignore bool
	}{
		{"valid", func(h *Heartbeat) {}, nil, false},
		{"forged node id", func(h *Heartbeat) { h.NodeID = other.String() }, ErrForged, false},
		{"unknown capability", func(h *Heartbeat) { h.Capabilities["x"] = 1 }, ErrUnknownCapability, false},
		{"out of range", func(h *Heartbeat) { h.Capabilities[CapCPUCores] = 1000 }, ErrCapabilityRange, false},
		{"replayed seq", func(h *Heartbeat) { h.Seq = 5 }, ErrStale, true},
		{"old seq", func(h *Heartbeat) { h.Seq = 2 }, ErrStale, true},
		// An old heartbeat a changed policy refuses is old news first: its
		// origin's token is given back when another peer replays it.
		{"old seq, capabilities refused", func(h *Heartbeat) { h.Seq = 2; h.Capabilities["x"] = 1 }, ErrStale, true},
		{"clock ahead", func(h *Heartbeat) { h.Time = now.Add(time.Minute).UnixMilli() }, ErrClockSkew, true},
		{"clock behind", func(h *Heartbeat) { h.Time = now.Add(-time.Minute).UnixMilli() }, ErrClockSkew, true},
		{"node type mismatch", func(h *Heartbeat) { h.NodeType = "verifier" }, ErrMalformed, false},
		{"load out of range", func(h *Heartbeat) { h.Load = 2 }, ErrMalformed, false},
		{"zero interval", func(h *Heartbeat) { h.IntervalMS = 0 }, ErrMalformed, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := validHeartbeat(me, 6, now)
			tc.mutate(h)
			_, err := ValidateHeartbeat(h, check)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil && Ignorable(err) != tc.ignore {
				t.Fatalf("Ignorable(%v) = %v, want %v", err, !tc.ignore, tc.ignore)
			}
		})
	}
}

func TestHeartbeatRoundTripAndLimits(t *testing.T) {
	_, me := testkeys.New(t)
	h := validHeartbeat(me, 1, time.Now())
	b, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeHeartbeat(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeID != h.NodeID || got.Seq != 1 {
		t.Fatalf("round trip: %+v", got)
	}
	big := append([]byte(`{"node_id":"`), make([]byte, MaxHeartbeatBytes)...)
	if _, err := DecodeHeartbeat(big); !errors.Is(err, ErrOversized) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := DecodeHeartbeat([]byte(`{"node_id":"x","extra":1}`)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "node_id") {
		t.Fatalf("unknown field skipped, bad node_id refused: %v", err)
	}
}

func TestStatusAt(t *testing.T) {
	now := time.Now()
	iv := time.Second
	tests := []struct {
		ago  time.Duration
		del  bool
		want PeerStatus
	}{
		{0, false, StatusOnline},
		{2900 * time.Millisecond, false, StatusOnline},
		{3 * time.Second, false, StatusStale},
		{9 * time.Second, false, StatusStale},
		{10 * time.Second, false, StatusOffline},
		{0, true, StatusDeleted},
	}
	for _, tc := range tests {
		if got := StatusAt(now.Add(-tc.ago), iv, tc.del, now); got != tc.want {
			t.Errorf("StatusAt(%s ago, deleted=%v) = %s, want %s", tc.ago, tc.del, got, tc.want)
		}
	}
}

func TestAdaptiveInterval(t *testing.T) {
	if got := AdaptiveInterval(time.Second, 5, 20); got != time.Second {
		t.Errorf("small network stretched to %s", got)
	}
	// 200 peers at a budget of 20 msg/s: each node beats about every 10 s.
	if got := AdaptiveInterval(time.Second, 199, 20); got != 10*time.Second {
		t.Errorf("200 nodes: %s, want 10s", got)
	}
}

func TestLeaveOnlyOwnKey(t *testing.T) {
	priv, id := testkeys.New(t)
	otherPriv, _ := testkeys.New(t)
	env, err := Seal(&Leave{NodeID: id.String(), Time: time.Now().UnixMilli(), Reason: "shutdown"}, priv)
	if err != nil {
		t.Fatal(err)
	}
	l, signer, err := OpenLeave(env)
	if err != nil || signer != id || l.Reason != "shutdown" {
		t.Fatalf("open own leave: %v %v", err, signer)
	}
	forged, err := Seal(&Leave{NodeID: id.String(), Time: time.Now().UnixMilli()}, otherPriv)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenLeave(forged); !errors.Is(err, ErrForged) {
		t.Fatalf("leave signed by another key: %v", err)
	}
	// A result envelope is not a leave, even with a valid signature.
	res, _ := Seal(&Result{TaskID: strings.Repeat("a", 64), Executor: id.String(), Output: []byte("x"), OutputHash: HashHex([]byte("x"))}, priv)
	if _, _, err := OpenLeave(res); err == nil {
		t.Fatal("a result envelope opened as a leave")
	}
	tampered := append([]byte(nil), env...)
	tampered[len(tampered)-10] ^= 1
	if _, _, err := OpenLeave(tampered); err == nil {
		t.Fatal("tampered leave accepted")
	}
}

func TestAuditCheckpointOnlyOwnKey(t *testing.T) {
	priv, id := testkeys.New(t)
	otherPriv, _ := testkeys.New(t)
	cp := AuditCheckpoint{NodeID: id.String(), Seq: 7, Hash: HashHex([]byte("e7")), Time: 1}
	env, err := Seal(&cp, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenAuditCheckpoint(env)
	if err != nil || *got != cp {
		t.Fatalf("open own checkpoint: %+v, %v", got, err)
	}
	forged, _ := Seal(&cp, otherPriv)
	if _, err := OpenAuditCheckpoint(forged); !errors.Is(err, ErrForged) {
		t.Fatalf("checkpoint signed by another key: %v", err)
	}
	for _, bad := range []AuditCheckpoint{
		{NodeID: id.String(), Seq: 0, Hash: cp.Hash},
		{NodeID: id.String(), Seq: 1, Hash: "../x"},
	} {
		env, _ := Seal(&bad, priv)
		if _, err := OpenAuditCheckpoint(env); !errors.Is(err, ErrMalformed) {
			t.Errorf("checkpoint %+v: %v", bad, err)
		}
	}
	leave, _ := Seal(&Leave{NodeID: id.String(), Time: 1}, priv)
	if _, err := OpenAuditCheckpoint(leave); err == nil {
		t.Fatal("a leave envelope opened as a checkpoint")
	}
}

func TestOpenResult(t *testing.T) {
	priv, id := testkeys.New(t)
	_, other := testkeys.New(t)
	out := []byte(`{"y":"1"}`)
	r := &Result{TaskID: strings.Repeat("b", 64), Type: "mimc.chain.v1", Executor: id.String(), Output: out, OutputHash: HashHex(out)}
	env, err := Seal(r, priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenResult(env); err != nil {
		t.Fatal(err)
	}
	r.Executor = other.String()
	env, _ = Seal(r, priv)
	if _, err := OpenResult(env); !errors.Is(err, ErrForged) {
		t.Fatalf("result claimed for another executor: %v", err)
	}
	r.Executor = id.String()
	r.OutputHash = HashHex([]byte("other"))
	env, _ = Seal(r, priv)
	if _, err := OpenResult(env); !errors.Is(err, ErrMalformed) {
		t.Fatalf("output hash mismatch: %v", err)
	}
}

func TestTransition(t *testing.T) {
	ok := [][2]TaskState{
		{StatePending, StateAssigned}, {StateAssigned, StateRunning}, {StateRunning, StateProving},
		{StateProving, StateVerifying}, {StateVerifying, StateAccepted}, {StateAssigned, StateAccepted},
		{StatePending, StateFailed}, {StateRunning, StateAssigned}, {StateProving, StateFailed},
	}
	bad := [][2]TaskState{
		{StateAccepted, StateFailed}, {StateFailed, StateAccepted}, {StateRunning, StatePending},
		{StateProving, StateRunning}, {StateAccepted, StateAccepted}, {"bogus", StateRunning},
	}
	for _, c := range ok {
		if err := Transition(c[0], c[1]); err != nil {
			t.Errorf("%s -> %s: %v", c[0], c[1], err)
		}
	}
	for _, c := range bad {
		if err := Transition(c[0], c[1]); !errors.Is(err, ErrBadTransition) {
			t.Errorf("%s -> %s allowed", c[0], c[1])
		}
	}
}

func gpuType() TaskType {
	one := int64(1)
	return TaskType{
		ID: "gpu.v1", ModuleHash: strings.Repeat("a", 64),
		Requires:        map[string]Requirement{CapGPUAvailable: {Equals: true}, CapCPUCores: {Min: &one}, CapNodeType: {OneOf: []string{NodeTypeCompute}}},
		Profile:         Profile{MaxRuntimeMS: 1000, MaxMemoryPages: 16, Fuel: 1e6, MaxInputBytes: 100, MaxOutputBytes: 100, Egress: "none"},
		Verification:    Verification{Kind: VerifyGroth16, Circuit: "c", VKHash: strings.Repeat("b", 64)},
		DefaultReplicas: 1, MaxReplicas: 3, SLO: SLO{LeaseMS: 1000},
	}
}

func TestRankByCapabilities(t *testing.T) {
	tt := gpuType()
	if err := tt.Validate(DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	gpu := Capabilities{CapGPUAvailable: true, CapCPUCores: int64(4), CapNodeType: "compute"}
	cpu := Capabilities{CapGPUAvailable: false, CapCPUCores: int64(4), CapNodeType: "compute"}
	on := func(id, origin string, caps Capabilities) PeerView {
		return PeerView{ID: id, Status: StatusOnline, Capabilities: caps, TaskTypes: []string{"gpu.v1"}, Present: true, Origin: origin}
	}
	peers := []PeerView{
		on("gpu-1", "o1", gpu), on("gpu-2", "o2", gpu), on("cpu", "o3", cpu),
		{ID: "offline", Status: StatusOffline, Capabilities: gpu, TaskTypes: []string{"gpu.v1"}, Present: true},
		{ID: "gossip-only", Status: StatusOnline, Capabilities: gpu, TaskTypes: []string{"gpu.v1"}, Origin: "o4"},
	}
	got, err := Rank(tt, "task", peers, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !slices.Contains(got, "gpu-1") || !slices.Contains(got, "gpu-2") {
		t.Fatalf("rank = %v, want the two present GPU peers", got)
	}
	_, err = Rank(tt, "task", peers[2:3], 0)
	if !errors.Is(err, ErrNoCapablePeer) || !strings.Contains(err.Error(), "gpu_available") {
		t.Fatalf("no GPU peer: %v", err)
	}
	_, err = Rank(tt, "task", peers[4:], 0)
	if !errors.Is(err, ErrNoCapablePeer) || !strings.Contains(err.Error(), "not directly connected") {
		t.Fatalf("gossip-only peer: %v", err)
	}
}

// Ten identities behind one origin get one candidate between them, and
// the order is a function of the seed, not of what peers say of their load.
func TestRankOneCandidatePerOrigin(t *testing.T) {
	tt := gpuType()
	gpu := Capabilities{CapGPUAvailable: true, CapCPUCores: int64(4), CapNodeType: "compute"}
	var peers []PeerView
	for i := range 10 {
		peers = append(peers, PeerView{ID: fmt.Sprintf("sybil-%d", i), Status: StatusOnline, Capabilities: gpu,
			TaskTypes: []string{"gpu.v1"}, Present: true, Origin: "203.0.113.0/24"})
	}
	peers = append(peers, PeerView{ID: "honest", Status: StatusOnline, Capabilities: gpu, TaskTypes: []string{"gpu.v1"}, Present: true, Origin: "198.51.100.0/24"})
	got, err := Rank(tt, "seed", peers, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !slices.Contains(got, "honest") {
		t.Fatalf("rank = %v, want honest and one sybil", got)
	}
	again, _ := Rank(tt, "seed", peers, 0)
	if !slices.Equal(got, again) {
		t.Fatal("rank is not a function of the seed")
	}
	d := DefaultDiversity()
	for _, c := range []struct{ a, b string }{
		{"203.0.113.7:4001", "203.0.113.99:5001"}, {"[2001:db8:1:2::1]:1", "[2001:db8:1:ffff::9]:2"},
		// One machine of a LAN, a VPC or a container network, two keys
		// on two ports (a review of 2026-12-07): one origin.
		{"10.0.0.5:40001", "10.0.0.5:40002"}, {"192.168.1.9:4001", "192.168.1.9:4002"},
		{"169.254.3.4:1", "169.254.3.4:2"}, {"[fd00:1:2:3::1]:1", "[fd00:1:2:3::ffff]:2"},
	} {
		if d.Origin(netip.MustParseAddrPort(c.a)) != d.Origin(netip.MustParseAddrPort(c.b)) {
			t.Errorf("%s and %s should share an origin", c.a, c.b)
		}
	}
	if d.Origin(netip.MustParseAddrPort("127.0.0.1:4001")) == d.Origin(netip.MustParseAddrPort("127.0.0.1:4002")) {
		t.Error("loopback ports are distinct origins on a loopback testnet")
	}
	if d.Origin(netip.MustParseAddrPort("10.0.0.5:4001")) == d.Origin(netip.MustParseAddrPort("10.0.0.6:4001")) {
		t.Error("two hosts of a private network share an origin")
	}
	if byHost := (Diversity{IPv4Prefix: 24, IPv6Prefix: 48, PrivateByHost: true}); byHost.Origin(netip.MustParseAddrPort("127.0.0.1:4001")) != byHost.Origin(netip.MustParseAddrPort("127.0.0.1:4002")) {
		t.Error("private_by_host: loopback ports still distinct origins")
	}
	if err := (Diversity{IPv4Prefix: 33, IPv6Prefix: 48}).Validate(); err == nil {
		t.Error("prefix 33 accepted")
	}
}

// Rendezvous weighting: a peer this node saw verify wins more often than
// one it saw refuted, over many seeds.
func TestRankWeightsObservedReputation(t *testing.T) {
	tt := gpuType()
	gpu := Capabilities{CapGPUAvailable: true, CapCPUCores: int64(4), CapNodeType: "compute"}
	good := PeerView{ID: "good", Status: StatusOnline, Capabilities: gpu, TaskTypes: []string{"gpu.v1"}, Present: true, Origin: "a", Verified: 20}
	bad := PeerView{ID: "bad", Status: StatusOnline, Capabilities: gpu, TaskTypes: []string{"gpu.v1"}, Present: true, Origin: "b", Rejected: 2}
	first := 0
	for i := range 400 {
		got, _ := Rank(tt, fmt.Sprint(i), []PeerView{good, bad}, 1)
		if got[0] == "good" {
			first++
		}
	}
	if first < 300 {
		t.Fatalf("good peer first in %d of 400", first)
	}
}

func TestTaskChecks(t *testing.T) {
	_, sub := testkeys.New(t)
	_, c1 := testkeys.New(t)
	_, c2 := testkeys.New(t)
	reg := Registry{"gpu.v1": gpuType()}
	now := time.Now()
	in := []byte("hello")
	mk := func() *Task {
		tk := &Task{Type: "gpu.v1", Input: in, InputHash: HashHex(in), InputSize: len(in), Submitter: sub.String(),
			Created: now.UnixMilli(), Deadline: now.Add(2 * time.Second).UnixMilli(), Replicas: 1,
			Candidates: []string{c1.String(), c2.String()}, LeaseMS: 1000}
		tk.ID = tk.ContentID()
		return tk
	}
	if _, err := CheckTask(mk(), reg, now, DefaultClockSkew); err != nil {
		t.Fatal(err)
	}
	tk := mk()
	tk.Replicas = 2
	if _, err := CheckTask(tk, reg, now, DefaultClockSkew); !errors.Is(err, ErrTaskIDMismatch) {
		t.Fatalf("edited task kept its id: %v", err)
	}
	// Its time first: a replay once gossipsub forgot its id is refused
	// before its id and input are hashed, edited or not.
	if _, err := CheckTask(tk, reg, now.Add(DefaultClockSkew+time.Second), DefaultClockSkew); !errors.Is(err, ErrClockSkew) {
		t.Fatalf("a task past the skew: %v, want refused by its time before its id is checked", err)
	}
	// Signed by the submitter it names, or refused.
	subKey, _ := testkeys.New(t)
	tk = mk()
	if env, err := Seal(tk, subKey); err != nil {
		t.Fatal(err)
	} else if _, err := OpenTask(env); !errors.Is(err, ErrForged) {
		t.Fatalf("task signed by a key not its submitter's: %v", err)
	}
	tk = mk()
	tk.Type = "nope"
	tk.ID = tk.ContentID()
	if _, err := CheckTask(tk, reg, now, DefaultClockSkew); !errors.Is(err, ErrUnknownTaskType) {
		t.Fatalf("unknown type: %v", err)
	}
	tk = mk()
	tk.Created = now.Add(-3 * time.Second).UnixMilli()
	tk.Deadline = now.Add(-time.Second).UnixMilli()
	tk.ID = tk.ContentID()
	if _, err := CheckTask(tk, reg, now, time.Second); !errors.Is(err, ErrClockSkew) {
		t.Fatalf("created 3 s ago with 1 s of skew: %v", err)
	}
	if _, err := CheckTask(tk, reg, now, DefaultClockSkew); !errors.Is(err, ErrDeadlinePassed) {
		t.Fatalf("past deadline: %v", err)
	}
	tk = mk()
	tk.Input = make([]byte, 101)
	tk.InputHash, tk.InputSize = HashHex(tk.Input), 101
	tk.ID = tk.ContentID()
	if _, err := CheckTask(tk, reg, now, DefaultClockSkew); !errors.Is(err, ErrInputTooLarge) {
		t.Fatalf("input over limit: %v", err)
	}
	tk = mk()
	tk.Replicas = 4
	tk.ID = tk.ContentID()
	if _, err := CheckTask(tk, reg, now, DefaultClockSkew); !errors.Is(err, ErrBadReplicas) {
		t.Fatalf("replicas over max: %v", err)
	}

	// Amplification: a lease shorter than the type's, a deadline beyond
	// what the candidates can use, an empty input sent by hash.
	tk = mk()
	tk.LeaseMS = 1
	tk.ID = tk.ContentID()
	if _, err := CheckTask(tk, reg, now, DefaultClockSkew); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "lease_ms") {
		t.Fatalf("short lease: %v", err)
	}
	tk = mk()
	tk.Deadline = now.Add(time.Hour).UnixMilli()
	tk.ID = tk.ContentID()
	if _, err := CheckTask(tk, reg, now, DefaultClockSkew); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("far deadline: %v", err)
	}
	tk = mk()
	tk.Deadline = MaxDeadline(tk.Created, 2, 1, time.Second)
	tk.Input, tk.InputHash, tk.InputSize = []byte{}, HashHex(nil), 0
	tk.ID = tk.ContentID()
	if _, err := CheckTask(tk, reg, now, DefaultClockSkew); err != nil {
		t.Fatalf("empty inline input at the longest deadline: %v", err)
	}
	tk.Input = nil
	tk.ID = tk.ContentID()
	if _, err := CheckTask(tk, reg, now, DefaultClockSkew); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty input sent by hash: %v", err)
	}
}

// Refusals of an input speak of JSON and fields, never of Go types.
func TestCheckInputSpeaksPlainly(t *testing.T) {
	for _, c := range []struct{ typ, in, want string }{
		{"mimc.chain.v1", `{"x":1}`, `field "x" is a JSON number, want a string`},
		{"mimc.chain.v1", `{x:1}`, "not valid JSON at byte 2"},
		{"mimc.chain.v1", `{"x":"1","y":2}`, `unknown field "y"`},
		{"mlp.infer.v1", `{"x":"a"}`, `field "x" is a JSON string, want a list of numbers`},
		// Too large is not malformed (a new user's walkthrough).
		{"mimc.chain.v1", `{"x":"` + strings.Repeat("9", 80) + `"}`, "x has 80 digits; it must be below the BN254 scalar field modulus"},
		{"mimc.chain.v1", `{"x":"-1"}`, "must be a plain decimal number (digits only"},
	} {
		err := CheckInput(c.typ, []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "Go ") || strings.Contains(err.Error(), "json:") {
			t.Errorf("%s %s: %v, want %q", c.typ, c.in, err, c.want)
		}
	}
}

func TestCheckInput(t *testing.T) {
	good := map[string]string{
		"mimc.chain.v1": `{"x":"12345"}`,
		"mlp.infer.v1":  `{"x":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,-128]}`,
		"wasm.exec.v1":  "anything",
	}
	for typ, in := range good {
		if err := CheckInput(typ, []byte(in)); err != nil {
			t.Errorf("%s %s: %v", typ, in, err)
		}
	}
	bad := []struct{ typ, in string }{
		{"mimc.chain.v1", `{"x":12}`},
		{"mimc.chain.v1", `{"x":"012"}`},
		{"mimc.chain.v1", `{"x":"-1"}`},
		{"mimc.chain.v1", `{"x":"21888242871839275222246405745257275088548364400416034343698204186575808495617"}`},
		{"mimc.chain.v1", `{"x":"1","y":"2"}`},
		{"mlp.infer.v1", `{"x":[1,2]}`},
		{"mlp.infer.v1", `{"x":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,128]}`},
		{"mlp.infer.v1", `{"x":[1.5,2,3,4,5,6,7,8,9,10,11,12,13,14,15,1]}`},
		// Regressions: encodings the guests and circuits refuse must be
		// refused at submission (quoted numbers, a stray bracket after the
		// object, escapes, duplicate keys, padding).
		{"mlp.infer.v1", `{"x":["1",2,3,4,5,6,7,8,9,10,11,12,13,14,15,1]}`},
		{"mlp.infer.v1", `{"x":[-0,2,3,4,5,6,7,8,9,10,11,12,13,14,15,1]}`},
		{"mlp.infer.v1", `{"x":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,1]}]`},
		{"mimc.chain.v1", `{"x":"1"}]`},
		{"mimc.chain.v1", `{"x":"1"}}`},
		{"mimc.chain.v1", `{"x":"\u0031"}`},
		{"mimc.chain.v1", `{"x":"1","x":"2"}`},
		{"mimc.chain.v1", `{ "x": "1" }`},
	}
	for _, c := range bad {
		if err := CheckInput(c.typ, []byte(c.in)); !errors.Is(err, ErrBadInput) {
			t.Errorf("%s %s accepted: %v", c.typ, c.in, err)
		}
	}
}

func TestLimiterRefillsAndForgets(t *testing.T) {
	l := NewLimiter(2, 3)
	t0 := time.Unix(0, 0)
	for i := range 3 {
		if !l.Allow("a", t0) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.Allow("a", t0) || l.Has("a", t0) {
		t.Fatal("burst exceeded")
	}
	if !l.Allow("b", t0) {
		t.Fatal("another key is limited by the first")
	}
	if !l.Allow("a", t0.Add(500*time.Millisecond)) {
		t.Fatal("no refill after half a second at 2/s")
	}
	l.Allow("c", t0.Add(2*time.Minute)) // sweeps idle buckets
	if l.Len() != 1 {
		t.Fatalf("%d buckets kept", l.Len())
	}
	// Asking makes no bucket; a refund gives back one token, never above
	// the burst, and none to a key without a bucket.
	if !l.Has("d", t0.Add(2*time.Minute)) || l.Len() != 1 {
		t.Fatalf("asking about a new key: %d buckets kept", l.Len())
	}
	l.Refund("d")
	l.Refund("c")
	if l.Len() != 1 {
		t.Fatalf("a refund made a bucket: %d kept", l.Len())
	}
	t1 := t0.Add(2 * time.Minute)
	for i := range 3 { // "c" spent one at the sweep, and got it back
		if !l.Allow("c", t1) {
			t.Fatalf("request %d of c's burst refused: the refund was lost", i)
		}
	}
	if l.Has("c", t1) {
		t.Fatal("a refund raised the bucket above its burst")
	}
}

// Issue 12, attack 3: a heartbeat whose region, version or listen_addrs
// carried "\x1b[31m…\r\n" was accepted, and proofmesh peers printed it as
// raw escape sequences and a forged extra row. Such a heartbeat is
// REJECTED (malformed), by the decoder and by the validator.
func TestTerminalEscapesInHeartbeatRejected(t *testing.T) {
	_, me := testkeys.New(t)
	now := time.Now()
	check := HeartbeatCheck{From: me, Now: now, Skew: DefaultClockSkew, Policy: DefaultPolicy()}
	long := "/ip4/1.2.3.4/tcp/1/p2p-circuit" + strings.Repeat("/ip4/1.2.3.4/tcp/1", 20)
	tests := []struct {
		name   string
		mutate func(h *Heartbeat)
	}{
		{"escape in region", func(h *Heartbeat) { h.Region = "\x1b[31meu-west\r\n" }},
		{"upper case region", func(h *Heartbeat) { h.Region = "EU" }},
		{"region too long", func(h *Heartbeat) { h.Region = strings.Repeat("a", 33) }},
		{"escape in version", func(h *Heartbeat) { h.Version = "1.0\x1b[2J" }},
		{"newline in version", func(h *Heartbeat) { h.Version = "1.0\r\n12D3Koo fake online" }},
		{"space in version", func(h *Heartbeat) { h.Version = "1.0 beta" }},
		{"version too long", func(h *Heartbeat) { h.Version = strings.Repeat("v", 65) }},
		{"escape in node type", func(h *Heartbeat) { h.NodeType = "compute\x1b[0m"; delete(h.Capabilities, CapNodeType) }},
		{"escape in task type", func(h *Heartbeat) { h.TaskTypes = []string{"mimc.chain.v1\x07"} }},
		{"listen addr with a forged row", func(h *Heartbeat) { h.ListenAddrs = []string{"/ip4/1.2.3.4/tcp/1\r\nforged row"} }},
		{"listen addr not a multiaddr", func(h *Heartbeat) { h.ListenAddrs = []string{"hello"} }},
		{"listen addr too long", func(h *Heartbeat) { h.ListenAddrs = []string{long} }},
		{"too many listen addrs", func(h *Heartbeat) {
			for range MaxHeartbeatAddrs + 1 {
				h.ListenAddrs = append(h.ListenAddrs, "/ip4/1.2.3.4/tcp/1")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := validHeartbeat(me, 1, now)
			tc.mutate(h)
			if _, err := ValidateHeartbeat(h, check); !errors.Is(err, ErrMalformed) || Ignorable(err) {
				t.Fatalf("ValidateHeartbeat = %v, want a REJECT (ErrMalformed)", err)
			}
			b, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeHeartbeat(b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeHeartbeat = %v, want ErrMalformed", err)
			}
		})
	}
	h := validHeartbeat(me, 1, now)
	h.Region, h.Version = "eu-west-1", "v0.3.1-rc.1+abc_def"
	h.TaskTypes = []string{"mimc.chain.v1", "wasm.exec.v1"}
	h.ListenAddrs = []string{"/ip4/10.0.0.1/tcp/4001/p2p/" + me.String(), "/ip6/::1/udp/4001/quic-v1"}
	if _, err := ValidateHeartbeat(h, check); err != nil {
		t.Fatalf("an honest heartbeat refused: %v", err)
	}
}
