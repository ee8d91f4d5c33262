package protocol

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Failure detection that does not wait for heartbeats (DESIGN.md
// "Liveness"), in the manner of SWIM with Lifeguard's suspicion: a node
// that loses every connection to a peer, or whose probe of it fails, suspects
// it and gossips a signed Suspicion. Every other node treats the claim as a
// hint: it probes the suspect itself if it holds a connection to it, and
// otherwise waits SuspicionTimeout for the suspect's refutation, a fresh
// heartbeat signed by the suspect with a sequence number above every one the
// suspicion was raised on. A live suspect refutes at once when it hears a
// claim about itself; a dead one cannot. No claim is a verdict one peer can
// impose: the suspect's own signature always wins.

// MaxSuspicionBytes bounds an encoded suspicion; larger ones are REJECTED.
const MaxSuspicionBytes = 512

// Suspicion is a node's claim that a peer is unreachable. The gossip message
// carrying it is signed by the claimant (strict signing): the claimant is
// the message's origin, not a field.
type Suspicion struct {
	Suspect string `json:"suspect"` // peer id
	// Seq is the highest heartbeat sequence number of the suspect the
	// claimant has seen: a refutation must be above it.
	Seq  uint64 `json:"seq"`
	Time int64  `json:"time"` // unix ms, the claimant's clock
}

// Encode marshals the suspicion for the wire.
func (s *Suspicion) Encode() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode suspicion: %w", err)
	}
	if len(b) > MaxSuspicionBytes {
		return nil, fmt.Errorf("encode suspicion: %w: %d bytes, limit %d", ErrOversized, len(b), MaxSuspicionBytes)
	}
	return b, nil
}

// DecodeSuspicion parses a suspicion from outside bytes and checks its form.
// CheckSuspicion applies the rules that need the origin and the time.
func DecodeSuspicion(data []byte) (*Suspicion, peer.ID, error) {
	var s Suspicion
	if err := decodeWire(data, MaxSuspicionBytes, &s); err != nil {
		return nil, "", fmt.Errorf("suspicion: %w", err)
	}
	id, err := peer.Decode(s.Suspect)
	if err != nil {
		return nil, "", fmt.Errorf("suspicion: %w: suspect: %v", ErrMalformed, err)
	}
	if s.Time <= 0 {
		return nil, "", fmt.Errorf("suspicion: %w: time %d", ErrMalformed, s.Time)
	}
	return &s, id, nil
}

// CheckSuspicion applies the rules to a decoded suspicion from claimant:
// nobody suspects itself, the time is within the clock skew (IGNORE
// otherwise), and the sequence number is no later than the claim's time
// plus the skew (sequence numbers are microsecond clock readings, see
// NextSeq): a claimant cannot name a number the suspect could not refute
// for long.
func CheckSuspicion(s *Suspicion, suspect, claimant peer.ID, now time.Time, skew time.Duration) error {
	if suspect == claimant {
		return fmt.Errorf("suspicion: %w: %s suspects itself", ErrMalformed, claimant)
	}
	t := time.UnixMilli(s.Time)
	if d := now.Sub(t); d > skew || d < -skew {
		return fmt.Errorf("suspicion: %w: time is %s from ours", ErrClockSkew, d.Round(time.Millisecond))
	}
	if limit := uint64(t.Add(skew).UnixMicro()); s.Seq > limit {
		return fmt.Errorf("suspicion: %w: seq %d beyond the claim's time plus the skew (%d)", ErrMalformed, s.Seq, limit)
	}
	return nil
}

