// Package node is proofmesh's composition root. It turns a Config into a
// running node: identity and data dir, the bbolt store, the mesh and its
// bootstrap keeper, the WASM sandbox, the Groth16 keys and prover, the HTTP
// API (package node/api), and the driver of the task lifecycle: one
// goroutine owns every live task's protocol.Lifecycle, feeds it what the
// mesh delivers, and carries out its actions (persist in one transaction a
// step, run, stop, penalize). Every decision it takes is made by package
// protocol.
package node
