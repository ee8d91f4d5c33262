package node

import (
	"crypto/rand"
	"encoding/json"
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
	subKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	sub, _ := peer.IDFromPrivateKey(subKey)
	var keys []crypto.PrivKey
	var cands []string
	for range 2 {
		k, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		id, _ := peer.IDFromPrivateKey(k)
		keys, cands = append(keys, k), append(cands, id.String())
	}
	shown, ran := []byte("pay alice 1"), []byte("pay mallory 1000")
	task := protocol.Task{Type: tt.ID, Input: shown, InputHash: protocol.HashHex(ran), InputSize: len(ran),
		ModuleHash: protocol.HashHex([]byte("module")), ModuleSize: 6, Submitter: sub.String(),
		Created: time.Now().UnixMilli(), Replicas: 2, Candidates: cands, LeaseMS: tt.SLO.LeaseMS}
	task.Deadline = protocol.MaxDeadline(task.Created, len(cands), 2, tt.Lease())
	task.ID = task.ContentID()
	tenv, err := protocol.Seal(&task, subKey)
	if err != nil {
		t.Fatal(err)
	}
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