// CheckSuspicionOfSelf applies the rules to a claim about the node that
// checks it: as CheckSuspicion, except that a claim of any age is
// answered. Others take a claim while it is within the skew of their
// clocks and hold it for seconds after; a suspect that dropped it as too
// old once it reached it (a liar can date it at the window's edge) would
// leave them a suspicion nobody refutes. A claim from the future beyond
// the skew, or naming a seq beyond its time plus the skew, is refused as
// by CheckSuspicion: nobody else takes it either.
func CheckSuspicionOfSelf(s *Suspicion, self, claimant peer.ID, now time.Time, skew time.Duration) error {
	if self == claimant {
		return fmt.Errorf("suspicion: %w: %s suspects itself", ErrMalformed, claimant)
	}
	t := time.UnixMilli(s.Time)
	if d := t.Sub(now); d > skew {
		return fmt.Errorf("suspicion: %w: time is %s ahead of ours", ErrClockSkew, d.Round(time.Millisecond))
	}
	if limit := uint64(t.Add(skew).UnixMicro()); s.Seq > limit {
		return fmt.Errorf("suspicion: %w: seq %d beyond the claim's time plus the skew (%d)", ErrMalformed, s.Seq, limit)
	}
	return nil
}

// NextSeq returns a node's next heartbeat sequence number after last: above
// every earlier one, and never below the wall clock in microseconds, so that
// it also grows across restarts. A node refuting a suspicion first raises
// last to the suspicion's Seq, so that its refutation is above it.
func NextSeq(last uint64, now time.Time) uint64 {
	return max(last+1, uint64(now.UnixMicro()))
}

// DetectorConfig tunes a Detector.
type DetectorConfig struct {
	// SuspicionTimeout is how long a suspicion waits for a refutation
	// before the suspect is declared down, when no other node confirms
	// it. Independent confirmations shorten the wait down to
	// MinSuspicionTimeout (Lifeguard's dynamic suspicion timeout, see
	// Detector.timeout).
	SuspicionTimeout time.Duration
	// MinSuspicionTimeout is the wait once Confirmations distinct nodes
	// other than the first claimant (or this node's own failed probe)
	// confirmed a suspicion: the time a live suspect always has to
	// refute, however many identities claim it dead.
	MinSuspicionTimeout time.Duration
	// Confirmations is how many confirmations bring the wait to
	// MinSuspicionTimeout; the claimants counted are bounded by it.
	Confirmations int
	// ConfirmedFor is how long a successful probe of a peer makes claims
	// about it not worth another probe (the suspect's refutation then
	// decides).
	ConfirmedFor time.Duration
	// MaxSuspects bounds the suspicions held at once; a claim beyond it is
	// not taken (ErrNotYet). It bounds the first strikes too.
	MaxSuspects int
	// MaxHealth caps the local health score (Lifeguard's local health
	// multiplier, memberlist's awareness): a node whose own pings time
	// out over live connections is likely the slow one, so its probe
	// timeout and its suspicions' waits grow to (1+score) times theirs,
	// and it accuses and convicts less; each successful probe lowers the
	// score by one. Unlike memberlist, having to refute a claim does not
	// raise it: on an open network one liar's claims (2 a second) would
	// pin any node's score at the cap and slow its detection ninefold.
	// 0 turns it off.
	MaxHealth int
	// RetryAfter is how long after a first failed probe the second is
	// due: a node suspects a peer on its own evidence only after two
	// failed probes, so that one slow answer (a busy peer, a busy us) does
	// not start a suspicion.
	RetryAfter time.Duration
}

// DefaultDetectorConfig: a dead peer is declared down about
// SuspicionTimeout after its connections close, whatever the network's size.
func DefaultDetectorConfig() DetectorConfig {
	return DetectorConfig{
		SuspicionTimeout:    5 * time.Second, // a refutation crosses a 1,000-node gossip mesh in well under a second
		MinSuspicionTimeout: 2 * time.Second, // ... and in well under two on a busy machine
		Confirmations:       3,               // a dead peer's neighbours all see its connections close
		ConfirmedFor:        5 * time.Second, // a peer that just answered is not probed again for a claim
		MaxSuspects:         1024,            // ≈ the peer table's rows
		RetryAfter:          time.Second,     // a second probe one second after a failed one
		MaxHealth:           8,               // memberlist's AwarenessMaxMultiplier
	}
}

// LivenessKind says what a driver must do for a Detector.
type LivenessKind int

