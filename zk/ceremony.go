package zk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	"github.com/consensys/gnark"
	"github.com/consensys/gnark-crypto/ecc"
	groth16bn254 "github.com/consensys/gnark/backend/groth16/bn254"
	"github.com/consensys/gnark/backend/groth16/bn254/mpcsetup"
	cs "github.com/consensys/gnark/constraint/bn254"
)

// DefaultContributions is the number of phase-1 and of phase-2
// contributions of a ceremony when CeremonyOptions leaves it zero. The keys
// are sound if any one contributor discarded its randomness.
const DefaultContributions = 2

// CeremonyOptions configures RunCeremony.
type CeremonyOptions struct {
	// OutDir receives "<id>.pk", "<id>.vk" for each circuit and
	// ManifestFile; it is created if missing, existing key files are
	// replaced.
	OutDir string
	// Circuits are the circuit ids to make keys for; empty means all
	// built-in circuits (CircuitIDs).
	Circuits []string
	// Contributions is the number of phase-1 contributions and of phase-2
	// contributions per circuit; each is verified before the next one
	// builds on it. Zero means DefaultContributions.
	Contributions int
	// Beacon is a public random value, fixed after the last contribution,
	// that seeds the final reproducible step of both phases. Nil means 32
	// bytes from crypto/rand. It is recorded in the manifest.
	Beacon []byte
	// Logger receives progress (Info) messages; nil discards them.
	Logger *slog.Logger
}

// Validate refuses options that cannot work.
func (o CeremonyOptions) Validate() error {
	if o.OutDir == "" {
		return errors.New("ceremony: OutDir is empty")
	}
	if o.Contributions < 0 {
		return fmt.Errorf("ceremony: %d contributions; want at least 1 (0 means %d)", o.Contributions, DefaultContributions)
	}
	return nil
}

// ceremony is one run of RunCeremony. The contribute functions stand for
// the participants: each reads the previous state and returns its
// contribution, as bytes, as it would send it over the wire. Tests replace
// them to check that a bad contribution is caught.
type ceremony struct {
	opt         CeremonyOptions
	log         *slog.Logger
	defs        []*circuitDef
	contribute1 func(prev []byte) ([]byte, error)
	contribute2 func(prev []byte) ([]byte, error)
}

// RunCeremony runs the Groth16 key ceremony (gnark's mpcsetup, BN254) for
// the circuits of opt and writes their keys and manifest to opt.OutDir.
//
// Phase 1 (powers of tau, circuit-independent) is run once, for the
// largest circuit's domain: opt.Contributions contributions, each checked
// (proofs of knowledge of the update, consistency of all powers) before
// the next, then sealed with the beacon. Each circuit uses the first
// powers it needs. Phase 2 (circuit-specific) runs opt.Contributions
// verified contributions per circuit and is sealed with the beacon, giving
// the proving and verifying keys. Before anything is written, each
// circuit's keys prove and verify a sample statement. Context cancellation
// is honoured between steps; a contribution in progress finishes first.
//
// Errors wrap ErrCeremony (a contribution failed verification or a step
// failed), ErrUnknownCircuit, or the file system's error.
func RunCeremony(ctx context.Context, opt CeremonyOptions) (*Manifest, error) {
	return runCeremony(ctx, opt, builtinCircuits, nil)
}

// runCeremony is RunCeremony over a registry; hook, if not nil, adjusts the
// ceremony before it runs (tests).
func runCeremony(ctx context.Context, opt CeremonyOptions, reg registry, hook func(*ceremony)) (m *Manifest, err error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if opt.Contributions == 0 {
		opt.Contributions = DefaultContributions
	}
	ids := opt.Circuits
	if len(ids) == 0 {
		ids = reg.ids()
	}
	c := &ceremony{opt: opt, log: opt.Logger, contribute1: contributePhase1, contribute2: contributePhase2}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, id := range ids {
		d, err := reg.lookup(id)
		if err != nil {
			return nil, fmt.Errorf("ceremony: %w", err)
		}
		if !slices.Contains(c.defs, d) {
			c.defs = append(c.defs, d)
		}
	}
	if c.opt.Beacon == nil {
		c.opt.Beacon = make([]byte, 32)
		if _, err := rand.Read(c.opt.Beacon); err != nil {
			return nil, fmt.Errorf("ceremony: beacon: %w", err)
		}
	}
	if hook != nil {
		hook(c)
	}
	// gnark's mpcsetup panics on some malformed inputs; report them as a
	// failed ceremony rather than crashing the caller.
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("%w: %v", ErrCeremony, r)
		}
	}()
	return c.run(ctx)
}

