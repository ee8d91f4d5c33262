package zk

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/consensys/gnark/backend/groth16/bn254/mpcsetup"

	"github.com/proofmesh/proofmesh/protocol/spec"
)

// FuzzVerifyProof feeds arbitrary proof bytes, in one item of a batch of
// honest proofs made with the shipped mlp.infer.v1 key, to Verify and to
// BatchVerify: no panic, Verify fails only with ErrProofEncoding or
// ErrProofInvalid, and the two verifiers (gnark's, and this package's
// randomised batch equation) agree on every input.
func FuzzVerifyProof(f *testing.F) {
	ks := defaultKeysT(f)
	items := shipped(f, spec.TypeMLPInfer)[:4]
	f.Add(items[1].Proof, uint8(1))
	f.Add(items[1].Proof, uint8(2))
	f.Add([]byte{}, uint8(0))
	f.Add(make([]byte, ProofSize), uint8(0))
	f.Add(bytes.Repeat([]byte{0xff}, ProofSize), uint8(3))
	flipped := bytes.Clone(items[0].Proof)
	flipped[40] ^= 0x80
	f.Add(flipped, uint8(0))
	f.Fuzz(func(t *testing.T, proof []byte, at uint8) {
		batch := make([]BatchItem, len(items))
		copy(batch, items)
		i := int(at) % len(batch)
		batch[i].Proof = proof
		single := ks.Verify(spec.TypeMLPInfer, proof, batch[i].Input, batch[i].Output, batch[i].Binding)
		if single != nil && !errors.Is(single, ErrProofEncoding) && !errors.Is(single, ErrProofInvalid) {
			t.Fatalf("error %v wraps neither ErrProofEncoding nor ErrProofInvalid", single)
		}
		bad, err := ks.BatchVerify(spec.TypeMLPInfer, batch)
		if err != nil {
			t.Fatal(err)
		}
		if (single == nil) != (len(bad) == 0) || len(bad) > 1 || len(bad) == 1 && bad[0] != i {
			t.Fatalf("batch says %v, Verify of item %d says %v", bad, i, single)
		}
	})
}

