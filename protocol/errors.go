package protocol

import "errors"

// Sentinel errors. Gossip validators map them to verdicts in one place:
// ErrStale, ErrDuplicate, ErrClockSkew, ErrNotYet and ErrUnknownKind are
// IGNOREd (an honest peer can cause them); every other error is a REJECT.
var (
	ErrMalformed = errors.New("malformed message")
	ErrOversized = errors.New("message too large")
	ErrForged    = errors.New("message not signed by the node it speaks for")
	ErrStale     = errors.New("stale message")
	ErrDuplicate = errors.New("duplicate message")
	ErrClockSkew = errors.New("timestamp outside the allowed clock skew")
	ErrNotYet    = errors.New("message not yet useful")
	// ErrUnknownKind is a message of a kind a newer release of the same
	// protocol major added to a topic: ignored, not held against anyone.
	ErrUnknownKind        = errors.New("message of a kind this release does not know")
	ErrUnknownCapability  = errors.New("unknown capability")
	ErrCapabilityType     = errors.New("capability has the wrong type")
	ErrCapabilityRange    = errors.New("capability out of range")
	ErrUnknownTaskType    = errors.New("unknown task type")
	ErrInputTooLarge      = errors.New("input too large")
	ErrModuleTooLarge     = errors.New("module too large")
	ErrBadInput           = errors.New("invalid task input")
	ErrBadReplicas        = errors.New("replicas out of range")
	ErrDeadlinePassed     = errors.New("deadline passed")
	ErrBadTransition      = errors.New("invalid task state transition")
	ErrNoCapablePeer      = errors.New("no capable peer online")
	ErrInvalidPolicy      = errors.New("invalid capability policy")
	ErrInvalidRegistry    = errors.New("invalid task-type registry")
	ErrTaskIDMismatch     = errors.New("task id does not match its content")
	ErrExecutorNotAllowed = errors.New("executor is not a candidate of the task")
)

// Ignorable reports whether err should make a gossip validator IGNORE the
// message (not penalise the forwarder) rather than REJECT it.
func Ignorable(err error) bool {
	return errors.Is(err, ErrStale) || errors.Is(err, ErrDuplicate) ||
		errors.Is(err, ErrClockSkew) || errors.Is(err, ErrNotYet) || errors.Is(err, ErrUnknownKind)
}

// Replayed reports whether err refuses a message as old news: at or below
// what this node holds already (ErrStale, ErrDuplicate) or dated outside
// the clock skew (ErrClockSkew). Anyone who kept a copy can send such a
// message again, long after its origin did, so it says nothing about its
// origin unless the origin sent it itself.
func Replayed(err error) bool {
	return errors.Is(err, ErrStale) || errors.Is(err, ErrDuplicate) || errors.Is(err, ErrClockSkew)
}

// Reason returns a short stable word for err, used as a metrics label and a
// log value.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.word
		}
	}
	if err == nil {
		return "ok"
	}
	return "other"
}

var reasons = []struct {
	err  error
	word string
}{
	{ErrOversized, "oversized"},
	{ErrMalformed, "malformed"},
	{ErrForged, "forged"},
	{ErrStale, "stale"},
	{ErrDuplicate, "duplicate"},
	{ErrClockSkew, "clock_skew"},
	{ErrNotYet, "not_yet"},
	{ErrUnknownKind, "unknown_kind"},
	{ErrUnknownCapability, "unknown_capability"},
	{ErrCapabilityType, "capability_type"},
	{ErrCapabilityRange, "capability_range"},
	{ErrUnknownTaskType, "unknown_task_type"},
	{ErrInputTooLarge, "input_too_large"},
	{ErrModuleTooLarge, "module_too_large"},
	{ErrBadInput, "bad_input"},
	{ErrBadReplicas, "bad_replicas"},
	{ErrDeadlinePassed, "deadline_passed"},
	{ErrTaskIDMismatch, "task_id_mismatch"},
	{ErrExecutorNotAllowed, "executor_not_allowed"},
}
