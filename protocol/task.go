package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/protocol/spec"
)

// MaxInlineInput is the largest input carried inside a task message; larger
// inputs travel by hash and are fetched from the submitter over a stream.
const MaxInlineInput = 64 << 10

// MaxTaskMessageBytes bounds an encoded message on the tasks topic.
const MaxTaskMessageBytes = MaxInlineInput*4/3 + 16<<10

// MaxCandidates bounds a task's ranked candidate list.
const MaxCandidates = 32

// Task is what a submitting node publishes on the tasks topic.
type Task struct {
	ID        string `json:"id"` // hex SHA-256 of the task's content (all other fields)
	Type      string `json:"type"`
	Input     []byte `json:"input,omitempty"` // inline input (at most MaxInlineInput)
	InputHash string `json:"input_hash"`      // hex SHA-256 of the input
	InputSize int    `json:"input_size"`
	// ModuleHash and ModuleSize name a submitter-supplied module
	// (wasm.exec.v1); executors fetch it from the submitter by hash.
	ModuleHash string   `json:"module_hash,omitempty"`
	ModuleSize int      `json:"module_size,omitempty"`
	Submitter  string   `json:"submitter"` // peer id of the submitting node
	Created    int64    `json:"created"`   // unix ms
	Deadline   int64    `json:"deadline"`  // unix ms
	Replicas   int      `json:"replicas"`
	Candidates []string `json:"candidates"` // ranked executors
	LeaseMS    int64    `json:"lease_ms"`
}

