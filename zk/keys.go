package zk

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sync"
	"time"
	"unsafe"
	"weak"

	curve "github.com/consensys/gnark-crypto/ecc/bn254"
	groth16bn254 "github.com/consensys/gnark/backend/groth16/bn254"
)

// Key files in a key directory: ManifestFile, and for each circuit id
// "<id>.vk" (verifying key) and "<id>.pk" (proving key), both in gnark's
// compressed WriteTo encoding.
const (
	ManifestFile   = "manifest.json"
	ManifestFormat = "proofmesh-zk-keys/v1"
)

// Size limits for key material read from files or peers.
const (
	maxManifestBytes = 1 << 20 // a manifest is a few KiB
	// maxVerifyingKeyBytes bounds a verifying key file: ≈ 0.3 KiB plus
	// 32 bytes per public input.
	maxVerifyingKeyBytes = 64 << 10
	// MaxProvingKeyBytes bounds a proving key (file or fetched from a
	// peer): ≈ 4 MiB for mimc.chain.v1 here; the bound leaves room for
	// circuits ten times larger.
	MaxProvingKeyBytes = 256 << 20
)

// Manifest describes the keys of one ceremony: it pins the SHA-256 of every
// key file, and says how the keys were made.
type Manifest struct {
	Format   string                     `json:"format"`
	Circuits map[string]CircuitManifest `json:"circuits"`
	Ceremony CeremonyInfo               `json:"ceremony"`
}

// CircuitManifest pins the keys of one circuit.
type CircuitManifest struct {
	// VerifyingKeySHA256 and ProvingKeySHA256 are the lower-case hex
	// SHA-256 of the key files' bytes.
	VerifyingKeySHA256 string `json:"vk_sha256"`
	ProvingKeySHA256   string `json:"pk_sha256"`
	VerifyingKeyBytes  int64  `json:"vk_bytes"`
	ProvingKeyBytes    int64  `json:"pk_bytes"`
	// Constraints is the number of R1CS constraints; the prover refuses
	// keys made for another constraint system.
	Constraints int `json:"constraints"`
	// Domain is the FFT domain size of the proving key (a power of two
	// ≥ Constraints).
	Domain uint64 `json:"domain"`
	// PublicInputs names the public inputs in the order the verifier
	// takes them; the binding is last.
	PublicInputs []string `json:"public_inputs"`
	// Phase2Contributions are the SHA-256 of each verified phase-2
	// contribution, in order, so a participant can find theirs.
	Phase2Contributions []string `json:"phase2_contribution_sha256"`
}

// CeremonyInfo records how the keys were made.
type CeremonyInfo struct {
	Curve   string `json:"curve"`
	Backend string `json:"backend"`
	// Contributions is the number of phase-1 and phase-2 contributions
	// (each), each verified before the next.
	Contributions int `json:"contributions"`
	// Phase1Domain is the size of the powers-of-tau; each circuit uses its
	// first Domain powers.
	Phase1Domain uint64 `json:"phase1_domain"`
	// Phase1Contributions are the SHA-256 of each verified phase-1
	// contribution, in order.
	Phase1Contributions []string `json:"phase1_contribution_sha256"`
	// Beacon is the public random beacon (hex) that seeds the final,
	// reproducible contribution of phase 1, and of phase 2 unless
	// Phase2Beacon is set (a distributed ceremony fixes one per phase).
	Beacon             string    `json:"beacon"`
	Phase2Beacon       string    `json:"phase2_beacon,omitempty"`
	GnarkVersion       string    `json:"gnark_version"`
	GnarkCryptoVersion string    `json:"gnark_crypto_version"`
	Date               time.Time `json:"date"`
}

// KeySet holds the keys of one ceremony: the verifying key of every circuit
// of its manifest, loaded and checked eagerly (a few hundred bytes each),
// and the proving keys that are present, which stay in their files until
// the first proof of their circuit reads, checks and parses them: a node
// that never proves never holds one in memory (megabytes each). A node
// that lacks a proving key fetches it from a peer and adds it with
// AddProvingKey. A KeySet is safe for concurrent use.
type KeySet struct {
	manifest Manifest
	order    []string
	circuits map[string]*circuitKeys
}

