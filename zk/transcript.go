package zk

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/consensys/gnark"
	"github.com/consensys/gnark-crypto/ecc"
	"github.com/consensys/gnark-crypto/ecc/bn254"
	groth16bn254 "github.com/consensys/gnark/backend/groth16/bn254"
	"github.com/consensys/gnark/backend/groth16/bn254/mpcsetup"
	cs "github.com/consensys/gnark/constraint/bn254"
)

// A distributed ceremony is RunCeremony spread over participants on
// separate machines. Its state is a directory, the transcript, that passes
// from one participant to the next (or sits on a drive they share):
//
//	proofmesh setup init --dir C          coordinator: circuits, phase-1 domain
//	proofmesh setup contribute --dir C    each participant, on its machine
//	proofmesh setup close-phase1 --dir C --beacon HEX
//	proofmesh setup contribute --dir C    each participant again (phase 2)
//	proofmesh setup finalize --dir C --beacon HEX --out KEYS
//	proofmesh setup verify --dir C        anyone, at any time
//
// TranscriptFile records the circuits, the phase, the beacons and every
// contribution's file, hash and contributor. A participant checks the
// contribution it builds on before adding its own and publishes the hash it
// is shown; closing phase 1 and finalizing re-verify every contribution
// from the deterministic start, so a transcript edited anywhere fails, and
// so does `verify`, which an auditor runs on a copy of the directory. The
// keys are sound if one participant destroyed its randomness (gnark drops
// it when Contribute returns) and the beacons were fixed only after the
// last contribution of their phase.

// TranscriptFile is the transcript's index in a ceremony directory.
const TranscriptFile = "ceremony.json"

// TranscriptFormat is the Format of a transcript this package writes.
const TranscriptFormat = "proofmesh-ceremony/v1"

// Transcript phases.
const (
	PhaseOne  = "phase1"
	PhaseTwo  = "phase2"
	PhaseDone = "done"
)

// Limits on what a transcript directory may hold: a phase-1 state of the
// built-in circuits is about 6 MiB, a phase-2 state a few MiB.
const (
	maxTranscriptBytes = 1 << 20
	maxStateBytes      = 512 << 20
	maxContributions   = 1000
	minBeaconBytes     = 16
)

// ErrTranscript is wrapped by every error about a transcript's contents:
// a missing or edited file, a contribution that does not verify, a step
// taken in the wrong phase.
var ErrTranscript = errors.New("ceremony transcript")

// Transcript is the index of a distributed ceremony.
type Transcript struct {
	Format string `json:"format"`
	// Circuits are the circuit ids the ceremony makes keys for.
	Circuits []string `json:"circuits"`
	// Phase1Domain is the size of the powers of tau (the largest circuit's
	// domain).
	Phase1Domain uint64 `json:"phase1_domain"`
	// Phase is PhaseOne, PhaseTwo or PhaseDone.
	Phase string `json:"phase"`
	// Phase1Beacon and Phase2Beacon (hex) seal the phases; set when a phase
	// is closed.
	Phase1Beacon string `json:"phase1_beacon,omitempty"`
	Phase2Beacon string `json:"phase2_beacon,omitempty"`
	// Contributions lists every contribution in order; a phase-2
	// participant adds one per circuit.
	Contributions []Contribution `json:"contributions"`
}

// Contribution is one participant's update of one state.
type Contribution struct {
	Phase int `json:"phase"` // 1 or 2
	// Circuit is the circuit of a phase-2 contribution.
	Circuit string `json:"circuit,omitempty"`
	// Index counts the contributions to this state from 1.
	Index int `json:"index"`
	// Participant is the name the participant gave; informational.
	Participant string    `json:"participant"`
	File        string    `json:"file"` // relative to the directory
	SHA256      string    `json:"sha256"`
	Date        time.Time `json:"date"`
}

// chain returns the contributions to one state (phase 1, or phase 2 of a
// circuit), in order.
func (t *Transcript) chain(phase int, circuit string) []Contribution {
	var out []Contribution
	for _, c := range t.Contributions {
		if c.Phase == phase && c.Circuit == circuit {
			out = append(out, c)
		}
	}
	return out
}

