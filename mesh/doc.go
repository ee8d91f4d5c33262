// Package mesh owns proofmesh's libp2p side: the host (TCP and QUIC, Noise
// and TLS, resource and connection managers), the gossipsub topics with
// their validators and peer scoring, Kademlia DHT and rendezvous discovery,
// the live peer table built from heartbeats and leave notices, and the
// content-addressed blob stream protocol.
//
// mesh does the I/O; every rule it applies (is this heartbeat valid? is
// this peer stale?) is decided by package protocol.
package mesh