// circuitKeys are the keys of one circuit.
type circuitKeys struct {
	def    *circuitDef
	meta   CircuitManifest
	vkHash string
	vk     *groth16bn254.VerifyingKey
	batch  *batchKey

	// pkFS holds "<id>.pk" when the key set was loaded with one; it is
	// read (and its hash checked) at first use, not at load.
	pkFS fs.FS

	mu      sync.Mutex
	pkBytes []byte                   // a proving key added by AddProvingKey (no file to read it from again)
	pk      *groth16bn254.ProvingKey // parsed on first use
	pkErr   error                    // a read or parse failure, kept
	// served points weakly at the bytes last read from pkFS (their
	// first byte; servedLen long): while a blob stream still holds them,
	// the next request shares them instead of reading another copy, and
	// once none does the collector frees them.
	served    weak.Pointer[byte]
	servedLen int
}

// LoadKeys reads the keys of a ceremony from dir: ManifestFile and, for
// each circuit it names, "<id>.vk" (required) and "<id>.pk" (optional: a
// verifier needs none). Every file must match the SHA-256 the manifest pins
// (ErrKeyHashMismatch, naming the file). The caller should also compare
// VerifyingKeyHash with the hash its network configuration pins: the
// manifest comes from the same directory.
//
// The proving keys' hashes are checked at load by streaming the files
// (nothing is kept), so that a wrong file stops the node at start; they
// are read again, checked again and parsed at the first proof.
func LoadKeys(dir string) (*KeySet, error) {
	ks, err := loadKeys(os.DirFS(dir), builtinCircuits, true)
	if err != nil {
		return nil, fmt.Errorf("keys in %s: %w", dir, err)
	}
	return ks, nil
}

// loadKeys reads a key directory. With checkPK, the hash of every proving
// key file present is checked now (streamed, not kept); without, at first
// use only (the embedded keys, whose hashes a test checks).
func loadKeys(fsys fs.FS, reg registry, checkPK bool) (*KeySet, error) {
	quiet()
	raw, err := readFileLimited(fsys, ManifestFile, maxManifestBytes)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, err
	}
	ks := &KeySet{manifest: m, circuits: make(map[string]*circuitKeys, len(m.Circuits))}
	ks.order = slices.Sorted(maps.Keys(m.Circuits))
	for _, id := range ks.order {
		meta := m.Circuits[id]
		def, err := reg.lookup(id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ManifestFile, err)
		}
		if !slices.Equal(meta.PublicInputs, def.publicNames) {
			return nil, fmt.Errorf("%s: circuit %s: %w: public inputs %q, this build has %q", ManifestFile, id, ErrBadKeys, meta.PublicInputs, def.publicNames)
		}
		vkName := id + ".vk"
		vkBytes, err := readFileLimited(fsys, vkName, maxVerifyingKeyBytes)
		if err != nil {
			return nil, err
		}
		if err := checkHash(vkName, vkBytes, meta.VerifyingKeySHA256); err != nil {
			return nil, err
		}
		vk, err := parseVerifyingKey(vkBytes, def.nbPublic())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", vkName, err)
		}
		bk, err := newBatchKey(vk)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", vkName, err)
		}
		ck := &circuitKeys{def: def, meta: meta, vkHash: meta.VerifyingKeySHA256, vk: vk, batch: bk}
		pkName := id + ".pk"
		_, err = fs.Stat(fsys, pkName)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("%s: %w", pkName, err)
		default:
			if checkPK {
				if err := checkFileHash(fsys, pkName, MaxProvingKeyBytes, meta.ProvingKeySHA256); err != nil {
					return nil, err
				}
			}
			ck.pkFS = fsys
		}
		ks.circuits[id] = ck
	}
	return ks, nil
}

