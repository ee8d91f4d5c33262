package zk

import (
	"bytes"
	"context"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/consensys/gnark/frontend"
)

// cubicCircuit is a test-only circuit small enough (domain 8) for the
// ceremony to run in a unit test: y = x³ + x + 5, with the binding.
type cubicCircuit struct {
	X       frontend.Variable `gnark:",public"`
	Y       frontend.Variable `gnark:",public"`
	Binding frontend.Variable `gnark:",public"`
}

func (c *cubicCircuit) Define(api frontend.API) error {
	x3 := api.Mul(c.X, c.X, c.X)
	api.AssertIsEqual(c.Y, api.Add(x3, c.X, 5))
	constrainBinding(api, c.Binding)
	return nil
}

func cubic(x fr.Element) fr.Element {
	var y, five fr.Element
	five.SetUint64(5)
	y.Square(&x).Mul(&y, &x).Add(&y, &x).Add(&y, &five)
	return y
}

// cubicDef reuses the mimc.chain.v1 JSON shapes: {"x": "<dec>"} → {"y": "<dec>"}.
var cubicDef = &circuitDef{
	id:          "test.cubic.v1",
	blank:       func() frontend.Circuit { return &cubicCircuit{} },
	publicNames: []string{"x", "y", "binding"},
	sample: func() (input, output []byte) {
		var x fr.Element
		x.SetUint64(3)
		y := cubic(x)
		return []byte(`{"x":"3"}`), []byte(`{"y":"` + decimal(y) + `"}`)
	},
	public: publicXY,
	assign: func(input, output []byte, binding fr.Element) (frontend.Circuit, error) {
		x, y, err := parseXY(input, output)
		if err != nil {
			return nil, err
		}
		if want := cubic(x); !want.Equal(&y) {
			return nil, ErrBadOutput
		}
		return &cubicCircuit{X: x, Y: y, Binding: binding}, nil
	},
}

var testRegistry = registry{cubicDef}

