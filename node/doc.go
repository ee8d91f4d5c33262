// Package node is proofmesh's composition root. It turns a Config into a
// running node: identity and data dir, the bbolt store, the mesh and its
// bootstrap keeper, the WASM sandbox, the Groth16 keys and prover, the task
// lifecycle (route, execute, prove, verify, accept) and the HTTP API
// (package node/api). Every decision it takes is made by package protocol.
package node
