package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"path"
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

// Task is what a submitting node publishes on the tasks topic, sealed in
// an envelope signed by that node (DomainTask): whoever holds a task's
// envelope can check who chose its candidates and its schedule.
type Task struct {
	ID        string `json:"id"` // hex SHA-256 of the task's content (all other fields)
	Type      string `json:"type"`
	Input     []byte `json:"input"`      // inline input (at most MaxInlineInput; null when fetched by hash)
	InputHash string `json:"input_hash"` // hex SHA-256 of the input
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
	// Job is the job spec of a type that runs the submitter's module
	// (wasm.exec.v1): arguments, environment, limits.
	Job *JobSpec `json:"job,omitempty"`

	// wireID is the content id of the record bytes this task was decoded
	// from (fields this build does not know included); empty for a task
	// built here.
	wireID string
}

// JobSpec is what a wasm.exec.v1 module sees besides stdin, and the limits
// its submitter sets within the type's.
type JobSpec struct {
	Args   []string          `json:"args,omitempty"`
	Env    map[string]string `json:"env,omitempty"`
	Limits *JobLimits        `json:"limits,omitempty"`
	// Files are mounted read-only under /in: path -> content by hash,
	// fetched like the module.
	Files map[string]FileRef `json:"files,omitempty"`
	// Outputs are paths under /out collected after a normal exit.
	Outputs []string `json:"outputs,omitempty"`
}

// FileRef names a file's content by its SHA-256 and size.
type FileRef struct {
	Hash string `json:"hash"`
	Size int64  `json:"size"`
}

// Guest directories of a job's files.
const (
	JobInDir  = "/in"
	JobOutDir = "/out"
)

// Bounds of a job's files.
const (
	MaxJobFiles   = 32
	MaxJobOutputs = 32
)

// CheckJobPath refuses a path that is not a clean path of a file below
// dir (JobInDir or JobOutDir): no "..", no empty or trailing segments, at
// most 255 bytes.
func CheckJobPath(dir, p string) error {
	rel, ok := strings.CutPrefix(p, dir+"/")
	if !ok || rel == "" || len(p) > 255 || path.Clean(p) != p || !fs.ValidPath(rel) || strings.ContainsAny(p, "\x00\\") {
		return fmt.Errorf("%w: path %q is not a file path under %s", ErrBadInput, clip(p), dir)
	}
	return nil
}

// JobLimits lower a type's profile for one job; zero fields keep it.
type JobLimits struct {
	TimeoutMS   int64  `json:"timeout_ms,omitempty"`
	Fuel        uint64 `json:"fuel,omitempty"`
	MemoryPages uint32 `json:"memory_pages,omitempty"`
}

// Bounds of a job spec.
const (
	MaxJobArgs     = 64
	MaxJobEnv      = 64
	MaxJobStrBytes = 4 << 10  // one argument, one variable's value
	MaxJobBytes    = 32 << 10 // all arguments and variables together
)

