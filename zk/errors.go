package zk

import "errors"

// Sentinel errors. Every error returned by this package that a caller may
// want to branch on wraps exactly one of them; the message says which
// input, which rule, and why.
var (
	// ErrUnknownCircuit: the circuit id is not one of the built-in
	// circuits, or the key set holds no keys for it.
	ErrUnknownCircuit = errors.New("unknown circuit")
	// ErrProofEncoding: the proof bytes do not decode: wrong length,
	// a point that is not on the curve or not in the prime-order subgroup.
	ErrProofEncoding = errors.New("malformed proof encoding")
	// ErrBadInput: the task input JSON does not parse or is out of range.
	ErrBadInput = errors.New("bad task input")
	// ErrBadOutput: the task output JSON does not parse, is out of range,
	// or (when proving) is not the function of the input.
	ErrBadOutput = errors.New("bad task output")
	// ErrProofInvalid: the proof decodes but the pairing check fails: the
	// output, the input or the binding differ from what was proven, or the
	// proof belongs to another circuit.
	ErrProofInvalid = errors.New("invalid proof")
	// ErrMissingProvingKey: the key set has only the verifying key of the
	// circuit (an auditor's key set); fetch the proving key and add it with
	// AddProvingKey.
	ErrMissingProvingKey = errors.New("missing proving key")
	// ErrKeyHashMismatch: a key file's SHA-256 differs from the hash the
	// manifest pins for it; the message names the file.
	ErrKeyHashMismatch = errors.New("key hash mismatch")
	// ErrBadKeys: a key file or manifest is missing, malformed, too large,
	// or does not fit the circuit it claims to be for.
	ErrBadKeys = errors.New("bad key material")
	// ErrCeremony: a ceremony contribution failed verification or the
	// ceremony could not complete.
	ErrCeremony = errors.New("setup ceremony failed")
)