// Liveness actions.
const (
	// ActProbe: probe the peer (ping over a connection, dialling it if the
	// action says so) and report ProbeResult.
	ActProbe LivenessKind = iota + 1
	// ActClaim: gossip a Suspicion of the peer with Seq (this node's own
	// evidence raised it).
	ActClaim
	// ActDown: the peer is down: off the online lists until a heartbeat
	// above Seq, or a successful probe, says otherwise.
	ActDown
	// ActUp: a successful probe found the peer alive: clear a down mark.
	ActUp
)

// LivenessAction is one thing a Detector asks its driver to do.
type LivenessAction struct {
	Kind LivenessKind
	Peer peer.ID
	Seq  uint64
	Dial bool // ActProbe: dial if no connection is open
}

type suspicion struct {
	since time.Time
	seq   uint64 // a refutation must be above it
	// raised is when a claim last raised seq (zero: never): a refutation
	// of the old bar no longer counts, so the suspect has at least the
	// minimum wait from then to answer the new one.
	raised time.Time
	// by are the distinct nodes that claimed it (this node's own id for
	// its own evidence), at most Confirmations+1: the first, then the
	// confirmations that shorten the wait.
	by []peer.ID
	// claimed is the highest Seq of the claims taken (and so forwarded)
	// in this suspicion: the suspect's refutation of that one names it
	// in Refutes, which refutes every claim at or below it everywhere,
	// so a later claim at or below it need not travel on.
	claimed uint64
}

// confirm records claimant's claim; it reports whether it was a new one
// within the bound.
func (s *suspicion) confirm(claimant peer.ID, limit int) bool {
	if slices.Contains(s.by, claimant) || len(s.by) > limit {
		return false
	}
	s.by = append(s.by, claimant)
	return true
}

// timeout is how long the suspicion waits for a refutation: Lifeguard's
// dynamic suspicion timeout (Dadgar et al., 2018; hashicorp/memberlist's
// suspicion.go), max − (max − min)·log(C+1)/log(K+1) for C confirmations
// out of K, so SuspicionTimeout for a lone claim and MinSuspicionTimeout
// once K distinct nodes confirm it. Many independent witnesses of one
// death make it a death sooner; a lone claim, perhaps a liar's, leaves
// the suspect the full time to refute.
func (d *Detector) timeout(s *suspicion) time.Duration {
	maxT, minT, k := d.cfg.SuspicionTimeout, d.cfg.MinSuspicionTimeout, d.cfg.Confirmations
	c := len(s.by) - 1
	if k <= 0 || minT <= 0 || minT >= maxT || c <= 0 {
		return maxT
	}
	if c >= k {
		return minT
	}
	frac := math.Log(float64(c)+1) / math.Log(float64(k)+1)
	return maxT - time.Duration(frac*float64(maxT-minT))
}

// expired reports whether s waited out its timeout, and, if a claim
// raised its bar, the minimum wait since (MinSuspicionTimeout, or
// SuspicionTimeout without one): a claim's seq may run ahead of the
// suspect's by the clock skew, so a liar raising the bar just before the
// wait ends would otherwise leave the suspect no time to answer it.
func (d *Detector) expired(s *suspicion, now time.Time) bool {
	floor := d.cfg.MinSuspicionTimeout
	if floor <= 0 || floor > d.cfg.SuspicionTimeout {
		floor = d.cfg.SuspicionTimeout
	}
	return now.Sub(s.since) >= d.Scale(d.timeout(s)) && (s.raised.IsZero() || now.Sub(s.raised) >= d.Scale(floor))
}

// Detector holds the suspicions of one node. It is a pure state machine:
// the driver feeds it what it observes, with the time, and carries out the
// Actions it returns. Not safe for concurrent use: one owner drives it.
type Detector struct {
	cfg       DetectorConfig
	suspects  map[peer.ID]*suspicion
	confirmed map[peer.ID]time.Time // last successful probe, pruned at Tick
	strikes   map[peer.ID]time.Time // a first failed probe, awaiting the second
	health    int                   // local health score, 0 (healthy) .. MaxHealth
}