// CheckJob validates a job spec against its type: only types that run
// the submitter's module take one; arguments and variables within their
// bounds, variable names [A-Za-z_][A-Za-z0-9_]*, no NUL anywhere; limits
// within the type's profile.
func CheckJob(j *JobSpec, tt TaskType) error {
	if j == nil {
		return nil
	}
	if tt.ModuleHash != "" {
		return fmt.Errorf("%w: type %s runs its built-in module and takes no job spec", ErrBadInput, tt.ID)
	}
	if len(j.Args) > MaxJobArgs || len(j.Env) > MaxJobEnv {
		return fmt.Errorf("%w: %d arguments and %d environment variables, at most %d and %d", ErrBadInput, len(j.Args), len(j.Env), MaxJobArgs, MaxJobEnv)
	}
	total := 0
	for i, a := range j.Args {
		if len(a) > MaxJobStrBytes || strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("%w: argument %d: at most %d bytes, no NUL", ErrBadInput, i+1, MaxJobStrBytes)
		}
		total += len(a)
	}
	for k, v := range j.Env {
		if !envName(k) {
			return fmt.Errorf("%w: environment variable name %q: want [A-Za-z_][A-Za-z0-9_]*, at most 128 bytes", ErrBadInput, clip(k))
		}
		if len(v) > MaxJobStrBytes || strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%w: environment variable %s: at most %d bytes, no NUL", ErrBadInput, k, MaxJobStrBytes)
		}
		total += len(k) + len(v)
	}
	if total > MaxJobBytes {
		return fmt.Errorf("%w: arguments and environment take %d bytes, at most %d", ErrBadInput, total, MaxJobBytes)
	}
	if len(j.Files) > MaxJobFiles || len(j.Outputs) > MaxJobOutputs {
		return fmt.Errorf("%w: %d files and %d outputs, at most %d and %d", ErrBadInput, len(j.Files), len(j.Outputs), MaxJobFiles, MaxJobOutputs)
	}
	var size int64
	for p, f := range j.Files {
		if err := CheckJobPath(JobInDir, p); err != nil {
			return err
		}
		if !isHexHash(f.Hash) || f.Size < 0 || f.Size > int64(tt.Profile.MaxInputBytes) {
			return fmt.Errorf("%w: file %s: want a sha256 hash and a size of at most %d bytes", ErrBadInput, p, tt.Profile.MaxInputBytes)
		}
		size += f.Size
	}
	if size > int64(tt.Profile.MaxInputBytes) {
		return fmt.Errorf("%w: files of %d bytes together, type %s allows %d", ErrBadInput, size, tt.ID, tt.Profile.MaxInputBytes)
	}
	seen := map[string]bool{}
	for _, p := range j.Outputs {
		if err := CheckJobPath(JobOutDir, p); err != nil {
			return err
		}
		if seen[p] {
			return fmt.Errorf("%w: output %s named twice", ErrBadInput, p)
		}
		seen[p] = true
	}
	if l := j.Limits; l != nil {
		p := tt.Profile
		switch {
		case l.TimeoutMS < 0 || l.TimeoutMS > p.MaxRuntimeMS:
			return fmt.Errorf("%w: limits.timeout_ms %d, type %s allows 1..%d", ErrBadInput, l.TimeoutMS, tt.ID, p.MaxRuntimeMS)
		case l.Fuel > p.Fuel:
			return fmt.Errorf("%w: limits.fuel %d, type %s allows at most %d", ErrBadInput, l.Fuel, tt.ID, p.Fuel)
		case l.MemoryPages > p.MaxMemoryPages:
			return fmt.Errorf("%w: limits.memory_pages %d, type %s allows at most %d", ErrBadInput, l.MemoryPages, tt.ID, p.MaxMemoryPages)
		}
	}
	return nil
}

// Profile returns the type's profile lowered by the job's limits.
func (j *JobSpec) Profile(p Profile) Profile {
	if j == nil || j.Limits == nil {
		return p
	}
	if l := j.Limits; l.TimeoutMS > 0 {
		p.MaxRuntimeMS = l.TimeoutMS
	}
	if l := j.Limits; l.Fuel > 0 {
		p.Fuel = l.Fuel
	}
	if l := j.Limits; l.MemoryPages > 0 {
		p.MaxMemoryPages = l.MemoryPages
	}
	return p
}

func envName(k string) bool {
	if k == "" || len(k) > 128 || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Domain implements record.Record.
func (*Task) Domain() string { return DomainTask }

// Codec implements record.Record.
func (*Task) Codec() []byte { return []byte("/proofmesh/task/1") }

// MarshalRecord implements record.Record.
func (t *Task) MarshalRecord() ([]byte, error) { return json.Marshal(t) }

// UnmarshalRecord implements record.Record. Fields this build does not
// know are skipped (a newer release of the same major may add optional
// ones); the task's content id is computed over the exact bytes, so it
// covers them.
func (t *Task) UnmarshalRecord(b []byte) error {
	if err := decodeWire(b, MaxTaskMessageBytes, t); err != nil {
		return err
	}
	id, err := wireContentID(b)
	if err != nil {
		return err
	}
	t.wireID = id
	return nil
}

// wireContentID is the content id of a task's record bytes: the SHA-256
// of those bytes with the top-level "id" value emptied ("id":""). For the
// bytes json.Marshal makes of a Task this equals ContentID; for a newer
// release's task it covers the fields this build skips.
func wireContentID(b []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	depth, wantKey, idNext, object := 0, false, false, false
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("%w: task without an id", ErrMalformed)
		}
		if d, ok := tok.(json.Delim); ok {
			if idNext {
				return "", fmt.Errorf("%w: task id is not a string", ErrMalformed)
			}
			switch d {
			case '{', '[':
				if depth == 0 {
					object = d == '{'
				}
				depth++
				wantKey = depth == 1 && object
			default:
				depth--
				wantKey = depth == 1 && object
			}
			continue
		}
		switch {
		case depth != 1 || !object:
		case wantKey:
			key, _ := tok.(string)
			idNext, wantKey = key == "id", false
		case idNext:
			id, ok := tok.(string)
			end := int(dec.InputOffset())
			start := end - len(id) - 2
			if !ok || start < 0 || string(b[start:end]) != strconv.Quote(id) || !isHexHash(id) {
				return "", fmt.Errorf("%w: task id must be a 64-digit hex string", ErrMalformed)
			}
			sum := sha256.New()
			sum.Write(b[:start])
			sum.Write([]byte(`""`))
			sum.Write(b[end:])
			return hex.EncodeToString(sum.Sum(nil)), nil
		default:
			wantKey = true
		}
	}
}