// ceremonyDir is one transcript directory and the circuits it may name.
type ceremonyDir struct {
	dir    string
	reg    registry
	now    func() time.Time
	domain uint64 // the loaded transcript's phase-1 domain
}

func openCeremonyDir(dir string) *ceremonyDir {
	return &ceremonyDir{dir: dir, reg: builtinCircuits, now: time.Now}
}

// InitCeremony starts a distributed ceremony for circuits (nil: every
// built-in circuit) in dir, which must not hold a transcript yet.
func InitCeremony(ctx context.Context, dir string, circuits []string) (*Transcript, error) {
	return openCeremonyDir(dir).init(ctx, circuits)
}

// ContributeCeremony adds the contribution of participant (a name recorded
// in the transcript) to the open phase: one to phase 1, or one to each
// circuit's phase 2. It first checks the contribution it builds on.
func ContributeCeremony(ctx context.Context, dir, participant string) ([]Contribution, error) {
	return openCeremonyDir(dir).contribute(ctx, participant)
}

// ClosePhase1 verifies every phase-1 contribution, seals phase 1 with the
// beacon and writes each circuit's initial phase-2 state.
func ClosePhase1(ctx context.Context, dir string, beacon []byte) error {
	return openCeremonyDir(dir).closePhase1(ctx, beacon)
}

// FinalizeCeremony verifies the whole transcript, seals phase 2 with the
// beacon, and writes the keys and their manifest to outDir.
func FinalizeCeremony(ctx context.Context, dir string, beacon []byte, outDir string) (*Manifest, error) {
	return openCeremonyDir(dir).finalize(ctx, beacon, outDir)
}

// VerifyCeremony re-verifies a transcript from the deterministic start:
// file hashes, every contribution, and, once finalized, the keys it gives
// (their manifest is returned, nil before).
func VerifyCeremony(ctx context.Context, dir string) (*Transcript, *Manifest, error) {
	return openCeremonyDir(dir).verify(ctx)
}

func (c *ceremonyDir) init(ctx context.Context, circuits []string) (t *Transcript, err error) {
	defer recoverCeremony(&err)
	if _, err := os.Stat(filepath.Join(c.dir, TranscriptFile)); err == nil {
		return nil, fmt.Errorf("%w: %s already holds a ceremony", ErrTranscript, c.dir)
	}
	if len(circuits) == 0 {
		circuits = c.reg.ids()
	}
	t = &Transcript{Format: TranscriptFormat, Phase: PhaseOne}
	for _, id := range circuits {
		if slices.Contains(t.Circuits, id) {
			continue
		}
		d, err := c.reg.lookup(id)
		if err != nil {
			return nil, fmt.Errorf("ceremony: %w", err)
		}
		ccs, err := d.compile()
		if err != nil {
			return nil, fmt.Errorf("ceremony: %w", err)
		}
		t.Circuits = append(t.Circuits, id)
		t.Phase1Domain = max(t.Phase1Domain, circuitDomain(ccs))
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("ceremony: %w", err)
		}
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("ceremony: %w", err)
	}
	unlock, err := c.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := c.save(t); err != nil {
		return nil, err
	}
	return t, nil
}

func (c *ceremonyDir) contribute(ctx context.Context, participant string) (made []Contribution, err error) {
	defer recoverCeremony(&err)
	if err := validParticipant(participant); err != nil {
		return nil, err
	}
	t, unlock, err := c.begin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	switch t.Phase {
	case PhaseOne:
		prev, err := c.latestPhase1(t)
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("ceremony: %w", err)
		}
		prev.Contribute()
		con, err := c.record(t, 1, "", participant, prev)
		if err != nil {
			return nil, err
		}
		made = append(made, con)
	case PhaseTwo:
		for _, id := range t.Circuits {
			prev, err := c.latestPhase2(t, id)
			if err != nil {
				return nil, err
			}
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("ceremony: %w", err)
			}
			prev.Contribute()
			con, err := c.record(t, 2, id, participant, prev)
			if err != nil {
				return nil, err
			}
			made = append(made, con)
		}
	default:
		return nil, fmt.Errorf("%w: the ceremony is %s: no more contributions", ErrTranscript, t.Phase)
	}
	if err := c.save(t); err != nil {
		return nil, err
	}
	return made, nil
}