// NewDetector returns an empty detector.
func NewDetector(cfg DetectorConfig) *Detector {
	return &Detector{cfg: cfg, suspects: map[peer.ID]*suspicion{}, confirmed: map[peer.ID]time.Time{}, strikes: map[peer.ID]time.Time{}}
}

// Len returns the number of suspicions held.
func (d *Detector) Len() int { return len(d.suspects) }

// Health returns the local health score: 0 when this node's pings are
// answered in time, up to MaxHealth when its own slowness is the likely
// cause of what it sees. The driver scales its probe timeout by
// Scale.
func (d *Detector) Health() int { return d.health }

// Scale returns t scaled by the local health score, (1+score)·t.
func (d *Detector) Scale(t time.Duration) time.Duration { return t * time.Duration(1+d.health) }

// ProbeTimedOut reports that a ping of p over a live connection got no
// answer within the probe timeout: p or this node is slow, and across
// peers it is more likely this node. It raises the local health score.
// vouched reports that another node reached p meanwhile (an indirect
// probe, SWIM's ping-req): the timeout is then no evidence about p at all,
// only about this node or its path to p. Otherwise it is weaker evidence
// than a failed dial or a closed connection: it counts toward this node's
// own suspicion of p (two failures, as in ProbeResult), so a hung process
// is still claimed, but it does not confirm a suspicion others raised. On
// a starved machine the peers connected to a falsely accused node time
// out too, and their confirmations turned one claim into four, which
// brought the suspect's wait down to the minimum and its refutations out
// of time. A dead process's connections close, and its neighbours'
// failed dials confirm.
func (d *Detector) ProbeTimedOut(p peer.ID, seq uint64, vouched bool, now time.Time) []LivenessAction {
	d.health = min(d.health+1, d.cfg.MaxHealth)
	if vouched {
		return nil
	}
	if _, held := d.suspects[p]; held {
		delete(d.confirmed, p)
		return nil
	}
	return d.ProbeResult(p, false, seq, now)
}

// Idle reports whether the detector holds no suspicion and no strike:
// Tick then has nothing due before the next lost connection, failed probe
// or claim, and its driver may tick it less often.
func (d *Detector) Idle() bool { return len(d.suspects) == 0 && len(d.strikes) == 0 }

// Suspected reports whether p is suspected and the sequence number a
// refutation must exceed.
func (d *Detector) Suspected(p peer.ID) (uint64, bool) {
	s, ok := d.suspects[p]
	if !ok {
		return 0, false
	}
	return s.seq, true
}

func (d *Detector) recentlyConfirmed(p peer.ID, now time.Time) bool {
	t, ok := d.confirmed[p]
	return ok && now.Sub(t) < d.cfg.ConfirmedFor
}

// ConnectionLost reports that every connection to p closed: this node's own
// evidence, new whatever earlier probes said, and its first strike, checked
// by a probe that dials again (a trimmed connection is not a death). A
// dial that then fails at least RetryAfter later is the second strike: a
// dial to a dead process on a live machine fails at once over TCP, but
// over QUIC it fails only at the probe's timeout, and waiting for two
// such dials would double that.
func (d *Detector) ConnectionLost(p peer.ID, now time.Time) []LivenessAction {
	if _, ok := d.suspects[p]; ok {
		return nil
	}
	if _, struck := d.strikes[p]; !struck && len(d.strikes) < d.cfg.MaxSuspects {
		d.strikes[p] = now
	}
	return []LivenessAction{{Kind: ActProbe, Peer: p, Dial: true}}
}

