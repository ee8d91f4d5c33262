package protocol

import (
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Verification kinds of a task type.
const (
	VerifyGroth16    = "groth16"
	VerifyReplicated = "replicated"
)

// Requirement constrains one capability of an executor.
type Requirement struct {
	Min    *int64   `json:"min,omitempty"`    // integer capability at least Min
	Equals any      `json:"equals,omitempty"` // boolean or string equal to this
	OneOf  []string `json:"one_of,omitempty"` // enum/string among these
}

// Profile is a task type's security profile: the sandbox limits.
type Profile struct {
	MaxRuntimeMS   int64  `json:"max_runtime_ms"`
	MaxMemoryPages uint32 `json:"max_memory_pages"` // 64 KiB pages
	Fuel           uint64 `json:"fuel"`             // deterministic execution budget
	MaxInputBytes  int    `json:"max_input_bytes"`
	MaxOutputBytes int    `json:"max_output_bytes"`
	MaxModuleBytes int    `json:"max_module_bytes,omitempty"` // submitter modules only
	// MaxResultBytes bounds a job's output files together (wasm.exec.v1);
	// 0 means DefaultMaxResultBytes.
	MaxResultBytes int64  `json:"max_result_bytes,omitempty"`
	Egress         string `json:"egress"` // always "none"
}

// DefaultMaxResultBytes is a profile's MaxResultBytes when it sets none.
const DefaultMaxResultBytes = 16 << 20

// ResultBytes returns the bound of a job's output files together.
func (p Profile) ResultBytes() int64 {
	if p.MaxResultBytes > 0 {
		return p.MaxResultBytes
	}
	return DefaultMaxResultBytes
}

// MaxRuntime returns the runtime limit as a duration.
func (p Profile) MaxRuntime() time.Duration { return time.Duration(p.MaxRuntimeMS) * time.Millisecond }

// Verification says how a result of the type is trusted.
type Verification struct {
	Kind    string `json:"kind"`              // groth16 or replicated
	Circuit string `json:"circuit,omitempty"` // groth16: circuit id
	VKHash  string `json:"vk_hash,omitempty"` // groth16: SHA-256 of the verifying key
	Quorum  int    `json:"quorum,omitempty"`  // replicated: matching outputs needed
}

// SLO carries hints for routing and leases.
type SLO struct {
	// LeaseMS is how long a candidate has to deliver a valid result before
	// the next one takes over.
	LeaseMS int64 `json:"lease_ms"`
	// ExpectedMS is the typical time from start to result.
	ExpectedMS int64 `json:"expected_ms,omitempty"`
}

// TaskType is one entry of the task-type registry.
type TaskType struct {
	ID string `json:"id"`
	// ModuleHash is the SHA-256 (hex) of the WASM module; empty for types
	// whose module comes with the task (wasm.exec.v1).
	ModuleHash   string                 `json:"module_hash,omitempty"`
	Requires     map[string]Requirement `json:"requires,omitempty"`
	Profile      Profile                `json:"profile"`
	Verification Verification           `json:"verification"`
	// DefaultReplicas and MaxReplicas bound the replicas a submitter asks for.
	DefaultReplicas int `json:"default_replicas"`
	MaxReplicas     int `json:"max_replicas"`
	SLO             SLO `json:"slo"`
}

// Registry is the task-type registry of a network.
type Registry map[string]TaskType

// Lease returns the type's lease as a duration.
func (t TaskType) Lease() time.Duration { return time.Duration(t.SLO.LeaseMS) * time.Millisecond }

// Validate refuses a registry entry that cannot work.
func (t TaskType) Validate(policy Policy) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: type %q: %s", ErrInvalidRegistry, t.ID, fmt.Sprintf(format, args...))
	}
	if !validTypeID(t.ID) {
		return fail("id must be 1-64 of [a-z0-9._-]")
	}
	if t.ModuleHash != "" && !isHexHash(t.ModuleHash) {
		return fail("module_hash must be 64 hex characters")
	}
	p := t.Profile
	if p.MaxRuntimeMS <= 0 || p.MaxMemoryPages == 0 || p.Fuel == 0 || p.MaxInputBytes <= 0 || p.MaxOutputBytes <= 0 {
		return fail("profile needs positive max_runtime_ms, max_memory_pages, fuel, max_input_bytes, max_output_bytes")
	}
	if p.MaxMemoryPages > 65536 {
		return fail("max_memory_pages %d over 65536 (4 GiB)", p.MaxMemoryPages)
	}
	if p.Egress != "none" {
		return fail("egress must be \"none\", got %q", p.Egress)
	}
	if t.ModuleHash == "" && p.MaxModuleBytes <= 0 {
		return fail("a type without module_hash needs profile.max_module_bytes")
	}
	switch t.Verification.Kind {
	case VerifyGroth16:
		if t.Verification.Circuit == "" || !isHexHash(t.Verification.VKHash) {
			return fail("groth16 verification needs circuit and a 64-hex vk_hash")
		}
		if t.ModuleHash == "" {
			return fail("groth16 types need a fixed module_hash")
		}
	case VerifyReplicated:
		if t.Verification.Quorum < 1 {
			return fail("replicated verification needs quorum >= 1")
		}
	default:
		return fail("verification kind %q (want groth16 or replicated)", t.Verification.Kind)
	}
	if t.DefaultReplicas < 1 || t.MaxReplicas < t.DefaultReplicas || t.MaxReplicas > 16 {
		return fail("replicas: need 1 <= default_replicas <= max_replicas <= 16")
	}
	if t.Verification.Kind == VerifyReplicated && t.DefaultReplicas < t.Verification.Quorum {
		return fail("default_replicas %d below quorum %d", t.DefaultReplicas, t.Verification.Quorum)
	}
	if t.SLO.LeaseMS <= 0 {
		return fail("slo.lease_ms must be positive")
	}
	for k, r := range t.Requires {
		if _, ok := policy.Rules[k]; !ok {
			return fail("requirement on %q, which the policy does not know", k)
		}
		if r.Min == nil && r.Equals == nil && len(r.OneOf) == 0 {
			return fail("requirement on %q is empty", k)
		}
	}
	return nil
}

