package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
)

// Envelope domains: a signature made for one kind of record never verifies
// as another.
const (
	DomainLeave           = "proofmesh-leave"
	DomainResult          = "proofmesh-result"
	DomainTask            = "proofmesh-task"
	DomainCancel          = "proofmesh-cancel"
	DomainAuditCheckpoint = "proofmesh-audit-checkpoint"
)

// Size limits of sealed envelopes read from outside.
const (
	MaxLeaveBytes      = 2 << 10
	MaxResultBytes     = 512 << 10
	MaxCheckpointBytes = 1 << 10
)

// Leave is a node's signed notice that it leaves the network.
type Leave struct {
	NodeID string `json:"node_id"`
	Time   int64  `json:"time"` // unix ms
	Reason string `json:"reason,omitempty"`
}

// Domain implements record.Record.
func (*Leave) Domain() string { return DomainLeave }

// Codec implements record.Record.
func (*Leave) Codec() []byte { return []byte("/proofmesh/leave/1") }

// MarshalRecord implements record.Record.
func (l *Leave) MarshalRecord() ([]byte, error) { return json.Marshal(l) }

// UnmarshalRecord implements record.Record.
func (l *Leave) UnmarshalRecord(b []byte) error { return decodeWire(b, MaxLeaveBytes, l) }

// AuditCheckpoint is a node's signed statement that entry Seq of its audit
// chain has hash Hash. An auditor who keeps one can tell the original chain
// from a rewrite: whoever rewrites the store can build a consistent new
// chain, but not one whose entry Seq has the hash already signed.
type AuditCheckpoint struct {
	NodeID string `json:"node_id"`
	Seq    uint64 `json:"seq"`
	Hash   string `json:"hash"`
	Time   int64  `json:"time"` // unix ms
}

// Domain implements record.Record.
func (*AuditCheckpoint) Domain() string { return DomainAuditCheckpoint }

// Codec implements record.Record.
func (*AuditCheckpoint) Codec() []byte { return []byte("/proofmesh/audit-checkpoint/1") }

// MarshalRecord implements record.Record.
func (c *AuditCheckpoint) MarshalRecord() ([]byte, error) { return json.Marshal(c) }

// UnmarshalRecord implements record.Record.
func (c *AuditCheckpoint) UnmarshalRecord(b []byte) error {
	return decodeStrict(b, MaxCheckpointBytes, c)
}

// OpenAuditCheckpoint verifies a checkpoint envelope: signed by the node it
// names, for an entry that exists (seq ≥ 1) with a well-formed hash.
func OpenAuditCheckpoint(data []byte) (*AuditCheckpoint, error) {
	var c AuditCheckpoint
	signer, err := open(data, MaxCheckpointBytes, &c)
	if err != nil {
		return nil, err
	}
	if c.NodeID != signer.String() {
		return nil, fmt.Errorf("%w: audit checkpoint of %s signed by %s", ErrForged, c.NodeID, signer)
	}
	if c.Seq == 0 || !isHexHash(c.Hash) {
		return nil, fmt.Errorf("audit checkpoint: %w: seq %d, hash %q", ErrMalformed, c.Seq, c.Hash)
	}
	return &c, nil
}

// ExecStats are an executor's measurements of one task.
type ExecStats struct {
	WallMS      int64  `json:"wall_ms"`
	FuelUsed    uint64 `json:"fuel_used"`
	MemoryPages uint32 `json:"memory_pages"`
	OutputBytes int    `json:"output_bytes"`
	ProveMS     int64  `json:"prove_ms,omitempty"`
}

// Trap kinds of a failure report: why a module did not finish normally.
const (
	TrapNone        = ""             // the guest exited with a non-zero code
	TrapFuel        = "fuel"         // the fuel budget ran out
	TrapMemory      = "memory"       // memory over the type's limit
	TrapTime        = "time"         // wall-clock limit
	TrapStack       = "stack"        // call stack exhausted
	TrapOutputLimit = "output_limit" // output over the type's limit
	TrapBadModule   = "bad_module"   // the module is invalid or refused
	TrapGuest       = "trap"         // any other WebAssembly trap
)

// MaxStderrTail is how much of a guest's stderr a result carries.
const MaxStderrTail = 1 << 10

// Failure is an executor's report that the task's module failed under the
// type's profile. For a deterministic sandbox every honest executor reports
// the same failure, so a quorum of equal reports ends the task.
type Failure struct {
	Trap     string `json:"trap,omitempty"`
	ExitCode int    `json:"exit_code"` // -1 when the guest trapped
	Stderr   []byte `json:"stderr,omitempty"`
	Message  string `json:"message,omitempty"` // what the sandbox said, for people
}

