package protocol

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/internal/testkeys"
)

func kinds(acts []LivenessAction) []LivenessKind {
	var out []LivenessKind
	for _, a := range acts {
		out = append(out, a.Kind)
	}
	return out
}

func hasKind(acts []LivenessAction, k LivenessKind) bool {
	for _, a := range acts {
		if a.Kind == k {
			return true
		}
	}
	return false
}

// The detector's rules as scripts: each step feeds one observation at a
// time offset and checks the actions it returns.
func TestDetectorRules(t *testing.T) {
	_, x := testkeys.New(t)
	_, claimant := testkeys.New(t)
	t0 := time.UnixMilli(1_800_000_000_000)
	cfg := DefaultDetectorConfig()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	claim := func(seq uint64) *Suspicion { return &Suspicion{Suspect: x.String(), Seq: seq, Time: t0.UnixMilli()} }

	t.Run("a real death is declared within the timeout of the first failed probe", func(t *testing.T) {
		d := NewDetector(cfg)
		acts := d.ConnectionLost(x, at(0))
		if len(acts) != 1 || acts[0].Kind != ActProbe || !acts[0].Dial {
			t.Fatalf("connection lost: %v, want a probe that dials", acts)
		}
		if acts := d.ProbeResult(x, false, 7, at(100*time.Millisecond)); len(acts) != 0 {
			t.Fatalf("first failed probe: %+v, want nothing yet (one slow answer is no evidence)", acts)
		}
		if acts := d.Tick(at(500 * time.Millisecond)); len(acts) != 0 {
			t.Fatalf("second probe before RetryAfter: %+v", acts)
		}
		second := 100*time.Millisecond + cfg.RetryAfter
		acts = d.Tick(at(second))
		if len(acts) != 1 || acts[0].Kind != ActProbe {
			t.Fatalf("after RetryAfter: %+v, want the second probe", acts)
		}
		acts = d.ProbeResult(x, false, 7, at(second+100*time.Millisecond))
		if len(acts) != 1 || acts[0].Kind != ActClaim || acts[0].Seq != 7 {
			t.Fatalf("second failed probe: %+v, want a claim with seq 7", acts)
		}
		since := second + 100*time.Millisecond
		if acts := d.Tick(at(since + cfg.SuspicionTimeout - time.Millisecond)); len(acts) != 0 {
			t.Fatalf("down before the timeout: %v", acts)
		}
		acts = d.Tick(at(since + cfg.SuspicionTimeout))
		if len(acts) != 1 || acts[0].Kind != ActDown || acts[0].Seq != 7 {
			t.Fatalf("after the timeout: %+v, want down above seq 7", acts)
		}
		if d.Len() != 0 {
			t.Fatal("a declared suspicion is still held")
		}
	})

	t.Run("idle only without suspicions and strikes", func(t *testing.T) {
		d := NewDetector(cfg)
		if !d.Idle() {
			t.Fatal("a new detector is not idle")
		}
		d.ConnectionLost(x, at(0))
		if d.Idle() {
			t.Fatal("idle with a strike: its second probe would come late")
		}
		d.ProbeResult(x, true, 1, at(0))
		if !d.Idle() {
			t.Fatal("not idle after the peer answered")
		}
		if _, err := d.Claim(x, claimant, claim(3), 3, 0, false, at(0)); err != nil {
			t.Fatal(err)
		}
		if d.Idle() {
			t.Fatal("idle with a suspicion: its expiry would come late")
		}
		d.Tick(at(cfg.SuspicionTimeout))
		if !d.Idle() {
			t.Fatal("not idle after the suspect was declared down")
		}
	})

	t.Run("a refuted suspicion is cleared", func(t *testing.T) {
		d := NewDetector(cfg)
		if _, err := d.Claim(x, claimant, claim(10), 5, 0, false, at(0)); err != nil {
			t.Fatal(err)
		}
		d.Heartbeat(x, 10) // a straggler the claimant had already seen: no refutation
		if _, ok := d.Suspected(x); !ok {
			t.Fatal("a heartbeat the claimant had seen cleared the suspicion")
		}
		d.Heartbeat(x, 11)
		if acts := d.Tick(at(time.Minute)); len(acts) != 0 {
			t.Fatalf("refuted suspect declared: %v", acts)
		}
		// The same claim arriving after the refutation (another path)
		// is stale, not a new suspicion.
		if _, err := d.Claim(x, claimant, claim(10), 11, 10, false, at(time.Minute)); !errors.Is(err, ErrStale) {
			t.Fatalf("claim overtaken by its refutation: %v, want ErrStale", err)
		}
		// A heartbeat the claimant had not seen is no refutation: it
		// raises the bar.
		if _, err := d.Claim(x, claimant, claim(10), 12, 0, false, at(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if bar, _ := d.Suspected(x); bar != 12 {
			t.Fatalf("refutation bar %d, want 12", bar)
		}
	})

	t.Run("a false claim does not stick: our own probe succeeds", func(t *testing.T) {
		d := NewDetector(cfg)
		acts, err := d.Claim(x, claimant, claim(3), 3, 0, true, at(0))
		if err != nil || !hasKind(acts, ActProbe) {
			t.Fatalf("claim with a connection: %v %v, want a probe", kinds(acts), err)
		}
		if acts := d.ProbeResult(x, true, 3, at(50*time.Millisecond)); !hasKind(acts, ActUp) {
			t.Fatalf("probe ok: %v, want up", kinds(acts))
		}
		if acts := d.Tick(at(2 * time.Second)); len(acts) != 0 {
			t.Fatalf("probed-alive peer declared: %v", acts)
		}
		// A claim right after our probe answered costs no second probe
		// (a liar's claims cost the suspect one per ConfirmedFor), but
		// it is taken: an answer older than the claim refutes nothing.
		acts, err = d.Claim(x, claimant, claim(3), 3, 0, true, at(3*time.Second))
		if err != nil || len(acts) != 0 {
			t.Fatalf("claim after a fresh probe: %v %v, want taken without a probe", kinds(acts), err)
		}
		d.Heartbeat(x, 4) // the suspect's refutation
		if acts := d.Tick(at(time.Minute)); len(acts) != 0 {
			t.Fatalf("refuted peer declared: %v", acts)
		}
	})

	t.Run("a claim confirmed by a failed probe of ours is declared at the shortened timeout", func(t *testing.T) {
		d := NewDetector(cfg)
		if _, err := d.Claim(x, claimant, claim(3), 3, 0, true, at(0)); err != nil {
			t.Fatal(err)
		}
		if acts := d.ProbeResult(x, false, 3, at(time.Second)); !hasKind(acts, ActClaim) || hasKind(acts, ActDown) {
			t.Fatalf("failed probe of a claimed suspect: %v, want our confirmation gossiped", kinds(acts))
		}
		if acts := d.Tick(at(cfg.SuspicionTimeout)); !hasKind(acts, ActDown) {
			t.Fatalf("%v, want down at the claim's timeout", kinds(acts))
		}
	})

	t.Run("a repeated claim is a duplicate; a later seq raises the bar", func(t *testing.T) {
		d := NewDetector(cfg)
		if _, err := d.Claim(x, claimant, claim(3), 3, 0, false, at(0)); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Claim(x, claimant, claim(3), 3, 0, false, at(time.Second)); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("second claim: %v, want ErrDuplicate", err)
		}
		if _, err := d.Claim(x, claimant, claim(9), 3, 0, false, at(time.Second)); err != nil {
			t.Fatal(err)
		}
		if seq, _ := d.Suspected(x); seq != 9 {
			t.Fatalf("refutation bar %d, want 9", seq)
		}
	})

	// A death's neighbours all claim it at once: each node forwards only
	// the claims that add to what it forwarded, so the flood does not
	// cross the network once per neighbour; but a claim whose seq is
	// above every claim forwarded must travel on even when the bar (this
	// node's own knowledge) is higher already: the suspect's refutation
	// names in Refutes the highest claim it heard, and a claim above
	// that, reaching a node after the refutation, would start a
	// suspicion there that nobody answers.
	t.Run("a claim adding nothing is a duplicate; one above every claim forwarded is not", func(t *testing.T) {
		others := make([]peer.ID, cfg.Confirmations+3)
		for i := range others {
			_, others[i] = testkeys.New(t)
		}
		d := NewDetector(cfg)
		// This node knows seq 9; the first claimant knew 3.
		if _, err := d.Claim(x, others[0], claim(3), 9, 0, false, at(0)); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= cfg.Confirmations; i++ {
			if _, err := d.Claim(x, others[i], claim(3), 9, 0, false, at(0)); err != nil {
				t.Fatalf("confirmation %d: %v, want it taken (forwarded)", i, err)
			}
		}
		if _, err := d.Claim(x, others[cfg.Confirmations+1], claim(3), 9, 0, false, at(0)); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("a claimant beyond the bound at a seq forwarded: %v, want ErrDuplicate (not forwarded)", err)
		}
		if _, err := d.Claim(x, others[cfg.Confirmations+1], claim(5), 9, 0, false, at(0)); err != nil {
			t.Fatalf("a claim at seq 5, above the 3 forwarded, below the bar 9: %v, want it taken (the suspect must hear it)", err)
		}
		if seq, _ := d.Suspected(x); seq != 9 {
			t.Fatalf("bar %d, want 9: a claim below it does not move it", seq)
		}
		if _, err := d.Claim(x, others[cfg.Confirmations+2], claim(5), 9, 0, false, at(0)); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("the same seq again from another claimant beyond the bound: %v, want ErrDuplicate", err)
		}
		// Our own failed probe's claim counts as forwarded at its seq.
		d2 := NewDetector(cfg)
		d2.ConnectionLost(x, at(0))
		d2.ProbeResult(x, false, 7, at(0))
		d2.ProbeResult(x, false, 7, at(cfg.RetryAfter))
		if _, err := d2.Claim(x, others[0], claim(7), 7, 0, false, at(cfg.RetryAfter)); err != nil {
			t.Fatalf("a first other claimant: %v, want it taken (a confirmation)", err)
		}
		for i := 1; i <= cfg.Confirmations; i++ {
			_, err := d2.Claim(x, others[i], claim(6), 7, 0, false, at(cfg.RetryAfter))
			if (i < cfg.Confirmations) != (err == nil) {
				t.Fatalf("claimant %d at seq 6 after our claim at 7: %v", i, err)
			}
		}
	})

	t.Run("distinct confirmations shorten the wait to the minimum, never below", func(t *testing.T) {
		others := make([]peer.ID, cfg.Confirmations+3)
		for i := range others {
			_, others[i] = testkeys.New(t)
		}
		for c := 0; c <= len(others)-1; c++ {
			d := NewDetector(cfg)
			for i := 0; i <= c; i++ {
				_, err := d.Claim(x, others[i], claim(3), 3, 0, false, at(time.Duration(i)*time.Millisecond))
				if err != nil && (i <= cfg.Confirmations || !errors.Is(err, ErrDuplicate)) {
					t.Fatalf("claim %d of %d: %v", i, c, err)
				}
			}
			want := cfg.SuspicionTimeout
			switch {
			case c >= cfg.Confirmations:
				want = cfg.MinSuspicionTimeout
			case c > 0:
				frac := math.Log(float64(c)+1) / math.Log(float64(cfg.Confirmations)+1)
				want = cfg.SuspicionTimeout - time.Duration(frac*float64(cfg.SuspicionTimeout-cfg.MinSuspicionTimeout))
			}
			if want < cfg.MinSuspicionTimeout || want > cfg.SuspicionTimeout {
				t.Fatalf("%d confirmations: wait %s outside [%s, %s]", c, want, cfg.MinSuspicionTimeout, cfg.SuspicionTimeout)
			}
			if acts := d.Tick(at(want - time.Millisecond)); hasKind(acts, ActDown) {
				t.Fatalf("%d confirmations: down before %s", c, want)
			}
			if acts := d.Tick(at(want)); !hasKind(acts, ActDown) {
				t.Fatalf("%d confirmations: not down at %s", c, want)
			}
		}
	})

	t.Run("one claimant repeating itself confirms nothing", func(t *testing.T) {
		d := NewDetector(cfg)
		for i := range 5 {
			_, err := d.Claim(x, claimant, claim(3), 3, 0, false, at(time.Duration(i)*time.Millisecond))
			if i > 0 && !errors.Is(err, ErrDuplicate) {
				t.Fatalf("repeat %d: %v, want ErrDuplicate", i, err)
			}
		}
		if acts := d.Tick(at(cfg.SuspicionTimeout - time.Millisecond)); hasKind(acts, ActDown) {
			t.Fatal("a lone claimant's repeats shortened the wait")
		}
	})

	t.Run("a refutation within the minimum wait beats any number of claimants", func(t *testing.T) {
		d := NewDetector(cfg)
		for range 50 {
			_, p := testkeys.New(t)
			if _, err := d.Claim(x, p, claim(3), 3, 0, false, at(0)); err != nil && !errors.Is(err, ErrDuplicate) {
				t.Fatal(err)
			}
		}
		d.Heartbeat(x, 4)
		if acts := d.Tick(at(time.Minute)); hasKind(acts, ActDown) {
			t.Fatal("refuted suspect declared down")
		}
	})

	// A liar confirms a suspicion with 3 identities, then, just before
	// the shortened wait ends, raises its bar (a claim's seq may run
	// ahead of the suspect's by the skew): the refutation the suspect
	// sent for the old bar no longer counts, and it had only the time
	// left of the old wait to answer the new one.
	t.Run("a raised bar leaves the suspect the minimum wait to refute it", func(t *testing.T) {
		d := NewDetector(cfg)
		liars := make([]peer.ID, cfg.Confirmations+1)
		for i := range liars {
			_, liars[i] = testkeys.New(t)
			if _, err := d.Claim(x, liars[i], claim(3), 3, 0, false, at(0)); err != nil {
				t.Fatal(err)
			}
		}
		raise := cfg.MinSuspicionTimeout - 10*time.Millisecond
		if _, err := d.Claim(x, liars[0], claim(1000), 3, 0, false, at(raise)); err != nil {
			t.Fatal(err)
		}
		d.Heartbeat(x, 4) // the refutation of the old bar, overtaken
		if acts := d.Tick(at(cfg.MinSuspicionTimeout)); hasKind(acts, ActDown) {
			t.Fatalf("down %s after its bar was raised, want %s to refute it", cfg.MinSuspicionTimeout-raise, cfg.MinSuspicionTimeout)
		}
		if acts := d.Tick(at(raise + cfg.MinSuspicionTimeout)); !hasKind(acts, ActDown) {
			t.Fatalf("not down %s after the raised bar", cfg.MinSuspicionTimeout)
		}
	})

	t.Run("this node's own failed probe confirms another's claim", func(t *testing.T) {
		d := NewDetector(cfg)
		if _, err := d.Claim(x, claimant, claim(3), 3, 0, true, at(0)); err != nil {
			t.Fatal(err)
		}
		d.ProbeResult(x, false, 3, at(100*time.Millisecond))
		if acts := d.Tick(at(cfg.SuspicionTimeout - time.Millisecond)); !hasKind(acts, ActDown) {
			t.Fatal("a claim confirmed by our own probe waited the full timeout")
		}
	})

	t.Run("a lost connection and a dial failing a RetryAfter later are two strikes", func(t *testing.T) {
		d := NewDetector(cfg)
		d.ConnectionLost(x, at(0))
		// The dial timed out (QUIC to a dead process): a claim at once,
		// not a second dial.
		acts := d.ProbeResult(x, false, 4, at(cfg.RetryAfter+time.Millisecond))
		if len(acts) != 1 || acts[0].Kind != ActClaim {
			t.Fatalf("dial failed after the lost connection: %v, want a claim", kinds(acts))
		}
	})

	t.Run("our own failed probe of a held suspicion is gossiped once, as a confirmation", func(t *testing.T) {
		d := NewDetector(cfg)
		if _, err := d.Claim(x, claimant, claim(3), 3, 0, true, at(0)); err != nil {
			t.Fatal(err)
		}
		acts := d.ProbeResult(x, false, 3, at(100*time.Millisecond))
		if len(acts) != 1 || acts[0].Kind != ActClaim {
			t.Fatalf("own evidence on a held suspicion: %v, want one claim", kinds(acts))
		}
		if acts := d.ProbeResult(x, false, 3, at(2*time.Second)); len(acts) != 0 {
			t.Fatalf("own evidence again: %v, want nothing", kinds(acts))
		}
		// Once Confirmations+1 claimants are known, ours adds nothing.
		d = NewDetector(cfg)
		for range cfg.Confirmations + 1 {
			_, p := testkeys.New(t)
			if _, err := d.Claim(x, p, claim(3), 3, 0, true, at(0)); err != nil {
				t.Fatal(err)
			}
		}
		if acts := d.ProbeResult(x, false, 3, at(100*time.Millisecond)); len(acts) != 0 {
			t.Fatalf("own evidence beyond the confirmations counted: %v, want nothing", kinds(acts))
		}
	})

	t.Run("a timed-out ping confirms no one's claim; a failed dial does; two timeouts still claim a hung peer", func(t *testing.T) {
		d := NewDetector(cfg)
		if _, err := d.Claim(x, claimant, claim(3), 3, 0, true, at(0)); err != nil {
			t.Fatal(err)
		}
		if acts := d.ProbeTimedOut(x, 3, false, at(2*time.Second)); len(acts) != 0 {
			t.Fatalf("a timed-out probe of a claimed suspect: %v, want no confirmation (a starved neighbour's timeout is no evidence of death)", kinds(acts))
		}
		if acts := d.Tick(at(cfg.SuspicionTimeout - time.Millisecond)); hasKind(acts, ActDown) {
			t.Fatal("a timeout shortened the wait as a confirmation would")
		}
		if acts := d.ProbeResult(x, false, 3, at(cfg.SuspicionTimeout-time.Millisecond)); !hasKind(acts, ActClaim) {
			t.Fatalf("a failed dial of the suspect: %v, want our confirmation gossiped", kinds(acts))
		}
		// Nobody else suspects y: two timeouts a RetryAfter apart are
		// this node's own evidence (a hung process keeps its connections).
		_, y := testkeys.New(t)
		if acts := d.ProbeTimedOut(y, 5, false, at(0)); len(acts) != 0 {
			t.Fatalf("first timeout: %v, want a strike only", kinds(acts))
		}
		if acts := d.ProbeTimedOut(y, 5, false, at(cfg.RetryAfter)); !hasKind(acts, ActClaim) {
			t.Fatalf("second timeout: %v, want a claim", kinds(acts))
		}
	})

	t.Run("a timeout another node's probe answered is no evidence (SWIM's indirect probe)", func(t *testing.T) {
		d := NewDetector(cfg)
		_, y := testkeys.New(t)
		for i := range 5 {
			if acts := d.ProbeTimedOut(y, 5, true, at(time.Duration(i)*cfg.RetryAfter)); len(acts) != 0 {
				t.Fatalf("vouched timeout %d: %v, want nothing", i+1, kinds(acts))
			}
		}
		if d.Health() == 0 {
			t.Fatal("vouched timeouts left the health score at 0: this node or its path is the slow part")
		}
		if !d.Idle() {
			t.Fatal("vouched timeouts left a strike")
		}
		// A claim held: a vouched timeout confirms nothing either.
		if _, err := d.Claim(y, claimant, claim(5), 5, 0, true, at(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if acts := d.ProbeTimedOut(y, 5, true, at(time.Minute)); len(acts) != 0 {
			t.Fatalf("vouched timeout of a suspect: %v", kinds(acts))
		}
	})

	t.Run("a slow node (its pings time out) waits longer before convicting", func(t *testing.T) {
		d := NewDetector(cfg)
		for range cfg.MaxHealth + 3 {
			d.ProbeTimedOut(claimant, 1, false, at(0))
		}
		if d.Health() != cfg.MaxHealth {
			t.Fatalf("health %d after many timeouts, want the cap %d", d.Health(), cfg.MaxHealth)
		}
		d.ProbeResult(claimant, true, 1, at(0)) // one answer lowers it by one
		h := d.Health()
		if h != cfg.MaxHealth-1 {
			t.Fatalf("health %d, want %d", h, cfg.MaxHealth-1)
		}
		if _, err := d.Claim(x, claimant, claim(3), 3, 0, false, at(0)); err != nil {
			t.Fatal(err)
		}
		wait := time.Duration(1+h) * cfg.SuspicionTimeout
		if acts := d.Tick(at(wait - time.Millisecond)); hasKind(acts, ActDown) {
			t.Fatalf("down before %s (health %d)", wait, h)
		}
		if acts := d.Tick(at(wait)); !hasKind(acts, ActDown) {
			t.Fatalf("not down at %s (health %d)", wait, h)
		}
		if got := d.Scale(2 * time.Second); got != time.Duration(1+h)*2*time.Second {
			t.Fatalf("probe timeout scaled to %s", got)
		}
		for range 2 * cfg.MaxHealth {
			d.ProbeResult(claimant, true, 1, at(time.Minute))
		}
		if d.Health() != 0 || d.Scale(time.Second) != time.Second {
			t.Fatalf("health %d after many answers, want 0", d.Health())
		}
		c := cfg
		c.MaxHealth = 0
		d = NewDetector(c)
		d.ProbeTimedOut(claimant, 1, false, at(0))
		if d.Health() != 0 {
			t.Fatal("MaxHealth 0 still counts")
		}
	})

	t.Run("suspicions are bounded", func(t *testing.T) {
		c := cfg
		c.MaxSuspects = 2
		d := NewDetector(c)
		for i := range 2 {
			_, p := testkeys.New(t)
			if _, err := d.Claim(p, claimant, claim(1), 0, 0, false, at(time.Duration(i))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := d.Claim(x, claimant, claim(1), 0, 0, false, at(0)); !errors.Is(err, ErrNotYet) {
			t.Fatalf("claim beyond the bound: %v, want ErrNotYet", err)
		}
		d.ProbeResult(x, false, 0, at(0))
		if acts := d.ProbeResult(x, false, 0, at(cfg.RetryAfter)); len(acts) != 0 || d.Len() != 2 {
			t.Fatalf("own suspicion beyond the bound: %v, %d held", kinds(acts), d.Len())
		}
	})

	t.Run("a slow answer between two failures is no death", func(t *testing.T) {
		d := NewDetector(cfg)
		d.ProbeResult(x, false, 1, at(0))
		d.ProbeResult(x, true, 1, at(cfg.RetryAfter))
		if acts := d.ProbeResult(x, false, 1, at(2*cfg.RetryAfter)); len(acts) != 0 {
			t.Fatalf("%v: a failure after a success is a first strike again", kinds(acts))
		}
		if acts := d.Tick(at(2 * cfg.RetryAfter)); hasKind(acts, ActDown) || hasKind(acts, ActClaim) {
			t.Fatalf("%v", kinds(acts))
		}
	})

	t.Run("a lost connection is new evidence, whatever an earlier probe said", func(t *testing.T) {
		d := NewDetector(cfg)
		d.ProbeResult(x, true, 1, at(0))
		if acts := d.ConnectionLost(x, at(time.Second)); !hasKind(acts, ActProbe) {
			t.Fatalf("%v, want a probe", kinds(acts))
		}
		d.ProbeResult(x, false, 1, at(2*time.Second))
		d.ProbeResult(x, false, 1, at(2*time.Second+cfg.RetryAfter))
		if acts := d.ConnectionLost(x, at(4*time.Second)); len(acts) != 0 {
			t.Fatalf("%v, want nothing for a peer already suspected", kinds(acts))
		}
	})

	contested := func(t *testing.T, d *Detector, bar uint64, connected bool, now time.Time) []LivenessAction {
		t.Helper()
		acts, err := d.Contested(x, bar, connected, now)
		if err != nil {
			t.Fatal(err)
		}
		return acts
	}

	t.Run("a contested return is suspected at the dropped claim's seq", func(t *testing.T) {
		d := NewDetector(cfg)
		if acts := contested(t, d, 30, false, at(0)); len(acts) != 0 {
			t.Fatalf("contested, no connection: %+v, want nothing sent and nothing dialled", acts)
		}
		if seq, ok := d.Suspected(x); !ok || seq != 30 {
			t.Fatalf("suspected %v at %d, want at the claim's 30", ok, seq)
		}
		if d.Idle() {
			t.Fatal("idle with a suspicion: its expiry would come late")
		}
		d.Heartbeat(x, 30) // not above the claim
		if acts := d.Tick(at(cfg.SuspicionTimeout - time.Millisecond)); len(acts) != 0 {
			t.Fatalf("%+v before the full wait (no claimant confirmed it)", acts)
		}
		acts := d.Tick(at(cfg.SuspicionTimeout))
		if len(acts) != 1 || acts[0].Kind != ActDown || acts[0].Seq != 30 {
			t.Fatalf("%+v, want down above seq 30", acts)
		}
	})

	t.Run("a contested return is refuted by a heartbeat above the claim, or by a probe", func(t *testing.T) {
		d := NewDetector(cfg)
		contested(t, d, 30, false, at(0))
		d.Heartbeat(x, 31)
		if _, ok := d.Suspected(x); ok {
			t.Fatal("a heartbeat above the claim did not refute it")
		}
		acts := contested(t, d, 40, true, at(time.Second))
		if len(acts) != 1 || acts[0].Kind != ActProbe || acts[0].Dial {
			t.Fatalf("contested with a connection: %+v, want a probe over it, no dial", acts)
		}
		if acts := d.ProbeResult(x, true, 32, at(time.Second)); !hasKind(acts, ActUp) || !d.Idle() {
			t.Fatalf("%v, want up and nothing held", kinds(acts))
		}
		if acts := contested(t, d, 50, true, at(2*time.Second)); len(acts) != 0 {
			t.Fatalf("%+v: probed again within ConfirmedFor", acts)
		}
	})

	t.Run("a contest of a suspect held raises its bar, never lowers it, and keeps its clock", func(t *testing.T) {
		d := NewDetector(cfg)
		if _, err := d.Claim(x, claimant, claim(30), 30, 0, false, at(0)); err != nil {
			t.Fatal(err)
		}
		contested(t, d, 20, false, at(time.Second))
		if seq, _ := d.Suspected(x); seq != 30 {
			t.Fatalf("bar %d after a lower contest, want 30", seq)
		}
		contested(t, d, 40, false, at(4*time.Second))
		if seq, _ := d.Suspected(x); seq != 40 {
			t.Fatalf("bar %d after a higher contest, want 40", seq)
		}
		// The claim's clock (5 s from 0) ran out, but the raised bar
		// leaves the suspect the least wait from the raise.
		if acts := d.Tick(at(cfg.SuspicionTimeout)); len(acts) != 0 {
			t.Fatalf("%+v: down %s after the bar was raised", acts, cfg.SuspicionTimeout-4*time.Second)
		}
		if acts := d.Tick(at(4*time.Second + cfg.MinSuspicionTimeout)); !hasKind(acts, ActDown) {
			t.Fatalf("%v, want down after the least wait from the raise", kinds(acts))
		}
	})

	t.Run("a contest beyond MaxSuspects is not held", func(t *testing.T) {
		small := cfg
		small.MaxSuspects = 1
		d := NewDetector(small)
		if _, err := d.Claim(claimant, x, &Suspicion{Suspect: claimant.String(), Seq: 1, Time: t0.UnixMilli()}, 1, 0, false, at(0)); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Contested(x, 30, false, at(0)); !errors.Is(err, ErrNotYet) {
			t.Fatalf("%v, want ErrNotYet", err)
		}
		if _, ok := d.Suspected(x); ok {
			t.Fatal("held beyond MaxSuspects")
		}
	})

	t.Run("a later claim at or below a contested bar is forwarded", func(t *testing.T) {
		d := NewDetector(cfg)
		contested(t, d, 30, false, at(0))
		if _, err := d.Claim(x, claimant, claim(10), 20, 0, false, at(time.Second)); err != nil {
			t.Fatal(err)
		}
		// The same claimant, counted already, with a higher seq than it
		// named: the dropped claim at 30 was forwarded by nobody here,
		// so this one must travel on for the suspect to hear it.
		if _, err := d.Claim(x, claimant, claim(25), 20, 0, false, at(time.Second)); err != nil {
			t.Fatalf("%v: the contested suspicion swallowed a claim the suspect must hear", err)
		}
		if _, err := d.Claim(x, claimant, claim(25), 20, 0, false, at(time.Second)); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("the same claim again: %v, want ErrDuplicate", err)
		}
	})
}

// The suspect answers a claim about itself whatever its age (others took
// it while it was fresh), never one from the future or beyond its seq bound.
func TestCheckSuspicionOfSelf(t *testing.T) {
	_, self := testkeys.New(t)
	_, claimant := testkeys.New(t)
	now := time.UnixMilli(1_800_000_000_000)
	skew := 30 * time.Second
	at := func(d time.Duration) *Suspicion {
		tm := now.Add(d)
		return &Suspicion{Suspect: self.String(), Seq: uint64(tm.UnixMicro()), Time: tm.UnixMilli()}
	}
	if err := CheckSuspicionOfSelf(at(-time.Hour), self, claimant, now, skew); err != nil {
		t.Fatalf("an hour-old claim: %v, want it answered", err)
	}
	if err := CheckSuspicion(at(-skew-time.Second), self, claimant, now, skew); !errors.Is(err, ErrClockSkew) {
		t.Fatalf("others: a claim beyond the window: %v", err)
	}
	if err := CheckSuspicionOfSelf(at(skew+time.Second), self, claimant, now, skew); !errors.Is(err, ErrClockSkew) {
		t.Fatalf("a claim from the future: %v, want ErrClockSkew", err)
	}
	old := at(-time.Hour)
	old.Seq = uint64(now.UnixMicro())
	if err := CheckSuspicionOfSelf(old, self, claimant, now, skew); !errors.Is(err, ErrMalformed) {
		t.Fatalf("an old claim naming today's seq: %v, want ErrMalformed", err)
	}
	if err := CheckSuspicionOfSelf(at(0), self, self, now, skew); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a claim by the suspect itself: %v", err)
	}
}

func TestCheckSuspicion(t *testing.T) {
	_, x := testkeys.New(t)
	_, c := testkeys.New(t)
	now := time.UnixMilli(1_800_000_000_000)
	skew := 30 * time.Second
	for _, tc := range []struct {
		name              string
		s                 Suspicion
		suspect, claimant peer.ID
		want              error
	}{
		{"ok", Suspicion{Seq: uint64(now.UnixMicro()), Time: now.UnixMilli()}, x, c, nil},
		{"self", Suspicion{Time: now.UnixMilli()}, x, x, ErrMalformed},
		{"old", Suspicion{Time: now.Add(-time.Minute).UnixMilli()}, x, c, ErrClockSkew},
		{"seq beyond the clock", Suspicion{Seq: uint64(now.Add(time.Hour).UnixMicro()), Time: now.UnixMilli()}, x, c, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Suspect = tc.suspect.String()
			err := CheckSuspicion(&tc.s, tc.suspect, tc.claimant, now, skew)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