// testCeremony runs one ceremony for the test circuit per test binary and
// returns its directory.
var testCeremony = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "zk-ceremony-test")
	if err != nil {
		return "", err
	}
	_, err = runCeremony(context.Background(), CeremonyOptions{OutDir: dir, Contributions: 2}, testRegistry, nil)
	return dir, err
})

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := testCeremony(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

func testKeys(t *testing.T) (*KeySet, string) {
	t.Helper()
	dir, err := testCeremony()
	if err != nil {
		t.Fatalf("ceremony: %v", err)
	}
	ks, err := loadKeys(os.DirFS(dir), testRegistry, true)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return ks, dir
}

func TestCeremonyKeysProveAndVerify(t *testing.T) {
	ks, dir := testKeys(t)
	m := ks.Manifest()
	c, ok := m.Circuits[cubicDef.id]
	if !ok {
		t.Fatalf("manifest has no %s: %+v", cubicDef.id, m)
	}
	if m.Ceremony.Contributions != 2 || len(m.Ceremony.Phase1Contributions) != 2 || len(c.Phase2Contributions) != 2 {
		t.Errorf("manifest does not record 2+2 contributions: %+v", m.Ceremony)
	}
	if m.Ceremony.GnarkVersion == "" || m.Ceremony.Date.IsZero() || len(m.Ceremony.Beacon) != 64 {
		t.Errorf("ceremony info incomplete: %+v", m.Ceremony)
	}
	vkFile, err := os.ReadFile(filepath.Join(dir, cubicDef.id+".vk"))
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := ks.VerifyingKeyHash(cubicDef.id); h != sha256Hex(vkFile) || h != c.VerifyingKeySHA256 {
		t.Errorf("vk hash %s, file %s, manifest %s", h, sha256Hex(vkFile), c.VerifyingKeySHA256)
	}
	in, out := cubicDef.sample()
	bA := Binding([]byte("task A"), []byte("executor 1"))
	proof, err := NewProver(ks, 1).Prove(context.Background(), cubicDef.id, in, out, bA)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Verify(cubicDef.id, proof, in, out, bA); err != nil {
		t.Fatalf("honest proof: %v", err)
	}
	bB := Binding([]byte("task B"), []byte("executor 1"))
	if err := ks.Verify(cubicDef.id, proof, in, out, bB); !errors.Is(err, ErrProofInvalid) {
		t.Errorf("other binding: %v, want ErrProofInvalid", err)
	}
	if _, err := NewProver(ks, 1).Prove(context.Background(), cubicDef.id, in, []byte(`{"y":"1"}`), bA); !errors.Is(err, ErrBadOutput) {
		t.Errorf("prove a wrong output: %v, want ErrBadOutput", err)
	}
}

// TestCeremonyVerifyingKeyBindsEveryPublicInput: no public input may have
// the point at infinity as its verifying-key term, or it would be free.
func TestCeremonyVerifyingKeyBindsEveryPublicInput(t *testing.T) {
	ks, _ := testKeys(t)
	ck, _ := ks.circuit(cubicDef.id)
	for i, k := range ck.vk.G1.K {
		if k.IsInfinity() {
			t.Errorf("K[%d] is the point at infinity", i)
		}
	}
}

func TestLoadKeysRejectsTamperedFiles(t *testing.T) {
	_, src := testKeys(t)
	for _, name := range []string{cubicDef.id + ".vk", cubicDef.id + ".pk"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, src, dir)
			p := filepath.Join(dir, name)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 1
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = loadKeys(os.DirFS(dir), testRegistry, true)
			if !errors.Is(err, ErrKeyHashMismatch) || !strings.Contains(err.Error(), name) {
				t.Errorf("got %v, want ErrKeyHashMismatch naming %s", err, name)
			}
		})
	}
	t.Run("no proving key", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, src, dir)
		if err := os.Remove(filepath.Join(dir, cubicDef.id+".pk")); err != nil {
			t.Fatal(err)
		}
		ks, err := loadKeys(os.DirFS(dir), testRegistry, true)
		if err != nil {
			t.Fatal(err)
		}
		if ks.HasProvingKey(cubicDef.id) {
			t.Error("HasProvingKey without a pk file")
		}
		in, out := cubicDef.sample()
		if _, err := NewProver(ks, 1).Prove(context.Background(), cubicDef.id, in, out, big.NewInt(1)); !errors.Is(err, ErrMissingProvingKey) {
			t.Errorf("prove: %v, want ErrMissingProvingKey", err)
		}
		pk, err := os.ReadFile(filepath.Join(src, cubicDef.id+".pk"))
		if err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(pk)
		bad[100] ^= 1
		if err := ks.AddProvingKey(cubicDef.id, bad); !errors.Is(err, ErrKeyHashMismatch) {
			t.Errorf("add a tampered pk: %v, want ErrKeyHashMismatch", err)
		}
		if err := ks.AddProvingKey(cubicDef.id, pk); err != nil {
			t.Fatal(err)
		}
		if !ks.HasProvingKey(cubicDef.id) {
			t.Error("no proving key after AddProvingKey")
		}
		if got, _ := ks.ProvingKeyBytes(cubicDef.id); !bytes.Equal(got, pk) {
			t.Error("ProvingKeyBytes differ from the added key")
		}
		if _, err := NewProver(ks, 1).Prove(context.Background(), cubicDef.id, in, out, big.NewInt(1)); err != nil {
			t.Errorf("prove with the added key: %v", err)
		}
	})
	t.Run("unknown circuit in manifest", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, src, dir)
		if _, err := loadKeys(os.DirFS(dir), builtinCircuits, true); !errors.Is(err, ErrUnknownCircuit) {
			t.Errorf("got %v, want ErrUnknownCircuit", err)
		}
	})
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tamperAt returns a contribute function that behaves honestly except for
// contribution number bad (1-based), which it corrupts with corrupt.
func tamperAt(honest func([]byte) ([]byte, error), bad int, corrupt func(prev, next []byte) []byte) func([]byte) ([]byte, error) {
	n := 0
	return func(prev []byte) ([]byte, error) {
		n++
		next, err := honest(prev)
		if err != nil || n != bad {
			return next, err
		}
		return corrupt(prev, next), nil
	}
}