// parseManifest decodes and checks a manifest.
func parseManifest(raw []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%s: %w: %v", ManifestFile, ErrBadKeys, err)
	}
	if m.Format != ManifestFormat {
		return m, fmt.Errorf("%s: %w: format %q, want %q", ManifestFile, ErrBadKeys, m.Format, ManifestFormat)
	}
	if len(m.Circuits) == 0 {
		return m, fmt.Errorf("%s: %w: no circuits", ManifestFile, ErrBadKeys)
	}
	for id, c := range m.Circuits {
		if !isHexSHA256(c.VerifyingKeySHA256) || !isHexSHA256(c.ProvingKeySHA256) {
			return m, fmt.Errorf("%s: circuit %s: %w: key hashes must be 64 lower-case hex digits", ManifestFile, id, ErrBadKeys)
		}
		if c.Constraints <= 0 || c.Domain < uint64(c.Constraints) {
			return m, fmt.Errorf("%s: circuit %s: %w: %d constraints in a domain of %d", ManifestFile, id, ErrBadKeys, c.Constraints, c.Domain)
		}
	}
	return m, nil
}

func isHexSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func checkHash(name string, data []byte, want string) error {
	if got := sha256Hex(data); got != want {
		return fmt.Errorf("%s: %w: sha256 %s, the manifest pins %s", name, ErrKeyHashMismatch, got, want)
	}
	return nil
}

// checkFileHash checks the SHA-256 of a file of at most limit bytes
// without keeping its content.
func checkFileHash(fsys fs.FS, name string, limit int64, want string) error {
	f, err := fsys.Open(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, limit+1))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if n > limit {
		return fmt.Errorf("%s: %w: more than %d bytes", name, ErrBadKeys, limit)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: %w: sha256 %s, the manifest pins %s", name, ErrKeyHashMismatch, got, want)
	}
	return nil
}

// readFileLimited reads a whole file of at most limit bytes.
func readFileLimited(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", name, ErrBadKeys, limit)
	}
	return data, nil
}

// vkFixedBytes is the size of a compressed verifying key before its K
// vector: [α]₁ [β]₁ [β]₂ [γ]₂ [δ]₁ [δ]₂.
const vkFixedBytes = 3*curve.SizeOfG1AffineCompressed + 3*curve.SizeOfG2AffineCompressed

// parseVerifyingKey decodes a compressed verifying key for a circuit with
// nbPublic public inputs, with curve and subgroup checks. The layout is
// checked before gnark decodes it, so that no length prefix in the bytes
// can make the decoder allocate: the K vector must hold nbPublic+1 points
// and there must be no commitment keys.
func parseVerifyingKey(data []byte, nbPublic int) (*groth16bn254.VerifyingKey, error) {
	nK := nbPublic + 1
	want := vkFixedBytes + 4 + nK*curve.SizeOfG1AffineCompressed + 4 + 4
	if len(data) != want {
		return nil, fmt.Errorf("%w: verifying key of %d bytes, want %d for %d public inputs without commitments", ErrBadKeys, len(data), want, nbPublic)
	}
	if got := binary.BigEndian.Uint32(data[vkFixedBytes:]); got != uint32(nK) {
		return nil, fmt.Errorf("%w: verifying key for %d public inputs, want %d", ErrBadKeys, int(got)-1, nbPublic)
	}
	if !bytes.Equal(data[len(data)-8:], make([]byte, 8)) {
		return nil, fmt.Errorf("%w: verifying key has commitments", ErrBadKeys)
	}
	vk := new(groth16bn254.VerifyingKey)
	n, err := vk.ReadFrom(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: verifying key: %v", ErrBadKeys, err)
	}
	if n != int64(len(data)) || len(vk.G1.K) != nK || len(vk.CommitmentKeys) != 0 || len(vk.PublicAndCommitmentCommitted) != 0 {
		return nil, fmt.Errorf("%w: verifying key: unexpected layout", ErrBadKeys)
	}
	// Every public input (and the constant wire) must enter the pairing
	// check: a point at infinity would let that input take any value.
	for i := range vk.G1.K {
		if vk.G1.K[i].IsInfinity() {
			return nil, fmt.Errorf("%w: verifying key: public input %d is unconstrained (K[%d] is the point at infinity)", ErrBadKeys, i-1, i)
		}
	}
	if vk.G1.Alpha.IsInfinity() || vk.G2.Beta.IsInfinity() || vk.G2.Gamma.IsInfinity() || vk.G2.Delta.IsInfinity() {
		return nil, fmt.Errorf("%w: verifying key: a point at infinity", ErrBadKeys)
	}
	return vk, nil
}