// latestPhase1 returns the state to contribute to: the start, or the last
// contribution after checking it against the one before.
func (c *ceremonyDir) latestPhase1(t *Transcript) (*mpcsetup.Phase1, error) {
	chain := t.chain(1, "")
	prev := mpcsetup.NewPhase1(t.Phase1Domain)
	if len(chain) == 0 {
		return prev, nil
	}
	if len(chain) > 1 {
		p, err := c.readPhase1(chain[len(chain)-2])
		if err != nil {
			return nil, err
		}
		prev = p
	}
	last, err := c.readPhase1(chain[len(chain)-1])
	if err != nil {
		return nil, err
	}
	if err := prev.Verify(last); err != nil {
		return nil, fmt.Errorf("%w: the contribution to build on, %s, does not verify: %v", ErrTranscript, chain[len(chain)-1].File, err)
	}
	return last, nil
}

// latestPhase2 is latestPhase1 for one circuit's phase 2; the start is the
// state written when phase 1 was closed (finalize recomputes it).
func (c *ceremonyDir) latestPhase2(t *Transcript, circuit string) (*mpcsetup.Phase2, error) {
	prev, err := c.readPhase2(Contribution{File: phase2StartFile(circuit)}, false)
	if err != nil {
		return nil, err
	}
	chain := t.chain(2, circuit)
	if len(chain) == 0 {
		return prev, nil
	}
	if len(chain) > 1 {
		if prev, err = c.readPhase2(chain[len(chain)-2], true); err != nil {
			return nil, err
		}
	}
	last, err := c.readPhase2(chain[len(chain)-1], true)
	if err != nil {
		return nil, err
	}
	if err := prev.Verify(last); err != nil {
		return nil, fmt.Errorf("%w: the contribution to build on, %s, does not verify: %v", ErrTranscript, chain[len(chain)-1].File, err)
	}
	return last, nil
}

// record writes a new state as the next contribution of its chain.
func (c *ceremonyDir) record(t *Transcript, phase int, circuit, participant string, state io.WriterTo) (Contribution, error) {
	if len(t.Contributions) >= maxContributions {
		return Contribution{}, fmt.Errorf("%w: %d contributions is the limit", ErrTranscript, maxContributions)
	}
	raw, err := marshal(state)
	if err != nil {
		return Contribution{}, fmt.Errorf("ceremony: %w", err)
	}
	con := Contribution{
		Phase:       phase,
		Circuit:     circuit,
		Index:       len(t.chain(phase, circuit)) + 1,
		Participant: participant,
		SHA256:      sha256Hex(raw),
		Date:        c.now().UTC().Truncate(time.Second),
	}
	if phase == 1 {
		con.File = fmt.Sprintf("phase1/%04d.bin", con.Index)
	} else {
		con.File = fmt.Sprintf("phase2/%s/%04d.bin", circuit, con.Index)
	}
	path := filepath.Join(c.dir, filepath.FromSlash(con.File))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return Contribution{}, fmt.Errorf("ceremony: %w", err)
	}
	if err := writeFileAtomic(path, raw); err != nil {
		return Contribution{}, err
	}
	t.Contributions = append(t.Contributions, con)
	return con, nil
}