// FuzzParseTaskJSON checks every task JSON parser: no panic, only the
// sentinel errors, and what is accepted re-encodes to a canonical form that
// parses to the same values.
func FuzzParseTaskJSON(f *testing.F) {
	for _, seed := range []string{
		`{"x":"42"}`, `{"y":"0"}`, `{"x":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}`,
		`{"scores":[1,-2,3,4],"class":3}`, `{"x":"1","x":"2"}`, `{"x":[-0]}`, `{"x":"\u0030"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if in, err := parseMiMCInput(data); err == nil {
			again, err := parseMiMCInput([]byte(`{"x":"` + decimal(in.X) + `"}`))
			if err != nil || !again.X.Equal(&in.X) {
				t.Fatalf("mimc input %q: canonical form does not round-trip: %v", data, err)
			}
		} else if !errors.Is(err, ErrBadInput) {
			t.Fatalf("mimc input %q: %v", data, err)
		}
		if out, err := parseMiMCOutput(data); err == nil {
			again, err := parseMiMCOutput([]byte(`{"y":"` + decimal(out.Y) + `"}`))
			if err != nil || !again.Y.Equal(&out.Y) {
				t.Fatalf("mimc output %q: canonical form does not round-trip: %v", data, err)
			}
		} else if !errors.Is(err, ErrBadOutput) {
			t.Fatalf("mimc output %q: %v", data, err)
		}
		if in, err := parseMLPInput(data); err == nil {
			again, err := parseMLPInput(formatMLPInput(in.X))
			if err != nil || again != in {
				t.Fatalf("mlp input %q: canonical form does not round-trip: %v", data, err)
			}
			// every accepted input is in range, so the circuit can prove it.
			scores, class := spec.MLPInfer(in.X)
			if _, err := mlpDef.assign(data, formatMLPOutput(scores, int64(class)), int64Element(0)); err != nil {
				t.Fatalf("mlp input %q: accepted but not provable: %v", data, err)
			}
		} else if !errors.Is(err, ErrBadInput) {
			t.Fatalf("mlp input %q: %v", data, err)
		}
		if out, err := parseMLPOutput(data); err == nil {
			again, err := parseMLPOutput(formatMLPOutput(out.Scores, out.Class))
			if err != nil || again != out {
				t.Fatalf("mlp output %q: canonical form does not round-trip: %v", data, err)
			}
		} else if !errors.Is(err, ErrBadOutput) {
			t.Fatalf("mlp output %q: %v", data, err)
		}
	})
}

// FuzzParseKeyMaterial feeds arbitrary bytes to the manifest and verifying
// key decoders (key files come from disk or from the network's config):
// no panic, no huge allocation, only ErrBadKeys.
func FuzzParseKeyMaterial(f *testing.F) {
	ks := defaultKeysT(f)
	m, err := readFileLimited(embeddedSub(f), ManifestFile, maxManifestBytes)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(m)
	for _, id := range ks.Circuits() {
		vk, err := readFileLimited(embeddedSub(f), id+".vk", maxVerifyingKeyBytes)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(vk)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := parseManifest(data); err != nil && !errors.Is(err, ErrBadKeys) {
			t.Fatalf("manifest: %v", err)
		}
		for _, d := range builtinCircuits {
			vk, err := parseVerifyingKey(data, d.nbPublic())
			if err != nil && !errors.Is(err, ErrBadKeys) {
				t.Fatalf("vk: %v", err)
			}
			if err == nil {
				if _, err := newBatchKey(vk); err != nil {
					t.Fatalf("accepted vk: %v", err)
				}
			}
		}
	})
}

func embeddedSub(t testing.TB) fs.FS {
	t.Helper()
	sub, err := fs.Sub(embeddedKeys, "keys")
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// FuzzParseTranscript feeds the ceremony index a participant is handed.
func FuzzParseTranscript(f *testing.F) {
	good := Transcript{
		Format: TranscriptFormat, Circuits: []string{"mimc.chain.v1"}, Phase1Domain: 32768, Phase: PhaseTwo,
		Phase1Beacon: strings.Repeat("11", 32),
		Contributions: []Contribution{
			{Phase: 1, Index: 1, Participant: "alice", File: "phase1/0001.bin", SHA256: strings.Repeat("a", 64)},
			{Phase: 2, Circuit: "mimc.chain.v1", Index: 1, Participant: "bob", File: "phase2/mimc.chain.v1/0001.bin", SHA256: strings.Repeat("b", 64)},
		},
	}
	raw, err := json.Marshal(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(`{"format":"proofmesh-ceremony/v1","circuits":["../x"],"phase1_domain":4,"phase":"phase1","contributions":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := ParseTranscript(data)
		if err != nil {
			if !errors.Is(err, ErrTranscript) {
				t.Fatalf("error %v does not wrap ErrTranscript", err)
			}
			return
		}
		for _, c := range tr.Contributions {
			if strings.Contains(c.File, "..") || strings.HasPrefix(c.File, "/") {
				t.Fatalf("accepted file name %q", c.File)
			}
		}
		again, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseTranscript(again); err != nil {
			t.Fatalf("accepted transcript does not round-trip: %v", err)
		}
	})
}

// FuzzCeremonyState feeds phase-1 and phase-2 state files to the checks
// that run before gnark decodes them, then to gnark: nothing may panic or
// allocate beyond the bytes given.
func FuzzCeremonyState(f *testing.F) {
	p1 := mpcsetup.NewPhase1(4)
	raw, err := marshal(p1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	p1.Contribute()
	if raw, err = marshal(p1); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	ccs, err := cubicDef.compile()
	if err != nil {
		f.Fatal(err)
	}
	commons := p1.Seal([]byte("fuzz beacon, 16 bytes or more"))
	p2 := new(mpcsetup.Phase2)
	p2.Initialize(ccs, &commons)
	p2.Contribute()
	if raw, err = marshal(p2); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		if n, err := phase1StateDomain(data); err == nil && n == 4 {
			_ = decodeState(new(mpcsetup.Phase1), data)
		}
		if checkPhase2State(data) == nil {
			_ = decodeState(new(mpcsetup.Phase2), data)
		}
	})
}