// circuitOutput is what phase 2 produces for one circuit.
type circuitOutput struct {
	def    *circuitDef
	pk, vk []byte
	meta   CircuitManifest
}

func (c *ceremony) run(ctx context.Context) (*Manifest, error) {
	start := time.Now()
	ccss := make([]*cs.R1CS, len(c.defs))
	domains := make([]uint64, len(c.defs))
	var maxN uint64
	for i, d := range c.defs {
		ccs, err := d.compile()
		if err != nil {
			return nil, fmt.Errorf("ceremony: %w", err)
		}
		ccss[i] = ccs
		domains[i] = max(ecc.NextPowerOfTwo(uint64(ccs.GetNbConstraints())), 2)
		maxN = max(maxN, domains[i])
		c.log.Info("circuit compiled", "circuit", d.id, "constraints", ccs.GetNbConstraints(), "domain", domains[i])
	}
	commons, p1Hashes, err := c.phase1(ctx, maxN)
	if err != nil {
		return nil, err
	}
	outs := make([]circuitOutput, len(c.defs))
	for i, d := range c.defs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("ceremony: %w", err)
		}
		out, err := c.phase2(ctx, d, ccss[i], truncateCommons(commons, domains[i]), domains[i])
		if err != nil {
			return nil, err
		}
		outs[i] = out
	}
	m := &Manifest{
		Format:   ManifestFormat,
		Circuits: make(map[string]CircuitManifest, len(outs)),
		Ceremony: CeremonyInfo{
			Curve:               "bn254",
			Backend:             "groth16",
			Contributions:       c.opt.Contributions,
			Phase1Domain:        maxN,
			Phase1Contributions: p1Hashes,
			Beacon:              hex.EncodeToString(c.opt.Beacon),
			GnarkVersion:        moduleVersion("github.com/consensys/gnark", "v"+gnark.Version.String()),
			GnarkCryptoVersion:  moduleVersion("github.com/consensys/gnark-crypto", "unknown"),
			Date:                time.Now().UTC().Truncate(time.Second),
		},
	}
	for _, o := range outs {
		m.Circuits[o.def.id] = o.meta
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ceremony: %w", err)
	}
	if err := writeKeys(c.opt.OutDir, outs, m); err != nil {
		return nil, err
	}
	c.log.Info("ceremony done", "dir", c.opt.OutDir, "took", time.Since(start).Round(time.Millisecond))
	return m, nil
}

// phase1 runs the powers-of-tau contributions for domain n and seals them.
func (c *ceremony) phase1(ctx context.Context, n uint64) (*mpcsetup.SrsCommons, []string, error) {
	verifier := mpcsetup.NewPhase1(n)
	var state []byte // nil: the first participant initialises
	var hashes []string
	for i := range c.opt.Contributions {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("ceremony: %w", err)
		}
		t := time.Now()
		if state == nil {
			var err error
			if state, err = marshal(verifier); err != nil {
				return nil, nil, fmt.Errorf("ceremony: phase 1: %w", err)
			}
		}
		next, err := c.contribute1(state)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: phase 1 contribution %d: %v", ErrCeremony, i+1, err)
		}
		p := new(mpcsetup.Phase1)
		if err := unmarshal(p, next); err != nil {
			return nil, nil, fmt.Errorf("%w: phase 1 contribution %d does not decode: %v", ErrCeremony, i+1, err)
		}
		if err := verifier.Verify(p); err != nil {
			return nil, nil, fmt.Errorf("%w: phase 1 contribution %d rejected: %v", ErrCeremony, i+1, err)
		}
		verifier, state = p, next
		hashes = append(hashes, sha256Hex(next))
		c.log.Info("phase 1 contribution verified", "n", i+1, "of", c.opt.Contributions, "domain", n, "sha256", hashes[i], "took", time.Since(t).Round(time.Millisecond))
	}
	commons := verifier.Seal(c.opt.Beacon)
	return &commons, hashes, nil
}