// ContentID computes the task id: the SHA-256 of the task's encoding with
// the id field empty.
func (t *Task) ContentID() string {
	c := *t
	c.ID = ""
	b, _ := json.Marshal(&c) // a Task always marshals
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Lease returns the task's lease.
func (t *Task) Lease() time.Duration { return time.Duration(t.LeaseMS) * time.Millisecond }

// CandidateIndex returns the position of p in the candidate list, or -1.
func (t *Task) CandidateIndex(p string) int {
	for i, c := range t.Candidates {
		if c == p {
			return i
		}
	}
	return -1
}

// StartAt returns when candidate i may start: the first Replicas candidates
// at once, each later one a lease after the one before it.
func (t *Task) StartAt(i int) time.Time {
	created := time.UnixMilli(t.Created)
	if i < t.Replicas {
		return created
	}
	return created.Add(time.Duration(i-t.Replicas+1) * t.Lease())
}

// ShouldStart decides whether candidate i starts now: its turn has come and
// the valid results seen so far do not yet meet need.
func (t *Task) ShouldStart(i int, now time.Time, validResults, need int) bool {
	if i < 0 || i >= len(t.Candidates) || validResults >= need {
		return false
	}
	if now.After(time.UnixMilli(t.Deadline)) {
		return false
	}
	return !now.Before(t.StartAt(i))
}

// CheckTask validates a task received from the mesh (or built locally)
// against the registry: content id, type, sizes, replicas, deadline,
// candidates. from is the gossip origin: only the submitter may publish.
func CheckTask(t *Task, reg Registry, from peer.ID, now time.Time, skew time.Duration) (TaskType, error) {
	if t.ID != t.ContentID() {
		return TaskType{}, fmt.Errorf("task %s: %w", short(t.ID), ErrTaskIDMismatch)
	}
	if t.Submitter != from.String() {
		return TaskType{}, fmt.Errorf("%w: task submitter %s published by %s", ErrForged, t.Submitter, from)
	}
	tt, err := reg.Lookup(t.Type)
	if err != nil {
		return TaskType{}, err
	}
	if err := CheckSubmission(tt, t.InputSize, t.ModuleSize, t.Replicas); err != nil {
		return TaskType{}, err
	}
	if t.Input != nil {
		if len(t.Input) != t.InputSize || hashHex(t.Input) != t.InputHash {
			return TaskType{}, fmt.Errorf("%w: inline input does not match input_hash/input_size", ErrMalformed)
		}
	} else if t.InputSize <= MaxInlineInput {
		return TaskType{}, fmt.Errorf("%w: input of %d bytes must be inline", ErrMalformed, t.InputSize)
	}
	if !isHexHash(t.InputHash) {
		return TaskType{}, fmt.Errorf("%w: input_hash", ErrMalformed)
	}
	if tt.ModuleHash == "" {
		if !isHexHash(t.ModuleHash) || t.ModuleSize <= 0 {
			return TaskType{}, fmt.Errorf("%w: type %s needs module_hash and module_size", ErrMalformed, t.Type)
		}
	} else if t.ModuleHash != "" {
		return TaskType{}, fmt.Errorf("%w: type %s has a fixed module; module_hash not allowed", ErrMalformed, t.Type)
	}
	if len(t.Candidates) < t.Replicas || len(t.Candidates) > MaxCandidates {
		return TaskType{}, fmt.Errorf("%w: %d candidates for %d replicas (max %d)", ErrMalformed, len(t.Candidates), t.Replicas, MaxCandidates)
	}
	seen := make(map[string]bool, len(t.Candidates))
	for _, c := range t.Candidates {
		if _, err := peer.Decode(c); err != nil || seen[c] {
			return TaskType{}, fmt.Errorf("%w: candidate %q", ErrMalformed, c)
		}
		seen[c] = true
	}
	if t.LeaseMS <= 0 {
		return TaskType{}, fmt.Errorf("%w: lease_ms must be positive", ErrMalformed)
	}
	if d := now.Sub(time.UnixMilli(t.Created)); d < -skew {
		return TaskType{}, fmt.Errorf("%w: task created %s in the future", ErrClockSkew, -d)
	}
	if !time.UnixMilli(t.Deadline).After(now) {
		return TaskType{}, fmt.Errorf("task %s: %w", short(t.ID), ErrDeadlinePassed)
	}
	return tt, nil
}

// CheckSubmission validates what a submitter asks for against the type.
func CheckSubmission(tt TaskType, inputSize, moduleSize, replicas int) error {
	if inputSize > tt.Profile.MaxInputBytes {
		return fmt.Errorf("%w: %d bytes, type %s allows %d", ErrInputTooLarge, inputSize, tt.ID, tt.Profile.MaxInputBytes)
	}
	if tt.ModuleHash == "" && moduleSize > tt.Profile.MaxModuleBytes {
		return fmt.Errorf("%w: %d bytes, type %s allows %d", ErrModuleTooLarge, moduleSize, tt.ID, tt.Profile.MaxModuleBytes)
	}
	if replicas < 1 || replicas > tt.MaxReplicas {
		return fmt.Errorf("%w: %d, type %s allows 1..%d", ErrBadReplicas, replicas, tt.ID, tt.MaxReplicas)
	}
	if tt.Verification.Kind == VerifyReplicated && replicas < tt.Verification.Quorum {
		return fmt.Errorf("%w: %d, type %s needs at least its quorum of %d", ErrBadReplicas, replicas, tt.ID, tt.Verification.Quorum)
	}
	return nil
}

// checkCanonical requires a typed input to be its one canonical encoding
// (compact, no escapes, no quoted or padded numbers, no duplicate keys):
// the guests and the circuits parse exactly that, and equal inputs get
// equal task ids. Submitting nodes compact the JSON they are given first.
func checkCanonical(input []byte, canonical string) error {
	if string(input) != canonical {
		return fmt.Errorf("%w: input must be written canonically as %s", ErrBadInput, clip(canonical))
	}
	return nil
}

// bn254R is the BN254 scalar field modulus.
var bn254R, _ = new(big.Int).SetString("21888242871839275222246405745257275088548364400416034343698204186575808495617", 10)

// CheckInput validates a typed task's input before it is published, so a
// malformed input is refused at submission instead of failing on an
// executor. Types without a typed input (wasm.exec.v1) accept any bytes.
func CheckInput(typeID string, input []byte) error {
	switch typeID {
	case spec.TypeMiMCChain:
		var in struct {
			X string `json:"x"`
		}
		if err := decodeStrict(input, 1<<10, &in); err != nil {
			return fmt.Errorf("%w: want {\"x\": \"<decimal field element>\"}: %v", ErrBadInput, err)
		}
		if !canonicalDecimal(in.X) {
			return fmt.Errorf("%w: x %q must be a plain decimal number", ErrBadInput, clip(in.X))
		}
		x, _ := new(big.Int).SetString(in.X, 10)
		if x.Cmp(bn254R) >= 0 {
			return fmt.Errorf("%w: x must be below the BN254 scalar field modulus %s", ErrBadInput, bn254R)
		}
		return checkCanonical(input, fmt.Sprintf(`{"x":%q}`, in.X))
	case spec.TypeMLPInfer:
		var in struct {
			X []json.Number `json:"x"`
		}
		if err := decodeStrict(input, 1<<10, &in); err != nil {
			return fmt.Errorf("%w: want {\"x\": [%d integers in -128..127]}: %v", ErrBadInput, spec.MLPInputs, err)
		}
		if len(in.X) != spec.MLPInputs {
			return fmt.Errorf("%w: x has %d values, want %d", ErrBadInput, len(in.X), spec.MLPInputs)
		}
		parts := make([]string, len(in.X))
		for i, v := range in.X {
			n, err := v.Int64()
			if err != nil || n < -128 || n > 127 {
				return fmt.Errorf("%w: x[%d] = %s is not an integer in -128..127", ErrBadInput, i, v)
			}
			parts[i] = strconv.FormatInt(n, 10)
		}
		return checkCanonical(input, `{"x":[`+strings.Join(parts, ",")+`]}`)
	}
	return nil
}

func canonicalDecimal(s string) bool {
	if s == "" || len(s) > 78 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// HashHex returns the hex SHA-256 of b: the content address of inputs,
// outputs and modules.
func HashHex(b []byte) string { return hashHex(b) }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Progress is an executor's announcement on the tasks topic that it has
// claimed a task (running) or is proving it.
type Progress struct {
	TaskID   string    `json:"task_id"`
	Executor string    `json:"executor"`
	State    TaskState `json:"state"`
	Time     int64     `json:"time"` // unix ms
}

// TaskMessage is the envelope of the tasks topic: exactly one field is set.
type TaskMessage struct {
	Task     *Task     `json:"task,omitempty"`
	Progress *Progress `json:"progress,omitempty"`
}

// Encode marshals the message for the wire.
func (m *TaskMessage) Encode() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode task message: %w", err)
	}
	if len(b) > MaxTaskMessageBytes {
		return nil, fmt.Errorf("encode task message: %w: %d bytes", ErrOversized, len(b))
	}
	return b, nil
}

// DecodeTaskMessage parses a tasks-topic message from outside bytes.
func DecodeTaskMessage(data []byte) (*TaskMessage, error) {
	var m TaskMessage
	if err := decodeStrict(data, MaxTaskMessageBytes, &m); err != nil {
		return nil, fmt.Errorf("task message: %w", err)
	}
	if (m.Task == nil) == (m.Progress == nil) {
		return nil, fmt.Errorf("task message: %w: exactly one of task, progress", ErrMalformed)
	}
	if p := m.Progress; p != nil {
		if !isHexHash(p.TaskID) {
			return nil, fmt.Errorf("progress: %w: task_id", ErrMalformed)
		}
		if _, err := peer.Decode(p.Executor); err != nil {
			return nil, fmt.Errorf("progress: %w: executor", ErrMalformed)
		}
		if p.State != StateRunning && p.State != StateProving {
			return nil, fmt.Errorf("progress: %w: state %q", ErrMalformed, p.State)
		}
	}
	return &m, nil
}