// OpenTask verifies a task envelope: signed by the submitter it names, with
// an id that is the hash of its content. It does not apply the registry's
// rules (CheckTask does).
func OpenTask(data []byte) (*Task, error) {
	var t Task
	signer, err := open(data, MaxTaskMessageBytes, &t)
	if err != nil {
		return nil, err
	}
	if t.Submitter != signer.String() {
		return nil, fmt.Errorf("%w: task of submitter %s signed by %s", ErrForged, t.Submitter, signer)
	}
	if t.ID != t.id() {
		return nil, fmt.Errorf("task %s: %w", short(t.ID), ErrTaskIDMismatch)
	}
	return &t, nil
}

// InlineInput reports whether a task of this input size carries its input
// inside the task message (every size up to MaxInlineInput, 0 included).
func InlineInput(size int) bool { return size <= MaxInlineInput }

// id is the content id the task's ID must equal: that of the bytes it was
// decoded from, or ContentID for a task built here.
func (t *Task) id() string {
	if t.wireID != "" {
		return t.wireID
	}
	return t.ContentID()
}

// ContentID computes the id of a task built here: the SHA-256 of its
// encoding with the id field empty. A task decoded from a record is held
// to the id of the exact bytes received (which may carry fields this
// build does not know).
func (t *Task) ContentID() string {
	c := *t
	c.ID = ""
	b, _ := json.Marshal(&c) // a Task always marshals
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// RankSeed is what orders a task's candidates: a hash of everything the
// submitter fixes before it knows the candidates.
func (t *Task) RankSeed() string {
	return hashHex([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%d", t.Type, t.InputHash, t.ModuleHash, t.Submitter, t.Created)))
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

// CheckTask validates a task received from the mesh (or built locally)
// against the registry: time, content id, type, sizes, replicas, schedule,
// candidates. Its signature is OpenTask's check: any node may relay a
// signed task. The time comes first: a copy replayed once gossipsub has
// forgotten its id is refused (IGNORE) before its id and input (up to
// 64 KiB) are hashed, since whoever sends it spends no rate of its origin.
func CheckTask(t *Task, reg Registry, now time.Time, skew time.Duration) (TaskType, error) {
	if d := now.Sub(time.UnixMilli(t.Created)); d < -skew || d > skew {
		return TaskType{}, fmt.Errorf("%w: task created %s from now, allowed ±%s", ErrClockSkew, -d, skew)
	}
	if t.ID != t.id() {
		return TaskType{}, fmt.Errorf("task %s: %w", short(t.ID), ErrTaskIDMismatch)
	}
	if _, err := peer.Decode(t.Submitter); err != nil {
		return TaskType{}, fmt.Errorf("%w: submitter %q", ErrMalformed, t.Submitter)
	}
	tt, err := reg.Lookup(t.Type)
	if err != nil {
		return TaskType{}, err
	}
	if err := CheckSubmission(tt, t.InputSize, t.ModuleSize, t.Replicas); err != nil {
		return TaskType{}, err
	}
	if err := CheckTaskInput(t); err != nil {
		return TaskType{}, err
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
	if err := CheckSchedule(t, tt); err != nil {
		return TaskType{}, err
	}
	if err := CheckJob(t.Job, tt); err != nil {
		return TaskType{}, err
	}
	if !time.UnixMilli(t.Deadline).After(now) {
		return TaskType{}, fmt.Errorf("task %s: %w", short(t.ID), ErrDeadlinePassed)
	}
	return tt, nil
}

// CheckTaskInput checks a task's input against input_hash and input_size:
// inline (every size up to MaxInlineInput, 0 included) and equal to them,
// or absent for an input that travels by hash. Results and proofs are
// bound to input_hash only, so the input a task shows must be that one.
func CheckTaskInput(t *Task) error {
	if InlineInput(t.InputSize) {
		if t.Input == nil || len(t.Input) != t.InputSize || hashHex(t.Input) != t.InputHash {
			return fmt.Errorf("%w: inline input of %d bytes does not match input_hash/input_size", ErrMalformed, len(t.Input))
		}
	} else if t.Input != nil {
		return fmt.Errorf("%w: input of %d bytes must travel by hash", ErrMalformed, t.InputSize)
	}
	return nil
}

// MaxDeadline is the latest deadline a task may have: every candidate's
// lease after the first replicas, and two more for the last to deliver.
func MaxDeadline(created int64, candidates, replicas int, lease time.Duration) int64 {
	takeovers := max(candidates-replicas, 0)
	return created + (time.Duration(takeovers+2) * lease).Milliseconds()
}

// CheckSchedule applies the type's limits to a task's schedule, so that a
// hostile submitter can neither make every candidate start at once (a
// lease shorter than the type's) nor keep nodes busy with a task for
// longer than its candidates can use (a deadline past MaxDeadline).
func CheckSchedule(t *Task, tt TaskType) error {
	if t.LeaseMS != tt.SLO.LeaseMS {
		return fmt.Errorf("%w: lease_ms %d, type %s has %d", ErrMalformed, t.LeaseMS, tt.ID, tt.SLO.LeaseMS)
	}
	if t.Deadline <= t.Created {
		return fmt.Errorf("%w: deadline before created", ErrMalformed)
	}
	if limit := MaxDeadline(t.Created, len(t.Candidates), t.Replicas, tt.Lease()); t.Deadline > limit {
		return fmt.Errorf("%w: deadline %s after created, type %s allows %s for %d candidates", ErrMalformed,
			time.Duration(t.Deadline-t.Created)*time.Millisecond, tt.ID, time.Duration(limit-t.Created)*time.Millisecond, len(t.Candidates))
	}
	return nil
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
			return fmt.Errorf("%w: want {\"x\": \"<decimal field element>\"}, x a string of digits such as {\"x\": \"42\"}: %s", ErrBadInput, plainJSONError(err))
		}
		if !canonicalDecimal(in.X) {
			if len(in.X) > 78 && strings.Trim(in.X, "0123456789") == "" && in.X[0] != '0' {
				// Digits only: too large, not malformed (a new user's
				// walkthrough of 2026-12-07 was told otherwise).
				return fmt.Errorf("%w: x has %d digits; it must be below the BN254 scalar field modulus %s (77 digits)", ErrBadInput, len(in.X), bn254R)
			}
			return fmt.Errorf("%w: x %q must be a plain decimal number (digits only, no sign, no leading zero)", ErrBadInput, clip(in.X))
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
			return fmt.Errorf("%w: want {\"x\": [%d integers in -128..127]}: %s", ErrBadInput, spec.MLPInputs, plainJSONError(err))
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

// plainJSONError says what is wrong with a JSON input in a person's terms,
// never a Go type name.
func plainJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "the input"
		} else {
			field = "field " + strconv.Quote(field)
		}
		want := map[string]string{"string": "a string", "int64": "an integer", "json.Number": "a number", "[]json.Number": "a list of numbers", "bool": "true or false"}[te.Type.String()]
		if want == "" {
			want = "something else"
		}
		return fmt.Sprintf("%s is a JSON %s, want %s", field, te.Value, want)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("not valid JSON at byte %d (%v)", se.Offset, strings.TrimPrefix(se.Error(), "invalid character "))
	}
	msg := err.Error()
	if i := strings.Index(msg, "json: "); i >= 0 {
		msg = msg[i+len("json: "):]
	}
	return strings.ReplaceAll(msg, "Go struct field ", "field ")
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

// ShortPeer is a peer id as people read it: its last 8 characters (every
// Ed25519 peer id starts with the same "12D3KooW").
func ShortPeer(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Progress is an executor's announcement on the tasks topic that it has
// claimed a task (running) or is proving it. The gossip signature of its
// origin (the executor) authenticates it; it does not outlive a hop.
type Progress struct {
	TaskID   string    `json:"task_id"`
	Executor string    `json:"executor"`
	State    TaskState `json:"state"`
	Time     int64     `json:"time"` // unix ms
}

// Cancel is the submitting node's signed request that a task stop.
type Cancel struct {
	TaskID    string `json:"task_id"`
	Submitter string `json:"submitter"`
	Time      int64  `json:"time"` // unix ms
	Reason    string `json:"reason,omitempty"`
}

// MaxCancelBytes bounds a cancel envelope.
const MaxCancelBytes = 2 << 10

// Domain implements record.Record.
func (*Cancel) Domain() string { return DomainCancel }

// Codec implements record.Record.
func (*Cancel) Codec() []byte { return []byte("/proofmesh/cancel/1") }

// MarshalRecord implements record.Record.
func (c *Cancel) MarshalRecord() ([]byte, error) { return json.Marshal(c) }

// UnmarshalRecord implements record.Record.
func (c *Cancel) UnmarshalRecord(b []byte) error { return decodeWire(b, MaxCancelBytes, c) }

// OpenCancel verifies a cancel envelope: signed by the submitter it names.
// Whether that is the task's submitter is the caller's check.
func OpenCancel(data []byte) (*Cancel, error) {
	var c Cancel
	signer, err := open(data, MaxCancelBytes, &c)
	if err != nil {
		return nil, err
	}
	if c.Submitter != signer.String() {
		return nil, fmt.Errorf("%w: cancel of submitter %s signed by %s", ErrForged, c.Submitter, signer)
	}
	if !isHexHash(c.TaskID) || len(c.Reason) > 200 {
		return nil, fmt.Errorf("cancel: %w: task_id or reason", ErrMalformed)
	}
	return &c, nil
}

// TaskMessage is the envelope of the tasks topic: exactly one field is set.
// Task and Cancel are sealed envelopes (OpenTask, OpenCancel).
type TaskMessage struct {
	Task     []byte    `json:"task,omitempty"`
	Progress *Progress `json:"progress,omitempty"`
	Cancel   []byte    `json:"cancel,omitempty"`
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

// emptyObject reports whether data (a JSON object already decoded) has no
// member.
func emptyObject(data []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(data, &m) == nil && len(m) == 0
}

// DecodedTaskMessage is a tasks-topic message decoded once and its
// signatures checked: exactly one of Task, Progress, Cancel is set.
type DecodedTaskMessage struct {
	Task      *Task
	TaskEnv   []byte // the task's sealed envelope, as received
	Progress  *Progress
	Cancel    *Cancel
	CancelEnv []byte
}

// DecodeTaskMessage parses a tasks-topic message from outside bytes and
// opens the envelopes it carries.
func DecodeTaskMessage(data []byte) (*DecodedTaskMessage, error) {
	var m TaskMessage
	if err := decodeWire(data, MaxTaskMessageBytes, &m); err != nil {
		return nil, fmt.Errorf("task message: %w", err)
	}
	set := 0
	for _, ok := range []bool{m.Task != nil, m.Progress != nil, m.Cancel != nil} {
		if ok {
			set++
		}
	}
	if set == 0 && !emptyObject(data) {
		// Only members this release does not know: a kind a newer
		// release of the major added.
		return nil, fmt.Errorf("task message: %w", ErrUnknownKind)
	}
	if set != 1 {
		return nil, fmt.Errorf("task message: %w: exactly one of task, progress, cancel", ErrMalformed)
	}
	out := &DecodedTaskMessage{Progress: m.Progress}
	switch {
	case m.Task != nil:
		t, err := OpenTask(m.Task)
		if err != nil {
			return nil, err
		}
		out.Task, out.TaskEnv = t, m.Task
	case m.Cancel != nil:
		c, err := OpenCancel(m.Cancel)
		if err != nil {
			return nil, err
		}
		out.Cancel, out.CancelEnv = c, m.Cancel
	default:
		p := m.Progress
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
	return out, nil
}
