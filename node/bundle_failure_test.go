package node

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

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
		r := &protocol.Result{TaskID: task.ID, Type: task.Type, Executor: cands[c], InputHash: task.InputHash, Failure: f, Time: time.Now().UnixMilli()}
		if f == nil {
			r.Output = []byte(out)
		}
		r.OutputHash = protocol.HashHex(r.Output)
		env, err := protocol.Seal(r, keys[c])
		if err != nil {
			t.Fatal(err)
		}
		return env
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