// Contested reports that a heartbeat of p, at or below bar, brought p
// back online here, although a claim of its death naming bar had reached
// this node while p was listed offline (a claim that is stale there, and
// that it neither took nor forwarded): the claimant had seen that
// heartbeat, or a later one, and still found p dead (or lied; its driver
// bounds bar and how often a peer is contested). Gossip reorders: it may be a
// refutation p sent before it died, overtaken by the claims that followed
// the death. p stays online on its own signature, under a suspicion with
// that bar, as if the claim had come now: refuted by a heartbeat above it
// (a live p heard the claim from the nodes that forwarded it), probed if
// a connection is open, declared down after SuspicionTimeout otherwise.
// Nothing is gossiped or dialled for it (in a starved network such
// probes and claims feed the storm of false ones); only a probe over an
// open connection that fails outright is this node's own evidence, as
// for any suspicion. A suspicion held already keeps its clock, its bar
// raised if bar is above it. One beyond MaxSuspects is not held
// (ErrNotYet).
func (d *Detector) Contested(p peer.ID, bar uint64, connected bool, now time.Time) ([]LivenessAction, error) {
	if s, ok := d.suspects[p]; ok {
		if bar > s.seq {
			s.seq, s.raised = bar, now
		}
		return nil, nil
	}
	if len(d.suspects) >= d.cfg.MaxSuspects {
		return nil, fmt.Errorf("%w: %d suspicions held", ErrNotYet, len(d.suspects))
	}
	// No claimant counted (the claim was not taken), and none forwarded:
	// a later claim at or below bar travels on, so that p hears it.
	d.suspects[p] = &suspicion{since: now, seq: bar}
	if connected && !d.recentlyConfirmed(p, now) {
		return []LivenessAction{{Kind: ActProbe, Peer: p}}, nil
	}
	return nil, nil
}

// ProbeResult reports the outcome of a probe of p. seq is the highest
// heartbeat sequence number of p this node has seen. A success clears any
// suspicion and down mark. A failure is this node's own evidence: of a
// suspect, it confirms the suspicion; otherwise a first failure is a
// strike (Tick asks for a second probe RetryAfter later), and a second
// makes this node suspect p and gossip a claim.
func (d *Detector) ProbeResult(p peer.ID, ok bool, seq uint64, now time.Time) []LivenessAction {
	s, held := d.suspects[p]
	if ok {
		d.health = max(d.health-1, 0)
		delete(d.suspects, p)
		delete(d.strikes, p)
		d.confirmed[p] = now
		return []LivenessAction{{Kind: ActUp, Peer: p}}
	}
	delete(d.confirmed, p)
	if !held {
		first, struck := d.strikes[p]
		if !struck || now.Sub(first) < d.cfg.RetryAfter {
			// A first strike (or a probe already under way when
			// it came): the second probe is due at Tick.
			if !struck && len(d.strikes) < d.cfg.MaxSuspects {
				d.strikes[p] = now
			}
			return nil
		}
		delete(d.strikes, p)
	}
	if held {
		// Someone's claim is already on its way to everyone: our failed
		// probe confirms it, and is gossiped as a confirmation (the
		// others' wait shortens) while fewer than Confirmations+1
		// claimants are known here; once only.
		s.seq = max(s.seq, seq)
		if s.confirm(ownEvidence, d.cfg.Confirmations) {
			s.claimed = max(s.claimed, s.seq)
			return []LivenessAction{{Kind: ActClaim, Peer: p, Seq: s.seq}}
		}
		return nil
	}
	if len(d.suspects) >= d.cfg.MaxSuspects {
		return nil
	}
	d.suspects[p] = &suspicion{since: now, seq: seq, by: []peer.ID{ownEvidence}, claimed: seq}
	return []LivenessAction{{Kind: ActClaim, Peer: p, Seq: seq}}
}

// ownEvidence stands for this node among a suspicion's claimants: its own
// failed probes.
const ownEvidence = peer.ID("")

