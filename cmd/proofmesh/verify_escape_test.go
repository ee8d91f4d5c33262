package main

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/node"
	"github.com/proofmesh/proofmesh/protocol"
)

// A failure report's message is the executors' own text (up to 512
// bytes, any bytes), shown when every confirming report carries it:
// `proofmesh verify` prints every line that quotes a bundle through cell,
// so terminal escapes do not reach the auditor's terminal, nor does a
// newline forge a line of the verdict (a review of 2026-12-07 found the
// checks printed raw).
func TestVerifyEscapesAFailureReportsWords(t *testing.T) {
	reg := bootstrap.DefaultNetwork().Registry()
	tt, err := reg.Lookup("wasm.exec.v1")
	if err != nil {
		t.Fatal(err)
	}
	subKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	sub, _ := peer.IDFromPrivateKey(subKey)
	var keys []crypto.PrivKey
	var cands []string
	for range 3 {
		k, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		id, _ := peer.IDFromPrivateKey(k)
		keys, cands = append(keys, k), append(cands, id.String())
	}
	in := []byte("x")
	task := protocol.Task{Type: tt.ID, Input: in, InputHash: protocol.HashHex(in), InputSize: len(in),
		ModuleHash: protocol.HashHex([]byte("module")), ModuleSize: 6, Submitter: sub.String(),
		Created: time.Now().UnixMilli(), Replicas: 2, Candidates: cands, LeaseMS: tt.SLO.LeaseMS}
	task.Deadline = protocol.MaxDeadline(task.Created, len(cands), 2, tt.Lease())
	task.ID = task.ContentID()
	tenv, err := protocol.Seal(&task, subKey)
	if err != nil {
		t.Fatal(err)
	}
	seal := func(c int, msg string) []byte {
		r := &protocol.Result{TaskID: task.ID, Type: task.Type, Executor: cands[c], InputHash: task.InputHash, Time: time.Now().UnixMilli(),
			Failure: &protocol.Failure{Trap: protocol.TrapGuest, ExitCode: -1, Stderr: []byte("boom"), Message: msg}}
		r.OutputHash = protocol.HashHex(r.Output)
		env, err := protocol.Seal(r, keys[c])
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	evil := "x\x1b]0;pwned\x07\x1b[2J\nVALID task " + task.ID + " (wasm.exec.v1), stdout (base64) bW9uZXk="
	data, _ := json.Marshal(node.Bundle{Format: node.BundleFormat, Task: tenv, Results: [][]byte{seal(0, evil), seal(1, evil)}})
	p := filepath.Join(t.TempDir(), "b.json")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "verify", p)
	if code != 0 {
		t.Fatalf("verify: %d %q %q", code, out, errs)
	}
	if strings.ContainsAny(out, "\x1b\x07") || strings.Contains(out, "\nVALID task "+task.ID+" (wasm.exec.v1), stdout") {
		t.Fatalf("verify printed an executor's message raw:\n%q", out)
	}
}
