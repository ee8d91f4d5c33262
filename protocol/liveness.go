package protocol

import "time"

// PeerStatus is a peer's liveness as seen by one node.
type PeerStatus string

// Peer statuses.
const (
	StatusOnline  PeerStatus = "online"
	StatusStale   PeerStatus = "stale"
	StatusOffline PeerStatus = "offline"
	StatusDeleted PeerStatus = "deleted"
)

// Liveness thresholds in missed heartbeat intervals.
const (
	StaleAfterIntervals   = 3
	OfflineAfterIntervals = 10
)

// ParseStatus reports whether s names a status.
func ParseStatus(s string) (PeerStatus, bool) {
	switch st := PeerStatus(s); st {
	case StatusOnline, StatusStale, StatusOffline, StatusDeleted, StatusIncompatible:
		return st, true
	}
	return "", false
}

// StatusAt derives a peer's status from its last heartbeat and the interval
// it announced: online until 3 intervals pass without one, stale until 10,
// offline after; deleted once it has left.
func StatusAt(lastHeartbeat time.Time, interval time.Duration, deleted bool, now time.Time) PeerStatus {
	if deleted {
		return StatusDeleted
	}
	if interval <= 0 {
		interval = time.Second
	}
	missed := now.Sub(lastHeartbeat)
	switch {
	case missed >= OfflineAfterIntervals*interval:
		return StatusOffline
	case missed >= StaleAfterIntervals*interval:
		return StatusStale
	}
	return StatusOnline
}

// AdaptiveInterval stretches a node's own heartbeat interval with the number
// of live peers so that the network-wide heartbeat rate stays within budget
// messages per second: interval = max(base, peers/budget).
func AdaptiveInterval(base time.Duration, livePeers int, budgetPerSecond float64) time.Duration {
	if budgetPerSecond <= 0 || livePeers <= 0 {
		return base
	}
	need := time.Duration(float64(livePeers+1) / budgetPerSecond * float64(time.Second))
	if need > base {
		return need.Round(10 * time.Millisecond)
	}
	return base
}

// StatusIncompatible marks a connected peer that speaks proofmesh but not
// our network at our protocol major: it is listed (so an operator sees
// which versions met) and never routed to.
const StatusIncompatible PeerStatus = "incompatible"