func validTrap(k string) bool {
	switch k {
	case TrapNone, TrapFuel, TrapMemory, TrapTime, TrapStack, TrapOutputLimit, TrapBadModule, TrapGuest:
		return true
	}
	return false
}

// TrapLabel names a trap kind for people: "trap fuel", "trap memory";
// a guest's own trap is "trap" (not "trap trap"), its message saying which.
func TrapLabel(kind string) string {
	if kind == TrapGuest {
		return "trap"
	}
	return "trap " + kind
}

// Summary is a one-line account of the failure for people: exit code or
// trap, and the end of stderr.
func (f *Failure) Summary() string {
	what := fmt.Sprintf("exit code %d", f.ExitCode)
	if f.Trap != TrapNone {
		what = TrapLabel(f.Trap)
		if f.Message != "" {
			what += " (" + f.Message + ")"
		}
	}
	if len(f.Stderr) > 0 {
		what += fmt.Sprintf(", stderr: %q", printable(f.Stderr, 200))
	}
	return what
}

// printable returns the last n bytes of b as text, for messages.
func printable(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.ToValidUTF8(string(b), "?")
}

// Result is an executor's signed answer to a task: an output (with a proof
// for groth16 types) or a failure report. Sealed in an envelope it is also
// what auditors verify offline.
type Result struct {
	TaskID       string   `json:"task_id"`
	Type         string   `json:"type"`
	Executor     string   `json:"executor"`
	Input        []byte   `json:"input,omitempty"` // groth16 types: the input the proof is over
	InputHash    string   `json:"input_hash"`
	Output       []byte   `json:"output"`
	OutputHash   string   `json:"output_hash"`
	Proof        []byte   `json:"proof,omitempty"`
	PublicInputs []string `json:"public_inputs,omitempty"`
	Failure      *Failure `json:"failure,omitempty"`
	// Stderr is the last KiB a module that succeeded wrote to stderr (a
	// failure report carries its own).
	Stderr []byte `json:"stderr,omitempty"`
	// Files are a job's output files, by hash (fetched from the executor
	// over the blob protocol), sorted by path.
	Files []OutputFile `json:"files,omitempty"`
	Stats ExecStats    `json:"stats"`
	Time  int64        `json:"time"` // unix ms
}

// OutputFile is one output file of a job: inline when small, else fetched
// by hash from the executor.
type OutputFile struct {
	Path   string `json:"path"`
	Hash   string `json:"hash"`
	Size   int64  `json:"size"`
	Inline []byte `json:"inline,omitempty"` // the content, when at most MaxInlineOutputFile
}

// MaxInlineOutputFile is the largest output file a result carries inline.
const MaxInlineOutputFile = 4 << 10

// Outcome is what replicas must agree on: the output hash (with the
// output files' paths and hashes, when there are any), or for a failure
// report a hash of its trap, exit code and stderr (the message is the
// executor's wording and does not count).
func (r *Result) Outcome() string {
	if f := r.Failure; f != nil {
		return "failure:" + hashHex([]byte(fmt.Sprintf("%s\x00%d\x00%s", f.Trap, f.ExitCode, f.Stderr)))
	}
	if len(r.Files) == 0 && len(r.Stderr) == 0 {
		return r.OutputHash
	}
	var b strings.Builder
	b.WriteString(r.OutputHash)
	fmt.Fprintf(&b, "\x00%s", hashHex(r.Stderr))
	for _, f := range r.Files {
		fmt.Fprintf(&b, "\x00%s\x00%s\x00%d", f.Path, f.Hash, f.Size)
	}
	return "files:" + hashHex([]byte(b.String()))
}

// Domain implements record.Record.
func (*Result) Domain() string { return DomainResult }

// Codec implements record.Record.
func (*Result) Codec() []byte { return []byte("/proofmesh/result/1") }

// MarshalRecord implements record.Record.
func (r *Result) MarshalRecord() ([]byte, error) { return json.Marshal(r) }

// UnmarshalRecord implements record.Record.
func (r *Result) UnmarshalRecord(b []byte) error { return decodeWire(b, MaxResultBytes, r) }

// Seal signs rec with key into a marshalled envelope.
func Seal(rec record.Record, key crypto.PrivKey) ([]byte, error) {
	env, err := record.Seal(rec, key)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", rec.Domain(), err)
	}
	return env.Marshal()
}

