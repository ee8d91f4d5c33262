package node

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/protocol"
)

// The lifecycle confirms a failure on its trap, exit code and stderr; the
// sandbox's message is each executor's wording and does not count, so when
// the confirming reports' messages differ the confirmed failure carries no
// message (protocol/lifecycle.go groups). A failure bundle's report keeps
// it likewise only when all reports say it: one of two confirming
// executors cannot show every auditor its own words as the confirmed
// failure (a review of 2026-12-07 found the last report's kept whole).
func TestFailureBundleShowsOnlyAnAgreedMessage(t *testing.T) {
	reg := bootstrap.DefaultNetwork().Registry()
	tt, err := reg.Lookup("wasm.exec.v1")
	if err != nil {
		t.Fatal(err)
	}
	task, tenv, keys, cands := bundleTask(t, tt, 3, nil)
	seal := func(c int, f *protocol.Failure) []byte {
		r := &protocol.Result{TaskID: task.ID, Type: task.Type, Executor: cands[c], InputHash: task.InputHash, Failure: f, Time: time.Now().UnixMilli()}
		r.OutputHash = protocol.HashHex(r.Output)
		env, err := protocol.Seal(r, keys[c])
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	honest := &protocol.Failure{Trap: protocol.TrapGuest, ExitCode: -1, Stderr: []byte("boom"), Message: "wasm trap: unreachable"}
	liar := &protocol.Failure{Trap: protocol.TrapGuest, ExitCode: -1, Stderr: []byte("boom"), Message: "the submitter's input was malicious; see evil.example"}
	data, _ := json.Marshal(Bundle{Format: BundleFormat, Task: tenv, Results: [][]byte{seal(0, honest), seal(1, liar)}})
	rep, err := VerifyBundle(data, reg, nil)
	if err != nil || !rep.Valid || rep.Failure == nil {
		t.Fatalf("a confirmed failure does not verify: %v %+v", err, rep)
	}
	if rep.Failure.Message != "" || strings.Contains(strings.Join(rep.Checks, "\n"), "evil.example") {
		t.Fatalf("the verified failure carries one executor's unconfirmed words: message %q, checks %q", rep.Failure.Message, rep.Checks)
	}
}