// Claim takes a validated suspicion of p from claimant. seq is the
// highest heartbeat sequence number of p this node has seen, refuted the
// Refutes of p's latest heartbeat here (0: none); connected whether this
// node holds a connection to p. A claim at or below refuted is already
// refuted (ErrStale: p's answer overtook it). One about a suspect held is
// a duplicate (ErrDuplicate), which the driver does not forward, unless it
// adds something: a claimant not yet counted (a confirmation, which
// shortens the wait; DetectorConfig.Confirmations), a later seq than
// the bar (which raises it, leaving the suspect at least the minimum
// wait from then to answer: a liar's raise just before the wait ends
// cannot outrun the refutation), or a higher Seq than every claim taken
// in this suspicion (the suspect must hear it, so that its refutation's
// Refutes covers it). So each node forwards at most Confirmations+1
// claimants per suspicion, and the flood a death sets off, one claim
// from each of its neighbours, does not cross the whole network once per
// neighbour. One beyond MaxSuspects is not taken
// (ErrNotYet). A claim taken starts the suspicion clock, with a bar of the
// claim's seq or ours, whichever is higher, and a probe if a connection is
// open and p did not answer one within ConfirmedFor (a liar's claims cost
// a peer at most one probe per ConfirmedFor; an answer older than the
// claim does not refute it).
func (d *Detector) Claim(p, claimant peer.ID, c *Suspicion, seq, refuted uint64, connected bool, now time.Time) ([]LivenessAction, error) {
	if refuted > 0 && refuted >= c.Seq {
		// p's refutation came first (gossip takes many paths).
		return nil, fmt.Errorf("%w: suspicion of %s at seq %d already refuted (up to %d)", ErrStale, p, c.Seq, refuted)
	}
	// A heartbeat the claimant had not seen is no refutation (it may
	// have been in flight when p died), but raises the bar.
	bar := max(c.Seq, seq)
	if s, ok := d.suspects[p]; ok {
		confirms := s.confirm(claimant, d.cfg.Confirmations)
		if bar <= s.seq && !confirms && c.Seq <= s.claimed {
			return nil, fmt.Errorf("%w: %s already suspected (seq %d, claimed up to %d)", ErrDuplicate, p, s.seq, s.claimed)
		}
		if bar > s.seq {
			s.seq, s.raised = bar, now
		}
		s.claimed = max(s.claimed, c.Seq)
		return nil, nil
	}
	if len(d.suspects) >= d.cfg.MaxSuspects {
		return nil, fmt.Errorf("%w: %d suspicions held", ErrNotYet, len(d.suspects))
	}
	d.suspects[p] = &suspicion{since: now, seq: bar, by: []peer.ID{claimant}, claimed: c.Seq}
	if connected && !d.recentlyConfirmed(p, now) {
		return []LivenessAction{{Kind: ActProbe, Peer: p}}, nil
	}
	return nil, nil
}

// Heartbeat reports a heartbeat of p accepted with seq: above the
// suspicion's number, it is the suspect's refutation.
func (d *Detector) Heartbeat(p peer.ID, seq uint64) {
	if s, ok := d.suspects[p]; ok && seq > s.seq {
		delete(d.suspects, p)
	}
}

// Tick declares down every suspect whose suspicion outlived its timeout
// (SuspicionTimeout, shortened by confirmations; at least the minimum
// wait after a claim raised its bar; all scaled by the local health
// score) without a refutation, and forgets it (the down mark lives in the
// peer table until a heartbeat above its Seq or a successful probe); and
// asks
// for the second probe of every first strike that is due (the driver
// skips a probe already queued or running).
func (d *Detector) Tick(now time.Time) []LivenessAction {
	var out []LivenessAction
	for p, s := range d.suspects {
		if d.expired(s, now) {
			out = append(out, LivenessAction{Kind: ActDown, Peer: p, Seq: s.seq})
			delete(d.suspects, p)
		}
	}
	for p, t := range d.confirmed {
		if now.Sub(t) >= d.cfg.ConfirmedFor {
			delete(d.confirmed, p)
		}
	}
	for p, t := range d.strikes {
		switch age := now.Sub(t); {
		case age >= 10*d.cfg.RetryAfter:
			delete(d.strikes, p) // its second probe never reported
		case age >= d.cfg.RetryAfter:
			out = append(out, LivenessAction{Kind: ActProbe, Peer: p, Dial: true})
		}
	}
	return out
}