func (c *ceremonyDir) closePhase1(ctx context.Context, beacon []byte) (err error) {
	defer recoverCeremony(&err)
	if err := validBeacon(beacon); err != nil {
		return err
	}
	t, unlock, err := c.begin()
	if err != nil {
		return err
	}
	defer unlock()
	if t.Phase != PhaseOne {
		return fmt.Errorf("%w: phase 1 is already closed (the ceremony is %s)", ErrTranscript, t.Phase)
	}
	t.Phase1Beacon = hex.EncodeToString(beacon)
	commons, err := c.verifyPhase1(ctx, t)
	if err != nil {
		return err
	}
	for _, id := range t.Circuits {
		d, ccs, err := c.circuit(id)
		if err != nil {
			return err
		}
		p := new(mpcsetup.Phase2)
		p.Initialize(ccs, truncateCommons(commons, circuitDomain(ccs)))
		raw, err := marshal(p)
		if err != nil {
			return fmt.Errorf("ceremony: phase 2 %s: %w", d.id, err)
		}
		path := filepath.Join(c.dir, filepath.FromSlash(phase2StartFile(id)))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("ceremony: %w", err)
		}
		if err := writeFileAtomic(path, raw); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("ceremony: %w", err)
		}
	}
	t.Phase = PhaseTwo
	return c.save(t)
}

func (c *ceremonyDir) finalize(ctx context.Context, beacon []byte, outDir string) (m *Manifest, err error) {
	defer recoverCeremony(&err)
	if err := validBeacon(beacon); err != nil {
		return nil, err
	}
	if outDir == "" {
		return nil, errors.New("ceremony: no output directory for the keys")
	}
	t, unlock, err := c.begin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if t.Phase != PhaseTwo {
		return nil, fmt.Errorf("%w: finalize needs phase 2 (the ceremony is %s)", ErrTranscript, t.Phase)
	}
	t.Phase2Beacon = hex.EncodeToString(beacon)
	outs, m, err := c.keys(ctx, t)
	if err != nil {
		return nil, err
	}
	if err := writeKeys(outDir, outs, m); err != nil {
		return nil, err
	}
	t.Phase = PhaseDone
	if err := c.save(t); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *ceremonyDir) verify(ctx context.Context) (t *Transcript, m *Manifest, err error) {
	defer recoverCeremony(&err)
	if t, err = c.load(); err != nil {
		return nil, nil, err
	}
	switch t.Phase {
	case PhaseOne:
		if len(t.chain(1, "")) == 0 {
			return t, nil, nil // just started
		}
		_, err = c.verifyPhase1(ctx, t)
		return t, nil, err
	case PhaseTwo:
		commons, err := c.verifyPhase1(ctx, t)
		if err != nil {
			return t, nil, err
		}
		for _, id := range t.Circuits {
			if len(t.chain(2, id)) == 0 {
				continue // phase 2 just opened
			}
			if _, _, err := c.verifyPhase2(ctx, t, id, commons, nil); err != nil {
				return t, nil, err
			}
		}
		return t, nil, nil
	default:
		_, m, err = c.keys(ctx, t)
		return t, m, err
	}
}