// Circuits returns the circuit ids of the key set, sorted.
func (ks *KeySet) Circuits() []string { return slices.Clone(ks.order) }

// Manifest returns a deep copy of the key set's manifest.
func (ks *KeySet) Manifest() Manifest {
	m := ks.manifest
	m.Circuits = make(map[string]CircuitManifest, len(ks.manifest.Circuits))
	for id, c := range ks.manifest.Circuits {
		c.PublicInputs = slices.Clone(c.PublicInputs)
		c.Phase2Contributions = slices.Clone(c.Phase2Contributions)
		m.Circuits[id] = c
	}
	m.Ceremony.Phase1Contributions = slices.Clone(m.Ceremony.Phase1Contributions)
	return m
}

func (ks *KeySet) circuit(id string) (*circuitKeys, error) {
	ck, ok := ks.circuits[id]
	if !ok {
		return nil, fmt.Errorf("circuit %q: %w (this key set has %q)", id, ErrUnknownCircuit, ks.order)
	}
	return ck, nil
}

// VerifyingKeyHash returns the lower-case hex SHA-256 of the circuit's
// verifying key file: the hash a network configuration pins.
func (ks *KeySet) VerifyingKeyHash(circuit string) (string, error) {
	ck, err := ks.circuit(circuit)
	if err != nil {
		return "", err
	}
	return ck.vkHash, nil
}

// ProvingKeyHash returns the lower-case hex SHA-256 of the circuit's
// proving key file, as the manifest pins it, whether or not the key set
// holds the proving key: it is the content address to fetch it by.
func (ks *KeySet) ProvingKeyHash(circuit string) (string, error) {
	ck, err := ks.circuit(circuit)
	if err != nil {
		return "", err
	}
	return ck.meta.ProvingKeySHA256, nil
}

// HasProvingKey reports whether the key set holds the circuit's proving key.
func (ks *KeySet) HasProvingKey(circuit string) bool {
	ck, err := ks.circuit(circuit)
	if err != nil {
		return false
	}
	ck.mu.Lock()
	defer ck.mu.Unlock()
	return ck.pkFS != nil || ck.pkBytes != nil
}

// ProvingKeyLoaded reports whether the circuit's proving key is held in
// memory (parsed, or added by AddProvingKey), as opposed to left in its
// file until the first proof.
func (ks *KeySet) ProvingKeyLoaded(circuit string) bool {
	ck, err := ks.circuit(circuit)
	if err != nil {
		return false
	}
	ck.mu.Lock()
	defer ck.mu.Unlock()
	return ck.pk != nil || ck.pkBytes != nil
}

// ProvingKeyBytes returns the circuit's proving key file bytes, checked
// against the manifest's hash, to serve them to a peer. A key read from
// its file is not kept once no caller holds it, and is shared by callers
// that overlap (peers fetching it at once get one copy, not one each);
// the slice of a key added with AddProvingKey is shared too: callers must
// not modify it.
func (ks *KeySet) ProvingKeyBytes(circuit string) ([]byte, error) {
	ck, err := ks.circuit(circuit)
	if err != nil {
		return nil, err
	}
	ck.mu.Lock()
	defer ck.mu.Unlock()
	return ck.provingKeyBytes()
}

