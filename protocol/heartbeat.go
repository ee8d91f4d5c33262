package protocol

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// MaxHeartbeatBytes bounds an encoded heartbeat; larger ones are REJECTED.
const MaxHeartbeatBytes = 4 << 10

// DefaultClockSkew is how far a message's time may be from ours.
const DefaultClockSkew = 30 * time.Second

// Heartbeat is what a node gossips about itself at every interval. The
// gossipsub message carrying it is signed by the node (strict signing), so
// NodeID must equal the message's origin.
type Heartbeat struct {
	NodeID        string       `json:"node_id"`
	Seq           uint64       `json:"seq"`
	Time          int64        `json:"time"` // unix milliseconds
	Capabilities  Capabilities `json:"capabilities"`
	PolicyVersion int          `json:"policy_version"`
	NodeType      string       `json:"node_type"`
	Region        string       `json:"region,omitempty"`
	Load          float64      `json:"load"`   // 0 idle .. 1 saturated
	Health        float64      `json:"health"` // 0 failing .. 1 healthy
	Version       string       `json:"version"`
	TaskTypes     []string     `json:"task_types,omitempty"`
	ListenAddrs   []string     `json:"listen_addrs,omitempty"`
	// IntervalMS is the sender's current heartbeat interval; receivers derive
	// the sender's stale and offline thresholds from it.
	IntervalMS int64 `json:"interval_ms"`
	// Refutes is the highest suspicion seq this node has answered
	// (protocol/suspicion.go): a claim at or below it is already refuted,
	// whichever of the claim and this heartbeat arrives first.
	Refutes uint64 `json:"refutes,omitempty"`
}

// Encode marshals the heartbeat for the wire.
func (h *Heartbeat) Encode() ([]byte, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode heartbeat: %w", err)
	}
	if len(b) > MaxHeartbeatBytes {
		return nil, fmt.Errorf("encode heartbeat: %w: %d bytes, limit %d", ErrOversized, len(b), MaxHeartbeatBytes)
	}
	return b, nil
}

// DecodeHeartbeat parses a heartbeat from outside bytes. It checks the form
// only; ValidateHeartbeat applies the rules.
func DecodeHeartbeat(data []byte) (*Heartbeat, error) {
	return decodeHeartbeat(data, nil)
}

// decodeHeartbeat is DecodeHeartbeat with the form check skipping what
// prev, a heartbeat of the same node accepted earlier, already passed.
func decodeHeartbeat(data []byte, prev *Heartbeat) (*Heartbeat, error) {
	h, ok := decodeHeartbeatFast(data, prev)
	if !ok {
		h = new(Heartbeat)
		if err := decodeWire(data, MaxHeartbeatBytes, h); err != nil {
			return nil, fmt.Errorf("heartbeat: %w", err)
		}
	}
	if err := h.checkForm(prev); err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	return h, nil
}

// checkForm checks the heartbeat's fields one by one. A node id or a list
// of listen addresses equal to prev's (a heartbeat of the same node that
// passed this check) is not parsed again: most of a node's heartbeats
// repeat them.
func (h *Heartbeat) checkForm(prev *Heartbeat) error {
	if prev == nil || h.NodeID != prev.NodeID {
		if _, err := peer.Decode(h.NodeID); err != nil {
			return fmt.Errorf("%w: node_id %q is not a peer id", ErrMalformed, h.NodeID)
		}
	}
	if h.Seq == 0 {
		return fmt.Errorf("%w: seq must start at 1", ErrMalformed)
	}
	if h.Load < 0 || h.Load > 1 || h.Health < 0 || h.Health > 1 {
		return fmt.Errorf("%w: load and health must be within 0..1", ErrMalformed)
	}
	if h.IntervalMS < 100 || h.IntervalMS > int64(time.Hour/time.Millisecond) {
		return fmt.Errorf("%w: interval_ms %d not within 100..3600000", ErrMalformed, h.IntervalMS)
	}
	if len(h.TaskTypes) > MaxHeartbeatTaskTypes || len(h.ListenAddrs) > MaxHeartbeatAddrs {
		return fmt.Errorf("%w: %d task types and %d listen addresses (at most %d and %d)", ErrMalformed, len(h.TaskTypes), len(h.ListenAddrs), MaxHeartbeatTaskTypes, MaxHeartbeatAddrs)
	}
	// Every string below is shown to people (proofmesh peers, the
	// dashboard, logs): none may carry a control character or anything
	// beyond its field's alphabet.
	if h.Region != "" && !tokenOf(h.Region, 32, isRegionChar) {
		return fmt.Errorf("%w: region %q must be 1-32 of [a-z0-9-]", ErrMalformed, h.Region)
	}
	if h.NodeType != "" && !tokenOf(h.NodeType, 32, isRegionChar) {
		return fmt.Errorf("%w: node_type %q must be 1-32 of [a-z0-9-]", ErrMalformed, h.NodeType)
	}
	if h.Version != "" && !tokenOf(h.Version, 64, isVersionChar) {
		return fmt.Errorf("%w: version %q must be 1-64 of [A-Za-z0-9._+/-]", ErrMalformed, h.Version)
	}
	for _, tt := range h.TaskTypes {
		if !tokenOf(tt, 64, isTaskTypeChar) {
			return fmt.Errorf("%w: task type %q must be 1-64 of [a-z0-9._-]", ErrMalformed, tt)
		}
	}
	if prev == nil || !slices.Equal(h.ListenAddrs, prev.ListenAddrs) { // else parsed when prev was checked
		for _, a := range h.ListenAddrs {
			if len(a) > MaxListenAddrLen {
				return fmt.Errorf("%w: listen address of %d bytes (at most %d)", ErrMalformed, len(a), MaxListenAddrLen)
			}
			if _, err := ma.NewMultiaddr(a); err != nil {
				return fmt.Errorf("%w: listen address %q is not a multiaddr: %v", ErrMalformed, a, err)
			}
		}
	}
	return nil
}