// keys verifies the whole transcript and seals both phases, giving every
// circuit's keys, each checked by a sample proof, and their manifest.
func (c *ceremonyDir) keys(ctx context.Context, t *Transcript) ([]circuitOutput, *Manifest, error) {
	beacon2, err := hex.DecodeString(t.Phase2Beacon)
	if err != nil || len(beacon2) < minBeaconBytes {
		return nil, nil, fmt.Errorf("%w: phase 2 beacon %q is not hex of %d bytes or more", ErrTranscript, t.Phase2Beacon, minBeaconBytes)
	}
	commons, err := c.verifyPhase1(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	p1 := t.chain(1, "")
	m := &Manifest{
		Format:   ManifestFormat,
		Circuits: make(map[string]CircuitManifest, len(t.Circuits)),
		Ceremony: CeremonyInfo{
			Curve:               "bn254",
			Backend:             "groth16",
			Contributions:       len(p1),
			Phase1Domain:        t.Phase1Domain,
			Phase1Contributions: hashesOf(p1),
			Beacon:              t.Phase1Beacon,
			Phase2Beacon:        t.Phase2Beacon,
			GnarkVersion:        moduleVersion("github.com/consensys/gnark", "v"+gnark.Version.String()),
			GnarkCryptoVersion:  moduleVersion("github.com/consensys/gnark-crypto", "unknown"),
			Date:                lastDate(t),
		},
	}
	var outs []circuitOutput
	for _, id := range t.Circuits {
		pk, vk, err := c.verifyPhase2(ctx, t, id, commons, beacon2)
		if err != nil {
			return nil, nil, err
		}
		d, ccs, err := c.circuit(id)
		if err != nil {
			return nil, nil, err
		}
		pkBytes, err := marshal(pk)
		if err != nil {
			return nil, nil, fmt.Errorf("ceremony: %s proving key: %w", id, err)
		}
		vkBytes, err := marshal(vk)
		if err != nil {
			return nil, nil, fmt.Errorf("ceremony: %s verifying key: %w", id, err)
		}
		out := circuitOutput{def: d, pk: pkBytes, vk: vkBytes, meta: CircuitManifest{
			VerifyingKeySHA256:  sha256Hex(vkBytes),
			ProvingKeySHA256:    sha256Hex(pkBytes),
			VerifyingKeyBytes:   int64(len(vkBytes)),
			ProvingKeyBytes:     int64(len(pkBytes)),
			Constraints:         ccs.GetNbConstraints(),
			Domain:              circuitDomain(ccs),
			PublicInputs:        slices.Clone(d.publicNames),
			Phase2Contributions: hashesOf(t.chain(2, id)),
		}}
		if err := selfCheck(out); err != nil {
			return nil, nil, err
		}
		m.Circuits[id] = out.meta
		outs = append(outs, out)
	}
	return outs, m, nil
}

// verifyPhase1 checks every phase-1 contribution from the deterministic
// start and seals the last with the phase-1 beacon.
func (c *ceremonyDir) verifyPhase1(ctx context.Context, t *Transcript) (*mpcsetup.SrsCommons, error) {
	chain := t.chain(1, "")
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: phase 1 has no contribution yet", ErrTranscript)
	}
	prev := mpcsetup.NewPhase1(t.Phase1Domain)
	for _, con := range chain {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("ceremony: %w", err)
		}
		next, err := c.readPhase1(con)
		if err != nil {
			return nil, err
		}
		if err := prev.Verify(next); err != nil {
			return nil, fmt.Errorf("%w: phase 1 contribution %d (%s, by %q) does not verify: %v", ErrTranscript, con.Index, con.File, con.Participant, err)
		}
		prev = next
	}
	if t.Phase1Beacon == "" {
		return nil, nil // still open: nothing to seal
	}
	beacon, err := hex.DecodeString(t.Phase1Beacon)
	if err != nil || len(beacon) < minBeaconBytes {
		return nil, fmt.Errorf("%w: phase 1 beacon %q is not hex of %d bytes or more", ErrTranscript, t.Phase1Beacon, minBeaconBytes)
	}
	commons := prev.Seal(beacon)
	return &commons, nil
}

// verifyPhase2 checks one circuit's phase-2 contributions from the state
// that the sealed phase 1 determines (the start file is not trusted) and,
// given a beacon, seals them into keys.
func (c *ceremonyDir) verifyPhase2(ctx context.Context, t *Transcript, id string, commons *mpcsetup.SrsCommons, beacon []byte) (*groth16bn254.ProvingKey, *groth16bn254.VerifyingKey, error) {
	_, ccs, err := c.circuit(id)
	if err != nil {
		return nil, nil, err
	}
	chain := t.chain(2, id)
	if len(chain) == 0 {
		return nil, nil, fmt.Errorf("%w: phase 2 of %s has no contribution yet", ErrTranscript, id)
	}
	tc := truncateCommons(commons, circuitDomain(ccs))
	prev := new(mpcsetup.Phase2)
	evals := prev.Initialize(ccs, tc)
	for _, con := range chain {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("ceremony: %w", err)
		}
		next, err := c.readPhase2(con, true)
		if err != nil {
			return nil, nil, err
		}
		if err := prev.Verify(next); err != nil {
			return nil, nil, fmt.Errorf("%w: phase 2 contribution %d to %s (%s, by %q) does not verify: %v", ErrTranscript, con.Index, id, con.File, con.Participant, err)
		}
		prev = next
	}
	if beacon == nil {
		return nil, nil, nil
	}
	gpk, gvk := prev.Seal(tc, &evals, beacon)
	pk, ok1 := gpk.(*groth16bn254.ProvingKey)
	vk, ok2 := gvk.(*groth16bn254.VerifyingKey)
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("%w: %s: unexpected key types %T, %T", ErrCeremony, id, gpk, gvk)
	}
	return pk, vk, nil
}