// Validate checks every entry and that ids match their keys.
func (r Registry) Validate(policy Policy) error {
	if len(r) == 0 || len(r) > 256 {
		return fmt.Errorf("%w: must have between 1 and 256 types, got %d", ErrInvalidRegistry, len(r))
	}
	for id, t := range r {
		if id != t.ID {
			return fmt.Errorf("%w: key %q holds type %q", ErrInvalidRegistry, id, t.ID)
		}
		if err := t.Validate(policy); err != nil {
			return err
		}
	}
	return nil
}

// IDs returns the type ids, sorted.
func (r Registry) IDs() []string {
	ids := make([]string, 0, len(r))
	for id := range r {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Lookup returns the type or an error naming the known ones.
func (r Registry) Lookup(id string) (TaskType, error) {
	t, ok := r[id]
	if !ok {
		return TaskType{}, fmt.Errorf("task type %q: %w (known: %v)", id, ErrUnknownTaskType, r.IDs())
	}
	return t, nil
}

// Meets reports whether caps satisfy every requirement of the type; the
// error names the first unmet one.
func (t TaskType) Meets(caps Capabilities) error {
	keys := make([]string, 0, len(t.Requires))
	for k := range t.Requires {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r := t.Requires[k]
		v, ok := caps[k]
		if !ok {
			return fmt.Errorf("requires %s, not announced", k)
		}
		if r.Min != nil {
			n, ok := asInt(v)
			if !ok || n < *r.Min {
				return fmt.Errorf("requires %s >= %d, has %v", k, *r.Min, v)
			}
		}
		if r.Equals != nil && !equalValue(r.Equals, v) {
			return fmt.Errorf("requires %s = %v, has %v", k, r.Equals, v)
		}
		if len(r.OneOf) > 0 {
			s, _ := v.(string)
			if !slices.Contains(r.OneOf, s) {
				return fmt.Errorf("requires %s in %v, has %v", k, r.OneOf, v)
			}
		}
	}
	return nil
}

func equalValue(want, have any) bool {
	if a, ok := asInt(want); ok {
		b, ok := asInt(have)
		return ok && a == b
	}
	return want == have
}

func validTypeID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
