package node

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/protocol"
)

// A bundle's task envelope carries the input inline, and the report says
// the id binds "input, candidates, schedule". But VerifyBundle opens the
// task with OpenTask and CheckSchedule only, never checking that the
// inline input hashes to input_hash: a submitter can sign a task showing
// input A while its executors (their results bound to input_hash) ran
// input B, and the bundle verifies. (On the mesh CheckTask would refuse
// such a task; an offline auditor gets no such check.)
func TestBundleTaskInlineInputMustMatchItsHash(t *testing.T) {
	reg := bootstrap.DefaultNetwork().Registry()
	tt, err := reg.Lookup("wasm.exec.v1")
	if err != nil {
		t.Fatal(err)
	}
	shown, ran := []byte("pay alice 1"), []byte("pay mallory 1000")
	task, tenv, keys, cands := bundleTask(t, tt, 2, func(task *protocol.Task) {
		task.Input, task.InputHash, task.InputSize = shown, protocol.HashHex(ran), len(ran)
	})
	b := Bundle{Format: BundleFormat, Task: tenv}
	out := []byte("ok")
	for i, k := range keys {
		env, err := protocol.Seal(&protocol.Result{TaskID: task.ID, Type: task.Type, Executor: cands[i], InputHash: task.InputHash,
			Output: out, OutputHash: protocol.HashHex(out), Time: time.Now().UnixMilli()}, k)
		if err != nil {
			t.Fatal(err)
		}
		b.Results = append(b.Results, env)
	}
	data, _ := json.Marshal(b)
	if rep, err := VerifyBundle(data, reg, nil); err == nil || rep.Valid {
		t.Fatalf("bundle whose task shows an input other than the one hashed verifies: %+v", rep)
	}
}

// Replicas agree on a whole outcome: output, stderr and output files. A
// bundle whose results share stdout but differ in stderr (or files) did
// not reach a quorum on the mesh and must not verify offline (a review of
// 2026-12-07: VerifyBundle compared stdout only). One that agrees names
// the candidate positions that signed it.
func TestBundleResultsAgreeOnTheWholeOutcome(t *testing.T) {
	reg := bootstrap.DefaultNetwork().Registry()
	tt, err := reg.Lookup("wasm.exec.v1")
	if err != nil {
		t.Fatal(err)
	}
	task, tenv, keys, cands := bundleTask(t, tt, 4, nil)
	bundle := func(stderr [2]string, who [2]int) []byte {
		b := Bundle{Format: BundleFormat, Task: tenv}
		out := []byte("ok")
		for i, c := range who {
			env, err := protocol.Seal(&protocol.Result{TaskID: task.ID, Type: task.Type, Executor: cands[c], InputHash: task.InputHash,
				Output: out, OutputHash: protocol.HashHex(out), Stderr: []byte(stderr[i]), Time: time.Now().UnixMilli()}, keys[c])
			if err != nil {
				t.Fatal(err)
			}
			b.Results = append(b.Results, env)
		}
		data, _ := json.Marshal(b)
		return data
	}
	if rep, err := VerifyBundle(bundle([2]string{"", "warning: x"}, [2]int{0, 1}), reg, nil); err == nil || rep.Valid {
		t.Fatalf("results that differ in stderr verify as a quorum: %+v", rep)
	}
	rep, err := VerifyBundle(bundle([2]string{"w", "w"}, [2]int{3, 2}), reg, nil)
	if err != nil || !rep.Valid || rep.Outcome != "output" || rep.Failure != nil {
		t.Fatalf("agreeing backups: %v %+v", err, rep)
	}
	if !strings.Contains(rep.Trust, "positions [2 3] of 4; 0 of the 2 that start at once") {
		t.Fatalf("trust does not name the positions that signed: %s", rep.Trust)
	}
}

// bundleTask is a wasm.exec.v1 task of 2 replicas over n candidates with
// fresh keys, input "x" unless edit changes it, sealed by a fresh
// submitter; with the candidates' keys.
func bundleTask(t *testing.T, tt protocol.TaskType, n int, edit func(*protocol.Task)) (protocol.Task, []byte, []crypto.PrivKey, []string) {
	t.Helper()
	subKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	sub, _ := peer.IDFromPrivateKey(subKey)
	var keys []crypto.PrivKey
	var cands []string
	for range n {
		k, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		id, _ := peer.IDFromPrivateKey(k)
		keys, cands = append(keys, k), append(cands, id.String())
	}
	in := []byte("x")
	task := protocol.Task{Type: tt.ID, Input: in, InputHash: protocol.HashHex(in), InputSize: len(in),
		ModuleHash: protocol.HashHex([]byte("module")), ModuleSize: 6, Submitter: sub.String(),
		Created: time.Now().UnixMilli(), Replicas: 2, Candidates: cands, LeaseMS: tt.SLO.LeaseMS}
	task.Deadline = protocol.MaxDeadline(task.Created, len(cands), 2, tt.Lease())
	if edit != nil {
		edit(&task)
	}
	task.ID = task.ContentID()
	tenv, err := protocol.Seal(&task, subKey)
	if err != nil {
		t.Fatal(err)
	}
	return task, tenv, keys, cands
}