// phase2 runs the circuit-specific contributions and returns the keys.
func (c *ceremony) phase2(ctx context.Context, d *circuitDef, ccs *cs.R1CS, commons *mpcsetup.SrsCommons, domain uint64) (circuitOutput, error) {
	t := time.Now()
	verifier := new(mpcsetup.Phase2)
	evals := verifier.Initialize(ccs, commons)
	state, err := marshal(verifier)
	if err != nil {
		return circuitOutput{}, fmt.Errorf("ceremony: phase 2 %s: %w", d.id, err)
	}
	c.log.Info("phase 2 initialised", "circuit", d.id, "took", time.Since(t).Round(time.Millisecond))
	var hashes []string
	for i := range c.opt.Contributions {
		if err := ctx.Err(); err != nil {
			return circuitOutput{}, fmt.Errorf("ceremony: %w", err)
		}
		t := time.Now()
		next, err := c.contribute2(state)
		if err != nil {
			return circuitOutput{}, fmt.Errorf("%w: phase 2 %s contribution %d: %v", ErrCeremony, d.id, i+1, err)
		}
		p := new(mpcsetup.Phase2)
		if err := unmarshal(p, next); err != nil {
			return circuitOutput{}, fmt.Errorf("%w: phase 2 %s contribution %d does not decode: %v", ErrCeremony, d.id, i+1, err)
		}
		if err := verifier.Verify(p); err != nil {
			return circuitOutput{}, fmt.Errorf("%w: phase 2 %s contribution %d rejected: %v", ErrCeremony, d.id, i+1, err)
		}
		verifier, state = p, next
		hashes = append(hashes, sha256Hex(next))
		c.log.Info("phase 2 contribution verified", "circuit", d.id, "n", i+1, "of", c.opt.Contributions, "sha256", hashes[i], "took", time.Since(t).Round(time.Millisecond))
	}
	gpk, gvk := verifier.Seal(commons, &evals, c.opt.Beacon)
	pk, ok1 := gpk.(*groth16bn254.ProvingKey)
	vk, ok2 := gvk.(*groth16bn254.VerifyingKey)
	if !ok1 || !ok2 {
		return circuitOutput{}, fmt.Errorf("%w: %s: unexpected key types %T, %T", ErrCeremony, d.id, gpk, gvk)
	}
	pkBytes, err := marshal(pk)
	if err != nil {
		return circuitOutput{}, fmt.Errorf("ceremony: %s proving key: %w", d.id, err)
	}
	vkBytes, err := marshal(vk)
	if err != nil {
		return circuitOutput{}, fmt.Errorf("ceremony: %s verifying key: %w", d.id, err)
	}
	out := circuitOutput{
		def: d, pk: pkBytes, vk: vkBytes,
		meta: CircuitManifest{
			VerifyingKeySHA256:  sha256Hex(vkBytes),
			ProvingKeySHA256:    sha256Hex(pkBytes),
			VerifyingKeyBytes:   int64(len(vkBytes)),
			ProvingKeyBytes:     int64(len(pkBytes)),
			Constraints:         ccs.GetNbConstraints(),
			Domain:              domain,
			PublicInputs:        slices.Clone(d.publicNames),
			Phase2Contributions: hashes,
		},
	}
	if err := selfCheck(out); err != nil {
		return circuitOutput{}, err
	}
	c.log.Info("keys made and checked", "circuit", d.id, "pk_bytes", len(pkBytes), "vk_bytes", len(vkBytes), "took", time.Since(t).Round(time.Millisecond))
	return out, nil
}

