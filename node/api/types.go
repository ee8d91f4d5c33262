package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/proofmesh/proofmesh/protocol"
)

// Errors a Backend returns for the API to map onto status codes (besides
// the protocol sentinels).
var (
	ErrNotFound   = errors.New("not found")
	ErrConflict   = errors.New("conflict")
	ErrBadRequest = errors.New("bad request")
	ErrForbidden  = errors.New("forbidden")
	// ErrUnavailable is a request this node cannot serve now (503).
	ErrUnavailable = errors.New("unavailable")
)

// Backend is what the API needs of a node.
type Backend interface {
	Info() NodeInfo
	Peers(status protocol.PeerStatus) []PeerView
	Peer(id string) (PeerView, error)
	Policy() protocol.Policy
	TaskTypes() []protocol.TaskType
	Submit(ctx context.Context, req SubmitRequest) (string, error)
	// TaskFile returns an output file of an accepted task (path under
	// /out), fetched from an executor if this node lacks it.
	TaskFile(ctx context.Context, id, path string) ([]byte, error)
	// Cancel publishes the submitter's signed cancel of a task; by is the
	// credential asking (ScopeAdmin, or the key's name).
	Cancel(ctx context.Context, id, by, reason string) error
	Tasks(q TaskQuery) ([]TaskView, error)
	Task(id string) (TaskView, error)
	// Watch returns a channel that receives a value whenever the task
	// changes, and a function that stops the watch.
	Watch(id string) (<-chan struct{}, func(), error)
	Bundle(id string) ([]byte, error)
	VerifyBundle(data []byte) (VerifyReport, error)
	Audit(from uint64, limit int) ([]AuditEntry, error)
	// VerifyAudit walks the audit chain: entries checked, and the first
	// break.
	VerifyAudit() (int, error)
	// AuditCheckpoint signs the audit chain's head with the node's key.
	AuditCheckpoint() (AuditCheckpoint, error)

	// AuthenticateKey checks an API key and returns its scope; errors
	// wrap ErrUnauthorized and say why (unknown, expired, revoked).
	AuthenticateKey(key string) (string, error)
	CreateAPIKey(req APIKeyRequest) (APIKeyCreated, error)
	APIKeys() ([]APIKeyView, error)
	RevokeAPIKey(prefix string) (APIKeyView, error)
}

// ErrUnauthorized is wrapped by a refused API key.
var ErrUnauthorized = errors.New("unauthorized")

// API key scopes, each including the ones before it.
const (
	ScopeRead   = "read"
	ScopeSubmit = "submit"
	ScopeAdmin  = "admin"
)

// ScopeAllows reports whether a key of scope have may do what need
// requires.
func ScopeAllows(have, need string) bool {
	rank := map[string]int{ScopeRead: 1, ScopeSubmit: 2, ScopeAdmin: 3}
	return rank[have] > 0 && rank[have] >= rank[need]
}

// APIKeyRequest is POST /api/v1/apikeys.
type APIKeyRequest struct {
	Scope string `json:"scope"`
	Label string `json:"label,omitempty"`
	// ExpiresIn is a Go duration ("720h"); empty means never.
	ExpiresIn string `json:"expires_in,omitempty"`
}

// APIKeyView is a key as lists show it: never the key itself.
type APIKeyView struct {
	Prefix  string     `json:"prefix"`
	Scope   string     `json:"scope"`
	Label   string     `json:"label,omitempty"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
	Revoked *time.Time `json:"revoked,omitempty"`
}

// APIKeyCreated is the answer of POST /api/v1/apikeys: the key, shown once.
type APIKeyCreated struct {
	Key string `json:"key"`
	APIKeyView
}

// AuditEntry is one entry of the node's hash-chained audit log.
type AuditEntry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Actor   string    `json:"actor,omitempty"`
	Subject string    `json:"subject,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Prev    string    `json:"prev"`
	Hash    string    `json:"hash"`
}

// AuditCheckpoint is GET /api/v1/audit/checkpoint: the head of the audit
// chain, and Envelope, the same signed by the node's key (what
// `proofmesh audit verify --checkpoint` checks; the other fields are for
// people).
type AuditCheckpoint struct {
	NodeID   string    `json:"node_id"`
	Seq      uint64    `json:"seq"`
	Hash     string    `json:"hash"`
	Time     time.Time `json:"time"`
	Envelope []byte    `json:"envelope"`
}