// OpenLeave verifies a leave envelope and returns the notice and its signer.
// Only the node's own key can make a valid one.
func OpenLeave(data []byte) (*Leave, peer.ID, error) {
	var l Leave
	signer, err := open(data, MaxLeaveBytes, &l)
	if err != nil {
		return nil, "", err
	}
	if l.NodeID != signer.String() {
		return nil, "", fmt.Errorf("%w: leave for %s signed by %s", ErrForged, l.NodeID, signer)
	}
	return &l, signer, nil
}

// CheckLeaveTime applies the clock-skew rule to a leave notice.
func CheckLeaveTime(l *Leave, now time.Time, skew time.Duration) error {
	return CheckTime("leave", l.Time, now, skew)
}

// CheckTime is the clock-skew rule of a message's time (unix ms): at most
// skew from now either way, else ErrClockSkew (IGNORE). Besides refusing a
// clock that is off, it bounds replays: gossipsub forgets a message id
// after 2 to 3 minutes, and a copy replayed after that is refused here.
// what names the message in the error.
func CheckTime(what string, ms int64, now time.Time, skew time.Duration) error {
	if d := now.Sub(time.UnixMilli(ms)); d > skew || d < -skew {
		return fmt.Errorf("%w: %s time is %s from ours", ErrClockSkew, what, d.Round(time.Millisecond))
	}
	return nil
}

// OpenResult verifies a result envelope's signature and form: the signer
// must be the executor it names, and the hashes must match the bytes. It
// does not verify the proof (that is zk's job).
func OpenResult(data []byte) (*Result, error) {
	var r Result
	signer, err := open(data, MaxResultBytes, &r)
	if err != nil {
		return nil, err
	}
	if r.Executor != signer.String() {
		return nil, fmt.Errorf("%w: result for executor %s signed by %s", ErrForged, r.Executor, signer)
	}
	if !isHexHash(r.TaskID) {
		return nil, fmt.Errorf("result: %w: task_id", ErrMalformed)
	}
	if hashHex(r.Output) != r.OutputHash {
		return nil, fmt.Errorf("result: %w: output_hash does not match the output", ErrMalformed)
	}
	if r.Input != nil && hashHex(r.Input) != r.InputHash {
		return nil, fmt.Errorf("result: %w: input_hash does not match the input", ErrMalformed)
	}
	if len(r.Stderr) > MaxStderrTail || (r.Failure != nil && len(r.Stderr) > 0) {
		return nil, fmt.Errorf("result: %w: stderr of %d bytes (at most %d, and a failure report carries its own)", ErrMalformed, len(r.Stderr), MaxStderrTail)
	}
	if len(r.Files) > MaxJobOutputs || (r.Failure != nil && len(r.Files) > 0) {
		return nil, fmt.Errorf("result: %w: %d output files", ErrMalformed, len(r.Files))
	}
	for i, f := range r.Files {
		if f.Inline != nil && (len(f.Inline) > MaxInlineOutputFile || int64(len(f.Inline)) != f.Size || hashHex(f.Inline) != f.Hash) {
			return nil, fmt.Errorf("result: %w: output file %s: inline content does not match its hash and size", ErrMalformed, f.Path)
		}
		if CheckJobPath(JobOutDir, f.Path) != nil || !isHexHash(f.Hash) || f.Size < 0 || (i > 0 && r.Files[i-1].Path >= f.Path) {
			return nil, fmt.Errorf("result: %w: output file %d (paths sorted and unique under /out, sha256 hashes)", ErrMalformed, i)
		}
	}
	if f := r.Failure; f != nil {
		if len(r.Output) > 0 || len(r.Proof) > 0 || !validTrap(f.Trap) || len(f.Stderr) > MaxStderrTail || len(f.Message) > 512 ||
			(f.Trap == TrapNone && f.ExitCode == 0) {
			return nil, fmt.Errorf("result: %w: failure report", ErrMalformed)
		}
	}
	return &r, nil
}

func open(data []byte, limit int, rec record.Record) (peer.ID, error) {
	if len(data) > limit+1024 {
		return "", fmt.Errorf("%s: %w: %d bytes", rec.Domain(), ErrOversized, len(data))
	}
	env, err := record.ConsumeTypedEnvelope(data, rec)
	if err != nil {
		if errors.Is(err, record.ErrInvalidSignature) {
			return "", fmt.Errorf("%s: %w: %v", rec.Domain(), ErrForged, err)
		}
		return "", fmt.Errorf("%s: %w: %v", rec.Domain(), ErrMalformed, err)
	}
	id, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return "", fmt.Errorf("%s: %w: signer key: %v", rec.Domain(), ErrMalformed, err)
	}
	return id, nil
}
