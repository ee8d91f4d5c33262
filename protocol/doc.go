// Package protocol defines the messages proofmesh nodes exchange and the
// rules that decide whether a message, a capability set or a task is
// acceptable: heartbeats, leave notices, tasks and results; the capability
// policy; the task-type registry; capability matching and candidate
// ranking; liveness; and the task lifecycle, a pure state machine
// (Lifecycle.Step(now, event) -> actions) that every node runs for every
// task it has seen.
//
// It performs no I/O. The mesh, store and node packages call it for every
// decision, so every rule here is tested with plain table tests.
//
// Wire encoding is JSON with a size limit checked before decoding and
// duplicate and case-variant keys refused; fields a build does not know
// are skipped (a newer release of the same protocol major may add optional
// ones: docs/PROTOCOL.md), while policies and bundles refuse them. Messages that outlive a
// gossip hop (Task, Cancel, Leave, Result) are libp2p signed envelopes (core/record) with a proofmesh domain, so they
// can be verified offline by anyone.
package protocol
