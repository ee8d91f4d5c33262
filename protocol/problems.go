package protocol

import (
	"slices"
	"time"
)

// Problem codes: why a node cannot join, or works badly, in words an
// operator can act on (GET /api/v1/node's "problems", and a warn-level
// log line when one appears).
const (
	// ProblemNetworkMismatch: a peer we reached (a bootstrap peer, often)
	// speaks proofmesh for another network id, not ours.
	ProblemNetworkMismatch = "network_mismatch"
	// ProblemProtocolMismatch: a peer speaks our network at another
	// protocol major only.
	ProblemProtocolMismatch = "protocol_mismatch"
	// ProblemBootstrapUnreachable: a bootstrap address cannot be dialed.
	ProblemBootstrapUnreachable = "bootstrap_unreachable"
	// ProblemNoPeers: no peer of our network found a while after start.
	ProblemNoPeers = "no_peers"
	// ProblemClockSkew: our clock disagrees with our peers' beyond the
	// allowed skew, so they ignore what we send.
	ProblemClockSkew = "clock_skew"
)

// Problem is one thing wrong with this node now.
type Problem struct {
	Code    string    `json:"code"`
	Message string    `json:"message"` // what is wrong and what to do
	Since   time.Time `json:"since"`   // when it appeared (RFC 3339)
}

// Problems is the set of a node's current problems, one per code. It is
// not safe for concurrent use; one goroutine owns it.
type Problems struct {
	cur map[string]Problem
}

// Update makes the set what is wrong now (code -> message) and returns the
// problems that appeared and those that were resolved since the last
// update. A problem that persists keeps its Since; its message follows the
// latest wording (numbers in it change) without counting as new.
func (p *Problems) Update(now time.Time, current map[string]string) (appeared, resolved []Problem) {
	if p.cur == nil {
		p.cur = map[string]Problem{}
	}
	for code, msg := range current {
		if old, ok := p.cur[code]; ok {
			old.Message = msg
			p.cur[code] = old
			continue
		}
		pr := Problem{Code: code, Message: msg, Since: now.UTC().Truncate(time.Second)}
		p.cur[code] = pr
		appeared = append(appeared, pr)
	}
	for code, pr := range p.cur {
		if _, ok := current[code]; !ok {
			delete(p.cur, code)
			resolved = append(resolved, pr)
		}
	}
	byCode := func(a, b Problem) int { return compareStrings(a.Code, b.Code) }
	slices.SortFunc(appeared, byCode)
	slices.SortFunc(resolved, byCode)
	return appeared, resolved
}

// List returns the current problems sorted by code; never nil.
func (p *Problems) List() []Problem {
	out := make([]Problem, 0, len(p.cur))
	for _, pr := range p.cur {
		out = append(out, pr)
	}
	slices.SortFunc(out, func(a, b Problem) int { return compareStrings(a.Code, b.Code) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ClockOffsets estimates how far our clock is from our peers': each voter
// (one per network origin: an IP address, or a peer on a testnet) holds
// its latest sample of peer time minus our time, and the estimate is the
// median of the fresh samples. One lying voter, or any minority, cannot
// move the median outside the range of the honest ones, and Sybils behind
// one address are one voter. Not safe for concurrent use.
type ClockOffsets struct {
	maxVoters int
	maxAge    time.Duration
	samples   map[string]clockSample
}

type clockSample struct {
	offset time.Duration
	at     time.Time
}

// NewClockOffsets keeps at most maxVoters voters (the longest silent is
// dropped for a new one) and forgets samples older than maxAge.
func NewClockOffsets(maxVoters int, maxAge time.Duration) *ClockOffsets {
	return &ClockOffsets{maxVoters: max(maxVoters, 1), maxAge: maxAge, samples: map[string]clockSample{}}
}

// Add records a voter's sample: the time a peer put in a message it had
// just sent, minus our time at receipt (positive: our clock is behind).
func (c *ClockOffsets) Add(voter string, offset time.Duration, now time.Time) {
	if _, ok := c.samples[voter]; !ok && len(c.samples) >= c.maxVoters {
		var oldest string
		var at time.Time
		for v, s := range c.samples {
			if oldest == "" || s.at.Before(at) {
				oldest, at = v, s.at
			}
		}
		delete(c.samples, oldest)
	}
	c.samples[voter] = clockSample{offset: offset, at: now}
}

// Estimate returns the median offset of the fresh samples and how many
// voters it rests on (0: no estimate).
func (c *ClockOffsets) Estimate(now time.Time) (time.Duration, int) {
	var offs []time.Duration
	for v, s := range c.samples {
		if now.Sub(s.at) > c.maxAge {
			delete(c.samples, v)
			continue
		}
		offs = append(offs, s.offset)
	}
	if len(offs) == 0 {
		return 0, 0
	}
	slices.Sort(offs)
	n := len(offs)
	if n%2 == 1 {
		return offs[n/2], n
	}
	return (offs[n/2-1] + offs[n/2]) / 2, n
}

// MinClockVoters is how many distinct voters must agree before a node is
// told its clock is off.
const MinClockVoters = 3

// ClockOff reports whether an estimate says our clock is off: at least
// MinClockVoters voters, median beyond the allowed skew.
func ClockOff(median time.Duration, voters int, skew time.Duration) bool {
	return voters >= MinClockVoters && (median > skew || median < -skew)
}
