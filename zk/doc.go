// Package zk owns proofmesh's zero-knowledge layer: the Groth16 circuits
// (BN254) of the built-in groth16 task types, the multi-party key ceremony
// that produces their proving and verifying keys, the key sets a node or an
// auditor loads, proving with bounded concurrency, verification of single
// proofs, and batch verification of many proofs of one circuit with one
// multi-pairing.
//
// # Circuits and public inputs
//
// Circuit ids equal the task type ids of protocol/spec. A proof's public
// inputs are the task's input values, its output values and a binding
// field element Binding(taskID, executorID), always last, which the
// circuits constrain, so a proof cannot be replayed for another task or
// claimed by another executor. Negative integers are their field
// representatives r-|v|. In order:
//
//	mimc.chain.v1  x, y, binding                                  (21122 constraints)
//	mlp.infer.v1   x[0..15], scores[0..3], class, binding         (429 constraints)
//
// mimc.chain.v1 proves y = h(64) with h(0) = x and h(i+1) = MiMC-BN254(h(i))
// (gnark-crypto's MiMC, 110 rounds of x⁵, 330 constraints per hash).
// mlp.infer.v1 proves spec.MLPInfer: every accumulator, sign, shift
// remainder and comparison is fixed by a bit decomposition, and the class
// is the lowest index of a maximal score.
//
// Task JSON is parsed strictly: exactly the fields of the type, each once;
// field elements as quoted canonical decimals below r; integers as
// canonical JSON integers within their range. PublicInputs returns the
// public inputs as decimal strings.
//
// # Keys
//
// A key directory holds ManifestFile and, per circuit, "<id>.vk" and
// "<id>.pk" in gnark's compressed encoding; the manifest pins their SHA-256
// and records the ceremony. DefaultKeys returns the keys of the built-in
// network, embedded from zk/keys; LoadKeys reads another directory;
// RunCeremony (or zk/cmd/ceremony) makes new ones. Verifying keys are
// decoded at load (a few hundred bytes each); a proving key stays in its
// file until the first proof of its circuit reads, checks and decodes it
// (megabytes: a node that never proves never holds one). Proving keys may
// be absent (an auditor needs none) and added later with AddProvingKey
// after a content-addressed fetch.
//
// # Outside bytes
//
// Everything that comes from outside (proof bytes, task JSON, a manifest,
// a key file, a proving key fetched from a peer) is decoded with size
// limits and, for curve points, with curve and subgroup checks. Proofs are
// accepted only in their canonical ProofSize-byte form. Failures wrap the
// sentinel errors of this package so callers can branch with errors.Is.
//
// zk imports only the standard library, gnark, gnark-crypto, zerolog (to
// silence gnark's logger, once, on first use) and protocol/spec. It does
// no network I/O; it reads files in LoadKeys and writes them in
// RunCeremony.
package zk