// Offsets in gnark's Phase1 encoding: three update proofs ([x]₁, [π]₂ each,
// compressed), then N (8 bytes), [β]₂, then [τ¹]₁, [τ²]₁, ...
const (
	phase1Proofs = 3 * (32 + 64)
	phase1Tau1   = phase1Proofs + 8 + 64
)

func TestCeremonyCatchesBadContributions(t *testing.T) {
	cases := map[string]func(c *ceremony){
		// powers of tau that are not powers of one τ: [τ²]₁ := [τ¹]₁.
		"phase 1 inconsistent powers": func(c *ceremony) {
			c.contribute1 = tamperAt(contributePhase1, 2, func(_, next []byte) []byte {
				b := bytes.Clone(next)
				copy(b[phase1Tau1+32:phase1Tau1+64], b[phase1Tau1:phase1Tau1+32])
				return b
			})
		},
		// an update whose proof of knowledge is another contribution's.
		"phase 1 forged proof": func(c *ceremony) {
			c.contribute1 = tamperAt(contributePhase1, 2, func(prev, next []byte) []byte {
				b := bytes.Clone(next)
				copy(b[:phase1Proofs], prev[:phase1Proofs])
				return b
			})
		},
		"phase 1 no contribution": func(c *ceremony) {
			c.contribute1 = tamperAt(contributePhase1, 2, func(prev, _ []byte) []byte { return prev })
		},
		"phase 1 undecodable": func(c *ceremony) {
			c.contribute1 = tamperAt(contributePhase1, 1, func(_, next []byte) []byte { return next[:len(next)/2] })
		},
		"phase 2 no contribution": func(c *ceremony) {
			c.contribute2 = tamperAt(contributePhase2, 2, func(prev, _ []byte) []byte { return prev })
		},
		// δ updated in [δ]₁ but the proving-key elements left alone:
		// swap the first two PKK points of the contribution.
		"phase 2 inconsistent keys": func(c *ceremony) {
			c.contribute2 = tamperAt(contributePhase2, 1, func(_, next []byte) []byte {
				b := bytes.Clone(next)
				off := 2 + 32 + 4 // nbCommitments, [δ]₁, len(PKK)
				var tmp [32]byte
				copy(tmp[:], b[off:off+32])
				copy(b[off:off+32], b[off+32:off+64])
				copy(b[off+32:off+64], tmp[:])
				return b
			})
		},
	}
	for name, hook := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := runCeremony(context.Background(), CeremonyOptions{OutDir: dir, Contributions: 2}, testRegistry, hook)
			if !errors.Is(err, ErrCeremony) {
				t.Fatalf("got %v, want ErrCeremony", err)
			}
			if _, err := os.Stat(filepath.Join(dir, ManifestFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed ceremony wrote a manifest (%v)", err)
			}
			t.Log(err)
		})
	}
}

func TestCeremonyHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	hook := func(c *ceremony) {
		c.contribute1 = tamperAt(contributePhase1, 1, func(_, next []byte) []byte { cancel(); return next })
	}
	dir := t.TempDir()
	_, err := runCeremony(ctx, CeremonyOptions{OutDir: dir, Contributions: 3}, testRegistry, hook)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestCeremonyOptionsValidate(t *testing.T) {
	for name, opt := range map[string]CeremonyOptions{
		"no dir":                 {},
		"negative contributions": {OutDir: "x", Contributions: -1},
	} {
		if err := opt.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := runCeremony(context.Background(), CeremonyOptions{OutDir: t.TempDir(), Circuits: []string{"nope"}}, testRegistry, nil); !errors.Is(err, ErrUnknownCircuit) {
		t.Errorf("unknown circuit: %v", err)
	}
}