// provingKeyBytes returns the added bytes, or reads and checks the file.
// The caller holds ck.mu.
func (ck *circuitKeys) provingKeyBytes() ([]byte, error) {
	if ck.pkBytes != nil {
		return ck.pkBytes, nil
	}
	if ck.pkFS == nil {
		return nil, fmt.Errorf("circuit %s: %w (fetch %s.pk, sha256 %s, and add it with AddProvingKey)", ck.def.id, ErrMissingProvingKey, ck.def.id, ck.meta.ProvingKeySHA256)
	}
	if p := ck.served.Value(); p != nil {
		return unsafe.Slice(p, ck.servedLen), nil
	}
	name := ck.def.id + ".pk"
	b, err := readFileLimited(ck.pkFS, name, MaxProvingKeyBytes)
	if err != nil {
		return nil, err
	}
	if err := checkHash(name, b, ck.meta.ProvingKeySHA256); err != nil {
		return nil, err
	}
	if len(b) > 0 {
		ck.served, ck.servedLen = weak.Make(&b[0]), len(b)
	}
	return b, nil
}

// AddProvingKey adds a proving key received from a peer. Its SHA-256 must
// be the one the manifest pins (ErrKeyHashMismatch); it is then decoded with
// curve and subgroup checks and checked against the verifying key
// (ErrBadKeys). Adding the key a set already holds is a no-op.
func (ks *KeySet) AddProvingKey(circuit string, pk []byte) error {
	ck, err := ks.circuit(circuit)
	if err != nil {
		return err
	}
	if int64(len(pk)) > MaxProvingKeyBytes {
		return fmt.Errorf("%s.pk: %w: %d bytes, more than %d", circuit, ErrBadKeys, len(pk), MaxProvingKeyBytes)
	}
	if err := checkHash(circuit+".pk", pk, ck.meta.ProvingKeySHA256); err != nil {
		return err
	}
	ck.mu.Lock()
	defer ck.mu.Unlock()
	if ck.pk != nil {
		return nil
	}
	parsed, err := ck.parseProvingKey(pk)
	if err != nil {
		return err
	}
	ck.pkBytes, ck.pk, ck.pkErr = slices.Clone(pk), parsed, nil
	return nil
}

// provingKey returns the parsed proving key, parsing it on first use.
func (ck *circuitKeys) provingKey() (*groth16bn254.ProvingKey, error) {
	ck.mu.Lock()
	defer ck.mu.Unlock()
	if ck.pk != nil {
		return ck.pk, nil
	}
	if ck.pkErr != nil {
		return nil, ck.pkErr
	}
	b, err := ck.provingKeyBytes()
	if errors.Is(err, ErrMissingProvingKey) {
		return nil, err // not kept: AddProvingKey may supply it
	}
	if err == nil {
		ck.pk, err = ck.parseProvingKey(b)
	}
	ck.pkErr = err
	return ck.pk, ck.pkErr
}

// parseProvingKey decodes a proving key with curve and subgroup checks and
// checks that it belongs to the verifying key of the set.
func (ck *circuitKeys) parseProvingKey(data []byte) (*groth16bn254.ProvingKey, error) {
	name := ck.def.id + ".pk"
	pk := new(groth16bn254.ProvingKey)
	n, err := pk.ReadFrom(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrBadKeys, err)
	}
	if n != int64(len(data)) {
		return nil, fmt.Errorf("%s: %w: %d trailing bytes", name, ErrBadKeys, int64(len(data))-n)
	}
	vk := ck.vk
	switch {
	case !pk.G1.Alpha.Equal(&vk.G1.Alpha), !pk.G1.Beta.Equal(&vk.G1.Beta), !pk.G1.Delta.Equal(&vk.G1.Delta),
		!pk.G2.Beta.Equal(&vk.G2.Beta), !pk.G2.Delta.Equal(&vk.G2.Delta):
		return nil, fmt.Errorf("%s: %w: not the proving key of the verifying key %s", name, ErrBadKeys, ck.vkHash)
	case pk.Domain.Cardinality != ck.meta.Domain:
		return nil, fmt.Errorf("%s: %w: domain %d, the manifest says %d", name, ErrBadKeys, pk.Domain.Cardinality, ck.meta.Domain)
	case len(pk.CommitmentKeys) != 0:
		return nil, fmt.Errorf("%s: %w: proving key has commitment keys", name, ErrBadKeys)
	}
	return pk, nil
}
