package node

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/zk"
)

// BundleFormat names the bundle encoding.
const BundleFormat = "proofmesh-bundle/v2"

// MaxBundleBytes bounds a bundle read from outside.
const MaxBundleBytes = 8 << 20

// ErrBadBundle is wrapped by every reason a bundle does not verify.
var ErrBadBundle = errors.New("bundle does not verify")

// Bundle is what an auditor needs to check a result offline: the task as
// its submitting node signed it (whose id is the hash of its content, so
// the input, the candidates and the schedule are bound to it) and the
// executors' signed results that settled it (one for groth16 types, the
// quorum for replicated ones; for a failed task, the equal failure
// reports that confirmed the failure).
type Bundle struct {
	Format  string   `json:"format"`
	Task    []byte   `json:"task"` // the submitter's sealed task envelope
	Results [][]byte `json:"results"`
}

// VerifyBundle checks a bundle against a registry and the ceremony keys:
// the task's signature by its submitter and its id against its content,
// every result's envelope signature, that each executor was a distinct
// candidate, the input and binding under the proof and the Groth16 proof,
// or for replicated types that a quorum of distinct executors agree. It
// trusts nothing in the bundle but the keys, and says what the trust in a
// replicated result rests on.
func VerifyBundle(data []byte, reg protocol.Registry, keys *zk.KeySet) (api.VerifyReport, error) {
	reps, errs := VerifyBundles([][]byte{data}, reg, keys)
	return reps[0], errs[0]
}

// VerifyBundles verifies several bundles, their Groth16 proofs in one batch
// per circuit (zk.BatchVerify: n+2 Miller loops instead of 3n), and names
// each bad one: the i-th report and error are the i-th bundle's.
func VerifyBundles(datas [][]byte, reg protocol.Registry, keys *zk.KeySet) ([]api.VerifyReport, []error) {
	reps := make([]api.VerifyReport, len(datas))
	errs := make([]error, len(datas))
	type proofRef struct{ bundle, result int }
	items := map[string][]zk.BatchItem{} // circuit -> proofs
	refs := map[string][]proofRef{}
	for i, data := range datas {
		proofs, err := checkBundle(data, reg, &reps[i])
		if err != nil {
			errs[i] = badBundle(&reps[i], "%v", err)
			continue
		}
		for _, p := range proofs {
			items[p.circuit] = append(items[p.circuit], p.item)
			refs[p.circuit] = append(refs[p.circuit], proofRef{i, p.result})
		}
	}
	for circuit, its := range items {
		bad, err := keys.BatchVerify(circuit, its)
		if err != nil {
			for _, r := range refs[circuit] {
				if errs[r.bundle] == nil {
					errs[r.bundle] = badBundle(&reps[r.bundle], "result %d: %v", r.result, err)
				}
			}
			continue
		}
		for _, k := range bad {
			r := refs[circuit][k]
			if errs[r.bundle] == nil {
				errs[r.bundle] = badBundle(&reps[r.bundle], "result %d: %v: the Groth16 proof of %s does not verify", r.result, errProof, circuit)
			}
		}
	}
	for circuit, rs := range refs {
		for _, r := range rs {
			if errs[r.bundle] == nil {
				reps[r.bundle].Checks = append(reps[r.bundle].Checks, fmt.Sprintf("result %d: Groth16 proof of %s verifies", r.result, circuit))
			}
		}
	}
	for i := range reps {
		reps[i].Valid = errs[i] == nil
		if !reps[i].Valid {
			reps[i].Output, reps[i].Trust, reps[i].Outcome, reps[i].Failure = "", "", "", nil
		}
	}
	return reps, errs
}

func badBundle(rep *api.VerifyReport, format string, a ...any) error {
	err := fmt.Errorf("%w: %s", ErrBadBundle, fmt.Sprintf(format, a...))
	rep.Error = err.Error()
	return err
}

// pendingProof is a Groth16 proof of a bundle, its statement checked,
// waiting for the batch.
type pendingProof struct {
	circuit string
	result  int
	item    zk.BatchItem
}