func (c *ceremonyDir) circuit(id string) (*circuitDef, *cs.R1CS, error) {
	d, err := c.reg.lookup(id)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrTranscript, err)
	}
	ccs, err := d.compile()
	if err != nil {
		return nil, nil, fmt.Errorf("ceremony: %w", err)
	}
	return d, ccs, nil
}

func (c *ceremonyDir) readPhase1(con Contribution) (*mpcsetup.Phase1, error) {
	raw, err := c.readState(con, true)
	if err != nil {
		return nil, err
	}
	if n, err := phase1StateDomain(raw); err != nil || n != c.domain {
		return nil, fmt.Errorf("%w: %s is not a phase-1 state of domain %d (%d, %v)", ErrTranscript, con.File, c.domain, n, err)
	}
	p := new(mpcsetup.Phase1)
	if err := decodeState(p, raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTranscript, con.File, err)
	}
	return p, nil
}

func (c *ceremonyDir) readPhase2(con Contribution, checkHash bool) (*mpcsetup.Phase2, error) {
	raw, err := c.readState(con, checkHash)
	if err != nil {
		return nil, err
	}
	if err := checkPhase2State(raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTranscript, con.File, err)
	}
	p := new(mpcsetup.Phase2)
	if err := decodeState(p, raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTranscript, con.File, err)
	}
	return p, nil
}

// gnark allocates what a state's length fields promise before it reads
// the points, so a state file that claims a domain of 2^40 would take the
// process down. The two functions below read those fields first.

// stateCursor walks the bn254 encoding of a state.
type stateCursor struct {
	b   []byte
	err error
}

func (c *stateCursor) take(n int) []byte {
	if c.err != nil {
		return nil
	}
	if n > len(c.b) {
		c.err = fmt.Errorf("truncated: %d bytes needed, %d left", n, len(c.b))
		return nil
	}
	out := c.b[:n]
	c.b = c.b[n:]
	return out
}

// point skips one point: compressed or, if its metadata bits say so,
// uncompressed.
func (c *stateCursor) point(compressedSize int) {
	if c.err == nil && len(c.b) > 0 && c.b[0]&(0b11<<6) == 0 { // bn254's mUncompressed
		compressedSize *= 2
	}
	c.take(compressedSize)
}

// slice skips a length-prefixed slice of G1 points, refusing a length
// the remaining bytes cannot hold.
func (c *stateCursor) g1Slice() {
	raw := c.take(4)
	if c.err != nil {
		return
	}
	n := binary.BigEndian.Uint32(raw)
	if uint64(n)*bn254.SizeOfG1AffineCompressed > uint64(len(c.b)) {
		c.err = fmt.Errorf("a slice of %d points in %d bytes", n, len(c.b))
		return
	}
	for range n {
		c.point(bn254.SizeOfG1AffineCompressed)
	}
}

// phase1StateDomain returns the domain a phase-1 state declares: its three
// update proofs (a G1 and a G2 point each) precede it.
func phase1StateDomain(raw []byte) (uint64, error) {
	c := &stateCursor{b: raw}
	for range 3 {
		c.point(bn254.SizeOfG1AffineCompressed)
		c.point(bn254.SizeOfG2AffineCompressed)
	}
	n := c.take(8)
	if c.err != nil {
		return 0, c.err
	}
	return binary.BigEndian.Uint64(n), nil
}