// NodeInfo is GET /api/v1/node.
type NodeInfo struct {
	ID                  string                `json:"id"`
	Network             string                `json:"network"`
	Version             string                `json:"version"`
	Addrs               []string              `json:"addrs"`
	Capabilities        protocol.Capabilities `json:"capabilities"`
	NodeType            string                `json:"node_type"`
	TaskTypes           []string              `json:"task_types"`
	PolicyVersion       int                   `json:"policy_version"`
	HeartbeatIntervalMS int64                 `json:"heartbeat_interval_ms"`
	BootstrapOnly       bool                  `json:"bootstrap_only,omitempty"`
	Started             time.Time             `json:"started"`
	Peers               map[string]int        `json:"peers"` // by status
	// Problems are what keeps the node from joining or working well
	// (codes: protocol.Problem*); an empty list when all is well.
	Problems []protocol.Problem `json:"problems"`
	// Reachability is AutoNAT's verdict: public, private or unknown.
	Reachability string `json:"reachability,omitempty"`
}

// PeerView is one peer as GET /api/v1/peers shows it.
type PeerView struct {
	ID           string                `json:"id"`
	Status       protocol.PeerStatus   `json:"status"`
	NodeType     string                `json:"node_type,omitempty"`
	Region       string                `json:"region,omitempty"`
	Capabilities protocol.Capabilities `json:"capabilities,omitempty"`
	TaskTypes    []string              `json:"task_types,omitempty"`
	Load         float64               `json:"load"`
	Health       float64               `json:"health"`
	Version      string                `json:"version,omitempty"`
	ListenAddrs  []string              `json:"listen_addrs,omitempty"`
	FirstSeen    time.Time             `json:"first_seen"`
	LastSeen     time.Time             `json:"last_seen"`
	IntervalMS   int64                 `json:"interval_ms"`
	Seq          uint64                `json:"seq"`
	DeletedAt    *time.Time            `json:"deleted_at,omitempty"`
	LeaveReason  string                `json:"leave_reason,omitempty"`
	Verified     int                   `json:"verified_results"`
	Rejected     int                   `json:"rejected_results"`
	// Protocol is the proofmesh networks and wire protocol majors the
	// peer serves, from its identify list ("devnet v1"); empty until it
	// has been identified over a connection of ours.
	Protocol string `json:"protocol,omitempty"`
	// Conn is how this node is connected to the peer: direct, relayed
	// (only through a circuit relay) or empty (not connected).
	Conn string `json:"conn,omitempty"`
}

// TaskQuery is GET /api/v1/tasks?state=&type=&limit=&after=: zero fields
// select everything; After is the last task id of the page before.
type TaskQuery struct {
	State protocol.TaskState
	Type  string
	Limit int
	After string
}

// SubmitRequest is POST /api/v1/tasks. Input is the typed task's JSON
// input, or for wasm.exec.v1 a base64 string of the raw input bytes;
// Module is base64, or ModuleHash names one this node holds
// (wasm.exec.v1 only).
type SubmitRequest struct {
	Type     string          `json:"type"`
	Input    json.RawMessage `json:"input"`
	Replicas int             `json:"replicas,omitempty"`
	Module   []byte          `json:"module,omitempty"`
	// ModuleHash names a module this node already holds (hex SHA-256,
	// as a task's module_hash shows), instead of sending Module again.
	ModuleHash string `json:"module_hash,omitempty"`
	// The job spec of wasm.exec.v1: the module's arguments (after argv[0]
	// "task"), its environment, and limits within the type's.
	Args   []string            `json:"args,omitempty"`
	Env    map[string]string   `json:"env,omitempty"`
	Limits *protocol.JobLimits `json:"limits,omitempty"`
	// Files are mounted read-only under /in: path -> content as a base64
	// string, or {"hash": "<sha256>"} of a blob this node holds.
	Files map[string]json.RawMessage `json:"files,omitempty"`
	// Outputs are paths under /out collected after exit; each comes back
	// at GET /api/v1/tasks/{id}/files/{path}.
	Outputs []string `json:"outputs,omitempty"`
	// SubmittedBy is the credential that submitted (set by the server,
	// never read from the body): it may cancel the task.
	SubmittedBy string `json:"-"`
}

