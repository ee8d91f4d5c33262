// Package zk owns proofmesh's zero-knowledge layer: the Groth16 circuits
// (BN254) of the built-in groth16 task types (mimc.chain.v1, mlp.infer.v1),
// the multi-party key ceremony that produces their proving and verifying
// keys, the key sets a node or an auditor loads (the shipped default keys
// are embedded and pinned by the hashes of their manifest), proving with
// bounded concurrency, verification of single proofs, and batch
// verification of many proofs of one circuit with one multi-pairing.
//
// A proof's public inputs are the task's input values, its output values
// and a binding field element Binding(taskID, executorID), which the
// circuits constrain, so a proof cannot be replayed for another task or
// claimed by another executor.
//
// Everything that comes from outside (proof bytes, task JSON, a manifest,
// a proving key fetched from a peer) is decoded with size limits and, for
// curve points, with curve and subgroup checks; failures wrap the sentinel
// errors of this package so callers can branch with errors.Is.
//
// zk imports only the standard library, gnark, gnark-crypto, zerolog (to
// silence gnark's logger) and protocol/spec. It performs no network I/O;
// it reads and writes files only in LoadKeys and RunCeremony.
package zk
