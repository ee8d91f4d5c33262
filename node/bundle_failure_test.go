package node

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
)

// A failed task's bundle is its executors' equal failure reports: it
// verifies offline with as many as confirm a failure on the mesh (the
// type's quorum), says the failure is not proven, and does not verify
// with fewer, with reports that differ, or mixed with an output.
func TestFailureBundleVerifiesOnlyAsConfirmed(t *testing.T) {
	reg := bootstrap.DefaultNetwork().Registry()
	tt, err := reg.Lookup("wasm.exec.v1")
	if err != nil {
		t.Fatal(err)
	}
	task, tenv, keys, cands := bundleTask(t, tt, 3, nil)
	seal := func(c int, f *protocol.Failure, out string) []byte {
		return sealBundleResult(t, task, keys[c], cands[c], f, out)
	}
	bundle := func(envs ...[]byte) []byte {
		data, _ := json.Marshal(Bundle{Format: BundleFormat, Task: tenv, Results: envs})
		return data
	}
	exit3 := &protocol.Failure{ExitCode: 3, Stderr: []byte("input rejected")}
	rep, err := VerifyBundle(bundle(seal(0, exit3, ""), seal(1, exit3, "")), reg, nil)
	if err != nil || !rep.Valid || rep.Outcome != "failure" || rep.Failure == nil || rep.Failure.ExitCode != 3 || rep.Output != "" ||
		!strings.Contains(rep.Trust, "a failure, not proven: 2 candidates (positions [0 1] of 3") {
		t.Fatalf("confirmed failure: %v %+v", err, rep)
	}
	for name, data := range map[string][]byte{
		"one report":             bundle(seal(0, exit3, "")),
		"reports that differ":    bundle(seal(0, exit3, ""), seal(1, &protocol.Failure{ExitCode: 4}, "")),
		"a report and an output": bundle(seal(0, exit3, ""), seal(1, nil, "ok")),
	} {
		if rep, err := VerifyBundle(data, reg, nil); !errors.Is(err, ErrBadBundle) || rep.Valid || rep.Failure != nil {
			t.Errorf("%s: %v %+v", name, err, rep)
		}
	}
}

// A task that failed without a confirmed report (its deadline passed, no
// quorum) has nothing signed to audit, and says so.
func TestFailedWithoutConfirmedReportHasNoBundle(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	n := tn.Nodes[0]
	id := observeFinishedStrangerTask(t, n)
	if v, _ := n.Task(id); v.State != protocol.StateFailed {
		t.Fatalf("the stranger's task is %s", v.State)
	}
	if _, err := n.Bundle(id); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "nothing signed to audit") {
		t.Fatalf("bundle of a task failed at its deadline: %v", err)
	}
}

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
	seal := func(c int, f *protocol.Failure) []byte { return sealBundleResult(t, task, keys[c], cands[c], f, "") }
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

// sealBundleResult is exec's signed result for task: the failure f, or
// the output out.
func sealBundleResult(t *testing.T, task protocol.Task, key crypto.PrivKey, exec string, f *protocol.Failure, out string) []byte {
	t.Helper()
	r := &protocol.Result{TaskID: task.ID, Type: task.Type, Executor: exec, InputHash: task.InputHash, Failure: f, Time: time.Now().UnixMilli()}
	if f == nil {
		r.Output = []byte(out)
	}
	r.OutputHash = protocol.HashHex(r.Output)
	env, err := protocol.Seal(r, key)
	if err != nil {
		t.Fatal(err)
	}
	return env
}