// checkBundle checks everything in a bundle but its Groth16 proofs, which
// it returns with their statements, and fills rep.
func checkBundle(data []byte, reg protocol.Registry, rep *api.VerifyReport) ([]pendingProof, error) {
	var b Bundle
	if err := protocol.DecodeStrict(data, MaxBundleBytes, &b); err != nil {
		return nil, fmt.Errorf("not a bundle: %v", err)
	}
	if b.Format != BundleFormat {
		return nil, fmt.Errorf("format %q, want %q", b.Format, BundleFormat)
	}
	t, err := protocol.OpenTask(b.Task)
	if err != nil {
		return nil, fmt.Errorf("task: %v", err)
	}
	rep.TaskID, rep.Type = t.ID, t.Type
	rep.Checks = append(rep.Checks, fmt.Sprintf("task signed by its submitting node %s; its id matches its content (input, candidates, schedule)", t.Submitter))
	tt, err := reg.Lookup(t.Type)
	if err != nil {
		return nil, err
	}
	if err := protocol.CheckSchedule(t, tt); err != nil {
		return nil, fmt.Errorf("task: %v", err)
	}
	// The results are bound to input_hash only: the input the task shows
	// must be that one.
	if err := protocol.CheckTaskInput(t); err != nil {
		return nil, fmt.Errorf("task: %v", err)
	}
	if len(b.Results) == 0 || len(b.Results) > protocol.MaxCandidates {
		return nil, fmt.Errorf("%d results", len(b.Results))
	}
	var (
		output    []byte
		outcome   string
		failure   *protocol.Failure // the reports' failure: a failed task's bundle
		positions []int             // of the executors in the task's candidate list
		proofs    []pendingProof
	)
	seen := map[string]bool{}
	for i, env := range b.Results {
		r, err := protocol.OpenResult(env)
		if err != nil {
			return nil, fmt.Errorf("result %d: %v", i, err)
		}
		if seen[r.Executor] {
			return nil, fmt.Errorf("result %d: executor %s appears twice", i, r.Executor)
		}
		seen[r.Executor] = true
		rep.Executors = append(rep.Executors, r.Executor)
		rep.Checks = append(rep.Checks, fmt.Sprintf("result %d: signed by executor %s, candidate %d of the task", i, r.Executor, t.CandidateIndex(r.Executor)))
		if err := checkResultAgainstTask(r, t, tt); err != nil {
			return nil, fmt.Errorf("result %d: %v", i, err)
		}
		// The whole outcome (output, stderr, output files; or the
		// failure report), as the lifecycle counts agreement, not stdout
		// alone (a review of 2026-12-07).
		if i > 0 && r.Outcome() != outcome {
			return nil, fmt.Errorf("results disagree: outcome %s and %s (output, stderr, output files or failure report differ)", outcome, r.Outcome())
		}
		output, outcome = r.Output, r.Outcome()
		if r.Failure != nil {
			// The message is a report's own words, outside the outcome
			// the reports agree on: shown only if all of them say it,
			// as the lifecycle keeps it (a review of 2026-12-07).
			f := *r.Failure
			if i > 0 && (failure == nil || failure.Message != f.Message) {
				f.Message = ""
			}
			failure = &f
		}
		positions = append(positions, t.CandidateIndex(r.Executor))
		if tt.Verification.Kind == protocol.VerifyGroth16 && r.Failure == nil {
			binding, err := proofStatement(tt, r)
			if err != nil {
				return nil, fmt.Errorf("result %d: %v", i, err)
			}
			rep.Checks = append(rep.Checks, fmt.Sprintf("result %d: public inputs are the input, the output and the binding H(task ‖ executor)", i))
			proofs = append(proofs, pendingProof{tt.Verification.Circuit, i, zk.BatchItem{Proof: r.Proof, Input: r.Input, Output: r.Output, Binding: binding}})
		}
	}
	if failure != nil {
		return nil, checkFailureBundle(t, tt, len(b.Results), positions, failure, rep)
	}
	rep.Outcome = "output"
	if tt.Verification.Kind == protocol.VerifyReplicated {
		if len(b.Results) < tt.Verification.Quorum {
			return nil, fmt.Errorf("%d agreeing results; type %s needs a quorum of %d", len(b.Results), t.Type, tt.Verification.Quorum)
		}
		rep.Checks = append(rep.Checks, fmt.Sprintf("%d executors agree on output sha256 %s", len(b.Results), protocol.HashHex(output)))
		slices.Sort(positions)
		primaries := 0
		for _, p := range positions {
			if p < t.Replicas {
				primaries++
			}
		}
		rep.Trust = fmt.Sprintf("replicated, not proven: %d independent replicas agree, from candidates chosen by node %s "+
			"(positions %v of %d; %d of the %d that start at once); "+
			"trust it as far as you trust that node's choice and that these %d executors are not one operator: "+
			"a quorum of any candidates signs a bundle that verifies, so two bundles of one task with different outputs can both verify, "+
			"and then at least one quorum lied",
			len(b.Results), t.Submitter, positions, len(t.Candidates), primaries, t.Replicas, len(b.Results))
		rep.Output = base64.StdEncoding.EncodeToString(output)
	} else {
		rep.Trust = "proven: a Groth16 proof under the network's pinned verifying key; no executor needs to be trusted"
		rep.Output = string(output)
	}
	return proofs, nil
}