// selfCheck loads fresh keys the way LoadKeys will and proves and verifies
// the circuit's sample statement with them; a binding-swapped proof must
// fail.
func selfCheck(o circuitOutput) error {
	vk, err := parseVerifyingKey(o.vk, o.def.nbPublic())
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCeremony, o.def.id, err)
	}
	bk, err := newBatchKey(vk)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCeremony, o.def.id, err)
	}
	ck := &circuitKeys{def: o.def, meta: o.meta, vkHash: o.meta.VerifyingKeySHA256, vk: vk, batch: bk, pkBytes: o.pk}
	ks := &KeySet{circuits: map[string]*circuitKeys{o.def.id: ck}, order: []string{o.def.id}}
	in, out := o.def.sample()
	binding := Binding([]byte("proofmesh/ceremony/self-check"), []byte(o.def.id))
	proof, err := NewProver(ks, 1).Prove(context.Background(), o.def.id, in, out, binding)
	if err != nil {
		return fmt.Errorf("%w: %s: the new keys do not prove: %v", ErrCeremony, o.def.id, err)
	}
	if err := ks.Verify(o.def.id, proof, in, out, binding); err != nil {
		return fmt.Errorf("%w: %s: the new keys do not verify: %v", ErrCeremony, o.def.id, err)
	}
	other := Binding([]byte("proofmesh/ceremony/self-check"), []byte("other"))
	if err := ks.Verify(o.def.id, proof, in, out, other); !errors.Is(err, ErrProofInvalid) {
		return fmt.Errorf("%w: %s: a proof verifies under another binding (%v)", ErrCeremony, o.def.id, err)
	}
	return nil
}

// contributePhase1 is an honest phase-1 participant: it reads the previous
// state, adds its randomness (gnark draws it from crypto/rand and drops it)
// and returns the new state.
func contributePhase1(prev []byte) ([]byte, error) {
	p := new(mpcsetup.Phase1)
	if err := unmarshal(p, prev); err != nil {
		return nil, err
	}
	p.Contribute()
	return marshal(p)
}

// contributePhase2 is an honest phase-2 participant.
func contributePhase2(prev []byte) ([]byte, error) {
	p := new(mpcsetup.Phase2)
	if err := unmarshal(p, prev); err != nil {
		return nil, err
	}
	p.Contribute()
	return marshal(p)
}

// truncateCommons returns the powers of tau for a domain of n ≤ the phase-1
// domain: the first 2n-1 powers in G1, the first n otherwise. They are the
// same powers of the same τ, α, β, so a smaller circuit does not pay for
// the largest one's domain.
func truncateCommons(c *mpcsetup.SrsCommons, n uint64) *mpcsetup.SrsCommons {
	t := *c
	t.G1.Tau = c.G1.Tau[:2*n-1]
	t.G1.AlphaTau = c.G1.AlphaTau[:n]
	t.G1.BetaTau = c.G1.BetaTau[:n]
	t.G2.Tau = c.G2.Tau[:n]
	return &t
}

// writeKeys writes every key file, then the manifest, each through a
// temporary file renamed into place.
func writeKeys(dir string, outs []circuitOutput, m *Manifest) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ceremony: %w", err)
	}
	for _, o := range outs {
		if err := writeFileAtomic(filepath.Join(dir, o.def.id+".pk"), o.pk); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(dir, o.def.id+".vk"), o.vk); err != nil {
			return err
		}
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("ceremony: manifest: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, ManifestFile), append(raw, '\n'))
}

func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("ceremony: %w", err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("ceremony: write %s: %w", path, werr)
	}
	return nil
}

func marshal(v io.WriterTo) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := v.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func unmarshal(v io.ReaderFrom, data []byte) error {
	n, err := v.ReadFrom(bytes.NewReader(data))
	if err != nil {
		return err
	}
	if n != int64(len(data)) {
		return fmt.Errorf("%d trailing bytes", int64(len(data))-n)
	}
	return nil
}

// moduleVersion returns the version of a module linked into the binary.
func moduleVersion(path, fallback string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == path {
				if dep.Replace != nil {
					return dep.Replace.Version
				}
				return dep.Version
			}
		}
	}
	return fallback
}