// checkPhase2State checks the length fields of a phase-2 state: no
// commitments (the circuits have none), and slices the bytes can hold.
func checkPhase2State(raw []byte) error {
	c := &stateCursor{b: raw}
	nb := c.take(2)
	if c.err == nil && binary.BigEndian.Uint16(nb) != 0 {
		return fmt.Errorf("%d commitments: the circuits have none", binary.BigEndian.Uint16(nb))
	}
	c.point(bn254.SizeOfG1AffineCompressed) // δ
	c.g1Slice()                             // PKK
	c.g1Slice()                             // Z
	return c.err
}

// readState reads a state file of the transcript, bounded, and checks it
// against the hash the transcript records.
func (c *ceremonyDir) readState(con Contribution, checkHash bool) ([]byte, error) {
	f, err := os.Open(filepath.Join(c.dir, filepath.FromSlash(con.File)))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTranscript, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTranscript, con.File, err)
	}
	if len(raw) > maxStateBytes {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTranscript, con.File, maxStateBytes)
	}
	if checkHash && sha256Hex(raw) != con.SHA256 {
		return nil, fmt.Errorf("%w: %s has sha256 %s, the transcript says %s", ErrTranscript, con.File, sha256Hex(raw), con.SHA256)
	}
	return raw, nil
}

// decodeState decodes a gnark mpcsetup state, which panics on some
// malformed inputs, and refuses trailing bytes.
func decodeState(v io.ReaderFrom, raw []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed state: %v", r)
		}
	}()
	if err := unmarshal(v, raw); err != nil {
		return fmt.Errorf("malformed state: %w", err)
	}
	return nil
}

// load reads and checks the transcript index.
func (c *ceremonyDir) load() (*Transcript, error) {
	path := filepath.Join(c.dir, TranscriptFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s holds no ceremony (run setup init first)", ErrTranscript, c.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTranscript, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxTranscriptBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTranscript, path, err)
	}
	t, err := ParseTranscript(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, id := range t.Circuits {
		if _, err := c.reg.lookup(id); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrTranscript, path, err)
		}
	}
	c.domain = t.Phase1Domain
	return t, nil
}

// ParseTranscript decodes a transcript index strictly and checks that it
// is consistent: format, phase, circuits, and contributions numbered in
// order with the file names this package gives them.
func ParseTranscript(raw []byte) (*Transcript, error) {
	if len(raw) > maxTranscriptBytes {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTranscript, maxTranscriptBytes)
	}
	var t Transcript
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTranscript, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the transcript", ErrTranscript)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrTranscript, fmt.Sprintf(format, a...))
	}
	switch {
	case t.Format != TranscriptFormat:
		return nil, bad("format %q, want %q", t.Format, TranscriptFormat)
	case t.Phase != PhaseOne && t.Phase != PhaseTwo && t.Phase != PhaseDone:
		return nil, bad("phase %q is not %s, %s or %s", t.Phase, PhaseOne, PhaseTwo, PhaseDone)
	case len(t.Circuits) == 0 || len(t.Circuits) > 64:
		return nil, bad("%d circuits, want 1 to 64", len(t.Circuits))
	case t.Phase1Domain < 2 || t.Phase1Domain > 1<<26 || t.Phase1Domain&(t.Phase1Domain-1) != 0:
		return nil, bad("phase 1 domain %d is not a power of two in 2..2^26", t.Phase1Domain)
	case len(t.Contributions) > maxContributions*len(t.Circuits)+maxContributions:
		return nil, bad("%d contributions", len(t.Contributions))
	case (t.Phase1Beacon != "") != (t.Phase != PhaseOne):
		return nil, bad("phase 1 beacon %q does not fit phase %s", t.Phase1Beacon, t.Phase)
	case (t.Phase2Beacon != "") != (t.Phase == PhaseDone):
		return nil, bad("phase 2 beacon %q does not fit phase %s", t.Phase2Beacon, t.Phase)
	}
	for i, id := range t.Circuits {
		if !validCircuitID(id) || slices.Contains(t.Circuits[:i], id) {
			return nil, bad("circuit id %q is malformed or repeated", id)
		}
	}
	next := map[string]int{}
	for _, con := range t.Contributions {
		key := fmt.Sprint(con.Phase, "/", con.Circuit)
		next[key]++
		want := ""
		switch {
		case con.Phase == 1 && con.Circuit == "":
			want = fmt.Sprintf("phase1/%04d.bin", next[key])
		case con.Phase == 2 && slices.Contains(t.Circuits, con.Circuit) && t.Phase != PhaseOne:
			want = fmt.Sprintf("phase2/%s/%04d.bin", con.Circuit, next[key])
		default:
			return nil, bad("contribution to phase %d circuit %q does not belong to this ceremony", con.Phase, con.Circuit)
		}
		if con.Index != next[key] || con.File != want {
			return nil, bad("contribution %d of phase %d %s: index %d, file %q, want %q", next[key], con.Phase, con.Circuit, con.Index, con.File, want)
		}
		if !validHex(con.SHA256, 64) {
			return nil, bad("contribution %s: sha256 %q is not 64 lower-case hex digits", con.File, con.SHA256)
		}
		if err := validParticipant(con.Participant); err != nil {
			return nil, fmt.Errorf("%w: contribution %s: %w", ErrTranscript, con.File, err)
		}
	}
	return &t, nil
}