// Event is one step of a task's timeline.
type Event struct {
	State  protocol.TaskState `json:"state"`
	Time   time.Time          `json:"time"`
	Detail string             `json:"detail,omitempty"`
	Peer   string             `json:"peer,omitempty"`
}

// TaskView is a task as GET /api/v1/tasks/{id} shows it.
type TaskView struct {
	TaskID string `json:"task_id"`
	Type   string `json:"type"`
	// ModuleHash is the module a wasm.exec.v1 task runs (hex SHA-256):
	// a later task may name it as "module_hash".
	ModuleHash string `json:"module_hash,omitempty"`
	// Job is a wasm.exec.v1 task's job spec (arguments, environment,
	// files by hash, outputs, limits), as every node holds it from the
	// signed task.
	Job        *protocol.JobSpec  `json:"job,omitempty"`
	State      protocol.TaskState `json:"state"`
	Reason     string             `json:"reason,omitempty"`
	Origin     bool               `json:"origin"`
	Submitter  string             `json:"submitter"`
	Created    time.Time          `json:"created"`
	Deadline   time.Time          `json:"deadline"`
	Replicas   int                `json:"replicas"`
	Candidates []string           `json:"candidates"`
	Executors  []string           `json:"executors,omitempty"`
	// Output is the accepted output: the JSON of a typed task, or a
	// base64 string for wasm.exec.v1.
	Output       json.RawMessage `json:"output,omitempty"`
	Verification string          `json:"verification,omitempty"`
	// Settled are the executors whose equal results ended the task.
	Settled []string `json:"settled,omitempty"`
	// Failure is the confirmed failure report of a task the module
	// failed: exit code, trap, the end of stderr.
	Failure *protocol.Failure `json:"failure,omitempty"`
	// Files are an accepted job's output files (GET
	// /api/v1/tasks/{id}/files/{path} serves each).
	Files []protocol.OutputFile `json:"files,omitempty"`
	// Results are what each executor reported (GET /api/v1/tasks/{id}
	// only): what `proofmesh logs` shows.
	Results []ResultView `json:"results,omitempty"`
	// Waiting (GET /api/v1/tasks/{id} of an open task only) names the
	// candidates whose turn came, that have not delivered and that this
	// node lists offline, and when the next candidate takes over (turns
	// move by the lease, or at once on a signed Leave); empty otherwise.
	// The events stream sends it as a "waiting" event when it changes.
	Waiting  string    `json:"waiting,omitempty"`
	Timeline []Event   `json:"timeline"`
	Updated  time.Time `json:"updated"`
}

// ResultView is one executor's signed report on a task, as people read
// it.
type ResultView struct {
	Executor   string    `json:"executor"`
	Outcome    string    `json:"outcome"` // output sha256, or "failure:…"
	ExitCode   int       `json:"exit_code"`
	Trap       string    `json:"trap,omitempty"`
	Stderr     []byte    `json:"stderr,omitempty"` // the last KiB
	WallMS     int64     `json:"wall_ms"`
	FuelUsed   uint64    `json:"fuel_used"`
	Settled    bool      `json:"settled"` // one of the results that settled the task
	ReportedAt time.Time `json:"reported_at"`
}

// VerifyReport is the answer of POST /api/v1/proofs/verify.
type VerifyReport struct {
	Valid     bool     `json:"valid"`
	TaskID    string   `json:"task_id,omitempty"`
	Type      string   `json:"type,omitempty"`
	Executors []string `json:"executors,omitempty"`
	Output    string   `json:"output,omitempty"`
	// Outcome says what a valid bundle shows: "output" (an accepted
	// task), or "failure" (a failure its executors confirmed; Failure is
	// the report they agree on, and Output is empty).
	Outcome string            `json:"outcome,omitempty"`
	Failure *protocol.Failure `json:"failure,omitempty"`
	Checks  []string          `json:"checks"`
	// Trust says plainly what a valid result rests on: a proof, or
	// replicas chosen by the submitting node.
	Trust string `json:"trust,omitempty"`
	Error string `json:"error,omitempty"`
}
