// Package protocol defines the messages proofmesh nodes exchange and the
// rules that decide whether a message, a capability set or a task is
// acceptable: heartbeats, leave notices, tasks and results; the capability
// policy; the task-type registry; capability matching and candidate
// ranking; liveness; and the task state machine.
//
// It performs no I/O. The mesh, store and node packages call it for every
// decision, so every rule here is tested with plain table tests.
//
// Wire encoding is JSON with a size limit checked before decoding and
// unknown fields refused. Messages that outlive a gossip hop (Leave, Result)
// are libp2p signed envelopes (core/record) with a proofmesh domain, so they
// can be verified offline by anyone.
package protocol