// checkFailureBundle checks the bundle of a failed task: as many equal
// failure reports, by distinct candidates, as the lifecycle needs to
// confirm a failure (the type's quorum for replicated types, two for
// groth16 ones: one lying report cannot fail a task), and fills rep.
func checkFailureBundle(t *protocol.Task, tt protocol.TaskType, n int, positions []int, f *protocol.Failure, rep *api.VerifyReport) error {
	need := 2
	if tt.Verification.Kind == protocol.VerifyReplicated {
		need = tt.Verification.Quorum
	}
	if n < need {
		return fmt.Errorf("%d equal failure reports; type %s needs %d to confirm a failure", n, t.Type, need)
	}
	slices.Sort(positions)
	rep.Checks = append(rep.Checks, fmt.Sprintf("%d executors report the same failure: %s", n, f.Summary()))
	rep.Outcome, rep.Failure = "failure", f
	rep.Trust = fmt.Sprintf("a failure, not proven: %d candidates (positions %v of %d, chosen by node %s) signed the same report; "+
		"one lying report cannot fail a task, %d colluding candidates can",
		n, positions, len(t.Candidates), t.Submitter, need)
	return nil
}

// checkResultAgainstTask checks what a result must share with its task.
func checkResultAgainstTask(r *protocol.Result, t *protocol.Task, tt protocol.TaskType) error {
	if r.TaskID != t.ID {
		return fmt.Errorf("%w: result for task %s", protocol.ErrMalformed, r.TaskID)
	}
	if r.Type != t.Type {
		return fmt.Errorf("%w: result of type %s for a %s task", protocol.ErrMalformed, r.Type, t.Type)
	}
	if t.CandidateIndex(r.Executor) < 0 {
		return fmt.Errorf("%w: %s", protocol.ErrExecutorNotAllowed, r.Executor)
	}
	if r.InputHash != t.InputHash {
		return fmt.Errorf("%w: result input_hash differs from the task's", protocol.ErrMalformed)
	}
	if len(r.Output) > tt.Profile.MaxOutputBytes {
		return fmt.Errorf("%w: output of %d bytes, type allows %d", protocol.ErrOversized, len(r.Output), tt.Profile.MaxOutputBytes)
	}
	var size int64
	for _, f := range r.Files {
		if t.Job == nil || !slices.Contains(t.Job.Outputs, f.Path) {
			return fmt.Errorf("%w: output file %s is not one the task asks for", protocol.ErrMalformed, f.Path)
		}
		size += f.Size
	}
	if prof := t.Job.Profile(tt.Profile); size > prof.ResultBytes() {
		return fmt.Errorf("%w: output files of %d bytes, type %s allows %d", protocol.ErrOversized, size, t.Type, prof.ResultBytes())
	}
	if tt.Verification.Kind == protocol.VerifyGroth16 && r.Failure == nil && r.Input == nil {
		return fmt.Errorf("%w: a %s result must carry the input its proof is over", protocol.ErrMalformed, t.Type)
	}
	return nil
}

// errProof marks a result whose proof does not verify: a REJECT, and a
// mark against the executor.
var errProof = errors.New("proof does not verify")

func verifyProof(keys *zk.KeySet, tt protocol.TaskType, r *protocol.Result) error {
	binding, err := proofStatement(tt, r)
	if err != nil {
		return err
	}
	if err := keys.Verify(tt.Verification.Circuit, r.Proof, r.Input, r.Output, binding); err != nil {
		return fmt.Errorf("%w: %v", errProof, err)
	}
	return nil
}

// proofStatement checks that a result's public inputs are its input, its
// output and the binding H(task ‖ executor), and returns the binding.
func proofStatement(tt protocol.TaskType, r *protocol.Result) (*big.Int, error) {
	exec, err := peer.Decode(r.Executor)
	if err != nil {
		return nil, fmt.Errorf("%w: executor id", protocol.ErrMalformed)
	}
	binding := zk.Binding([]byte(r.TaskID), []byte(exec.String()))
	want, err := zk.PublicInputs(tt.Verification.Circuit, r.Input, r.Output, binding)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errProof, err)
	}
	if !slices.Equal(want, r.PublicInputs) {
		return nil, fmt.Errorf("%w: public inputs do not match input, output and binding", errProof)
	}
	return binding, nil
}