// save writes the transcript index through a temporary file.
func (c *ceremonyDir) save(t *Transcript) error {
	raw, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("ceremony: %w", err)
	}
	return writeFileAtomic(filepath.Join(c.dir, TranscriptFile), append(raw, '\n'))
}

// begin takes the directory's lock and loads the transcript; the caller
// releases the lock with unlock.
func (c *ceremonyDir) begin() (t *Transcript, unlock func(), err error) {
	if unlock, err = c.lock(); err != nil {
		return nil, nil, err
	}
	if t, err = c.load(); err != nil {
		unlock()
		return nil, nil, err
	}
	return t, unlock, nil
}

// lock takes the directory for one step; a second participant working on
// the same copy at once gets an error instead of forking the chain.
func (c *ceremonyDir) lock() (unlock func(), err error) {
	path := filepath.Join(c.dir, TranscriptFile+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s is locked by another step in progress (remove %s if none is)", ErrTranscript, c.dir, path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s holds no ceremony (run setup init first)", ErrTranscript, c.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("ceremony: %w", err)
	}
	_ = f.Close()
	return func() { _ = os.Remove(path) }, nil
}

func phase2StartFile(circuit string) string { return "phase2/" + circuit + "/0000.bin" }

func circuitDomain(ccs *cs.R1CS) uint64 {
	return max(ecc.NextPowerOfTwo(uint64(ccs.GetNbConstraints())), 2)
}

func hashesOf(cons []Contribution) []string {
	out := make([]string, len(cons))
	for i, c := range cons {
		out[i] = c.SHA256
	}
	return out
}

func lastDate(t *Transcript) time.Time {
	var d time.Time
	for _, c := range t.Contributions {
		if c.Date.After(d) {
			d = c.Date
		}
	}
	return d
}

func validBeacon(b []byte) error {
	if len(b) < minBeaconBytes {
		return fmt.Errorf("ceremony: beacon of %d bytes: want at least %d, a public random value fixed after the phase's last contribution", len(b), minBeaconBytes)
	}
	return nil
}

// validParticipant accepts 1-64 printable characters.
func validParticipant(name string) error {
	if name == "" || len(name) > 64 || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("ceremony: participant name %q: want 1-64 printable characters", name)
	}
	return nil
}

// validCircuitID accepts ids that are safe as one path element.
func validCircuitID(id string) bool {
	if id == "" || len(id) > 64 || id == "." || id == ".." {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func validHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// recoverCeremony turns a gnark panic on malformed input into an error.
func recoverCeremony(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", ErrCeremony, r)
	}
}