// Bounds of a heartbeat's lists.
const (
	MaxHeartbeatTaskTypes = 32
	MaxHeartbeatAddrs     = 16
	MaxListenAddrLen      = 256 // bytes of one listen multiaddr in its text form
)

// tokenOf reports whether s is 1..maxLen bytes, each allowed by ok.
func tokenOf(s string, maxLen int, ok func(byte) bool) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isRegionChar(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' }

func isTaskTypeChar(c byte) bool { return isRegionChar(c) || c == '.' || c == '_' }

func isVersionChar(c byte) bool {
	return isTaskTypeChar(c) || c >= 'A' && c <= 'Z' || c == '+' || c == '/'
}

// HeartbeatCheck carries what a validator knows when it judges a heartbeat.
type HeartbeatCheck struct {
	From    peer.ID       // the gossip message's signed origin
	Now     time.Time     // the local clock
	Skew    time.Duration // allowed clock skew
	LastSeq uint64        // highest seq accepted from this node so far (0: none)
	Policy  Policy        // our capability policy
	// Prev is the last heartbeat accepted from From under Policy (nil:
	// none), and PrevCaps the capabilities its check returned. A field
	// equal to Prev's passed its check then and is not checked again:
	// most of a node's heartbeats differ from its last only in seq,
	// time, load and health. Prev must come from From: its node id is
	// taken as From's.
	Prev     *Heartbeat
	PrevCaps Capabilities
}

// ValidateHeartbeat applies the heartbeat rules of DESIGN.md and returns the
// heartbeat's capabilities normalised (unknown keys of a newer policy
// dropped). Errors wrap the sentinels: ErrForged, ErrMalformed and the
// capability errors REJECT; ErrStale (seq not increasing) and ErrClockSkew
// IGNORE.
func ValidateHeartbeat(h *Heartbeat, c HeartbeatCheck) (Capabilities, error) {
	if err := h.checkForm(c.Prev); err != nil {
		return nil, err
	}
	return h.checkRules(c)
}

// DecodeAndValidateHeartbeat is DecodeHeartbeat then ValidateHeartbeat,
// checking the heartbeat's form once (its node id and listen addresses
// are parsed once, not twice): a gossip validator's path. h is returned
// whenever data decodes, also when a rule refuses it (a heartbeat outside
// the clock skew is still a vote on the local clock).
func DecodeAndValidateHeartbeat(data []byte, c HeartbeatCheck) (h *Heartbeat, caps Capabilities, err error) {
	if h, err = decodeHeartbeat(data, c.Prev); err != nil {
		return nil, nil, err
	}
	caps, err = h.checkRules(c)
	return h, caps, err
}

// checkRules is ValidateHeartbeat past the form check.
func (h *Heartbeat) checkRules(c HeartbeatCheck) (Capabilities, error) {
	prev := c.Prev
	if (prev == nil || h.NodeID != prev.NodeID) && h.NodeID != c.From.String() {
		return nil, fmt.Errorf("%w: node_id %s sent by %s", ErrForged, h.NodeID, c.From)
	}
	// The seq before the capabilities: a copy of an old heartbeat that a
	// changed policy would refuse is old news (IGNORE, and its origin's
	// rate token given back when another peer sent it), not a REJECT that
	// spends its origin's token (a review of this round).
	if h.Seq <= c.LastSeq {
		return nil, fmt.Errorf("%w: seq %d not above %d", ErrStale, h.Seq, c.LastSeq)
	}
	caps := c.PrevCaps
	if prev == nil || caps == nil || h.PolicyVersion != prev.PolicyVersion || !h.Capabilities.Equal(prev.Capabilities) {
		var err error
		if caps, err = c.Policy.CheckClaimed(h.PolicyVersion, h.Capabilities); err != nil {
			return nil, err
		}
	}
	if nt, ok := caps[CapNodeType]; ok && nt != h.NodeType {
		return nil, fmt.Errorf("%w: node_type %q differs from capability %q", ErrMalformed, h.NodeType, nt)
	}
	if d := c.Now.Sub(time.UnixMilli(h.Time)); d > c.Skew || d < -c.Skew {
		return nil, fmt.Errorf("%w: heartbeat time is %s from ours (allowed %s)", ErrClockSkew, d.Round(time.Millisecond), c.Skew)
	}
	return caps, nil
}

// Serves reports whether the heartbeat lists taskType among the types served.
func (h *Heartbeat) Serves(taskType string) bool {
	return slices.Contains(h.TaskTypes, taskType)
}
