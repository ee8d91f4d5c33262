package zk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consensys/gnark/backend/groth16/bn254/mpcsetup"
)

func testCeremonyDir(t *testing.T, dir string) *ceremonyDir {
	t.Helper()
	return &ceremonyDir{dir: dir, reg: testRegistry, now: time.Now}
}

var (
	beacon1 = bytes.Repeat([]byte{0x11}, 32)
	beacon2 = bytes.Repeat([]byte{0x22}, 32)
)

// runDistributed runs a whole distributed ceremony for the test circuit:
// two phase-1 participants, two phase-2 participants. It returns the
// transcript directory and the keys directory.
func runDistributed(t *testing.T) (string, string) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ceremony")
	c := testCeremonyDir(t, dir)
	tr, err := c.init(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := testCeremonyDir(t, dir).verify(ctx); err != nil {
		t.Fatalf("verify a fresh transcript: %v", err)
	}
	if tr.Phase != PhaseOne || len(tr.Circuits) != 1 || tr.Phase1Domain != 4 {
		t.Fatalf("init: %+v", tr)
	}
	for _, who := range []string{"alice", "bob"} {
		made, err := testCeremonyDir(t, dir).contribute(ctx, who)
		if err != nil || len(made) != 1 || made[0].Phase != 1 {
			t.Fatalf("phase 1 contribution of %s: %+v, %v", who, made, err)
		}
	}
	if err := testCeremonyDir(t, dir).closePhase1(ctx, beacon1); err != nil {
		t.Fatal(err)
	}
	if tr, m, err := testCeremonyDir(t, dir).verify(ctx); err != nil || tr.Phase != PhaseTwo || m != nil {
		t.Fatalf("verify as phase 2 opens: %v, %v", tr, err)
	}
	for _, who := range []string{"carol", "dave"} {
		made, err := testCeremonyDir(t, dir).contribute(ctx, who)
		if err != nil || len(made) != 1 || made[0].Phase != 2 || made[0].Circuit != cubicDef.id {
			t.Fatalf("phase 2 contribution of %s: %+v, %v", who, made, err)
		}
	}
	keys := filepath.Join(t.TempDir(), "keys")
	if _, err := testCeremonyDir(t, dir).finalize(ctx, beacon2, keys); err != nil {
		t.Fatal(err)
	}
	return dir, keys
}

func TestDistributedCeremony(t *testing.T) {
	ctx := context.Background()
	dir, keysDir := runDistributed(t)

	ks, err := loadKeys(os.DirFS(keysDir), testRegistry, true)
	if err != nil {
		t.Fatalf("the ceremony's keys do not load: %v", err)
	}
	in, out := cubicDef.sample()
	b := Binding([]byte("task"), []byte("executor"))
	proof, err := NewProver(ks, 1).Prove(ctx, cubicDef.id, in, out, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Verify(cubicDef.id, proof, in, out, b); err != nil {
		t.Fatalf("proof under the distributed ceremony's keys: %v", err)
	}

	// The manifest names every contribution; an auditor's re-run of the
	// transcript gives the same keys.
	tr, m, err := testCeremonyDir(t, dir).verify(ctx)
	if err != nil {
		t.Fatalf("verify a finished transcript: %v", err)
	}
	if tr.Phase != PhaseDone || m == nil {
		t.Fatalf("verify: phase %s, manifest %v", tr.Phase, m)
	}
	got := ks.Manifest()
	if m.Circuits[cubicDef.id].VerifyingKeySHA256 != got.Circuits[cubicDef.id].VerifyingKeySHA256 ||
		m.Circuits[cubicDef.id].ProvingKeySHA256 != got.Circuits[cubicDef.id].ProvingKeySHA256 {
		t.Errorf("re-verified keys differ from the written ones")
	}
	if want := hashesOf(tr.chain(1, "")); len(want) != 2 || strings.Join(got.Ceremony.Phase1Contributions, ",") != strings.Join(want, ",") {
		t.Errorf("manifest phase-1 hashes %v, transcript %v", got.Ceremony.Phase1Contributions, want)
	}
	if len(got.Circuits[cubicDef.id].Phase2Contributions) != 2 || got.Ceremony.Phase2Beacon == "" || got.Ceremony.Beacon == got.Ceremony.Phase2Beacon {
		t.Errorf("manifest ceremony info: %+v, circuit %+v", got.Ceremony, got.Circuits[cubicDef.id])
	}

	if _, err := testCeremonyDir(t, dir).contribute(ctx, "late"); !errors.Is(err, ErrTranscript) {
		t.Errorf("contribution after finalize: %v", err)
	}
}

func TestCeremonyStepsOutOfOrder(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "c")
	c := testCeremonyDir(t, dir)
	if _, err := c.contribute(ctx, "alice"); !errors.Is(err, ErrTranscript) || !strings.Contains(err.Error(), "setup init") {
		t.Errorf("contribute before init: %v", err)
	}
	if _, err := c.init(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.init(ctx, nil); !errors.Is(err, ErrTranscript) {
		t.Errorf("second init: %v", err)
	}
	if _, err := c.init(ctx, []string{"no.such.circuit"}); err == nil {
		t.Error("init of an unknown circuit")
	}
	if err := c.closePhase1(ctx, beacon1); !errors.Is(err, ErrTranscript) || !strings.Contains(err.Error(), "no contribution") {
		t.Errorf("close phase 1 without contributions: %v", err)
	}
	if _, err := c.contribute(ctx, ""); err == nil || !strings.Contains(err.Error(), "participant") {
		t.Errorf("nameless participant: %v", err)
	}
	if _, err := c.contribute(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := c.closePhase1(ctx, []byte("short")); err == nil || !strings.Contains(err.Error(), "beacon") {
		t.Errorf("short beacon: %v", err)
	}
	if _, err := c.finalize(ctx, beacon2, t.TempDir()); !errors.Is(err, ErrTranscript) || !strings.Contains(err.Error(), "phase 2") {
		t.Errorf("finalize in phase 1: %v", err)
	}
	if err := c.closePhase1(ctx, beacon1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.finalize(ctx, beacon2, t.TempDir()); !errors.Is(err, ErrTranscript) || !strings.Contains(err.Error(), "no contribution") {
		t.Errorf("finalize without phase-2 contributions: %v", err)
	}

	// A second step while one holds the directory is refused.
	lock := filepath.Join(dir, TranscriptFile+".lock")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.contribute(ctx, "bob"); !errors.Is(err, ErrTranscript) || !strings.Contains(err.Error(), "locked") {
		t.Errorf("contribute while locked: %v", err)
	}
}

// copyTranscript copies a transcript so each tampering case starts clean.
func copyTranscript(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func editTranscript(t *testing.T, dir string, edit func(*Transcript)) {
	t.Helper()
	c := testCeremonyDir(t, dir)
	tr, err := c.load()
	if err != nil {
		t.Fatal(err)
	}
	edit(tr)
	if err := c.save(tr); err != nil {
		t.Fatal(err)
	}
}

// Every way of editing a finished transcript that we know of is caught by
// verify, with the file named.
func TestCeremonyTranscriptTampering(t *testing.T) {
	ctx := context.Background()
	dir, _ := runDistributed(t)
	p2 := filepath.Join(dir, "phase2", cubicDef.id)

	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   string
	}{
		{"contribution file edited", func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, "phase1", "0001.bin"), 200)
		}, "phase1/0001.bin has sha256"},
		{"contribution file and its hash edited", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "phase1", "0002.bin")
			flipByte(t, path, 200)
			raw, _ := os.ReadFile(path)
			editTranscript(t, dir, func(tr *Transcript) { tr.Contributions[1].SHA256 = sha256Hex(raw) })
		}, "phase1/0002.bin"},
		{"contribution that skips its predecessor", func(t *testing.T, dir string) {
			// dave's contribution replaced by one built on the start state
			// instead of on carol's.
			raw, err := os.ReadFile(filepath.Join(p2, "0000.bin"))
			if err != nil {
				t.Fatal(err)
			}
			p := new(mpcsetup.Phase2)
			if err := unmarshal(p, raw); err != nil {
				t.Fatal(err)
			}
			p.Contribute()
			forged, _ := marshal(p)
			if err := os.WriteFile(filepath.Join(dir, "phase2", cubicDef.id, "0002.bin"), forged, 0o644); err != nil {
				t.Fatal(err)
			}
			editTranscript(t, dir, func(tr *Transcript) { tr.Contributions[3].SHA256 = sha256Hex(forged) })
		}, "phase 2 contribution 2"},
		{"contribution removed", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "phase1", "0002.bin")); err != nil {
				t.Fatal(err)
			}
		}, "0002.bin"},
		{"contribution dropped from the index", func(t *testing.T, dir string) {
			editTranscript(t, dir, func(tr *Transcript) { tr.Contributions = tr.Contributions[1:] })
		}, "phase1/0002.bin"},
		{"beacon changed", func(t *testing.T, dir string) {
			editTranscript(t, dir, func(tr *Transcript) { tr.Phase2Beacon = strings.Repeat("33", 32) })
		}, ""}, // the keys change: caught by comparing vk hashes below
		{"state claims a huge domain", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "phase1", "0001.bin")
			raw, _ := os.ReadFile(path)
			c := &stateCursor{b: raw} // walk to N, after the three update proofs
			for range 3 {
				c.point(32)
				c.point(64)
			}
			raw[len(raw)-len(c.b)] = 0x10 // N ≥ 2^60
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			editTranscript(t, dir, func(tr *Transcript) { tr.Contributions[0].SHA256 = sha256Hex(raw) })
		}, "not a phase-1 state of domain 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := copyTranscript(t, dir)
			_, want, err := testCeremonyDir(t, dir).verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(t, d)
			_, got, err := testCeremonyDir(t, d).verify(ctx)
			if tc.want == "" {
				if err == nil && got.Circuits[cubicDef.id].VerifyingKeySHA256 == want.Circuits[cubicDef.id].VerifyingKeySHA256 {
					t.Fatal("tampered transcript gives the same keys")
				}
				return
			}
			if !errors.Is(err, ErrTranscript) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// A coordinator who hands out a wrong phase-2 start cannot slip it into the
// keys: finalize recomputes the start from phase 1 and refuses the chain.
func TestCeremonyWrongPhase2StartCaught(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "c")
	c := testCeremonyDir(t, dir)
	if _, err := c.init(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.contribute(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := c.closePhase1(ctx, beacon1); err != nil {
		t.Fatal(err)
	}
	// The start state of another phase 1 (other randomness).
	other := filepath.Join(t.TempDir(), "other")
	o := testCeremonyDir(t, other)
	if _, err := o.init(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := o.contribute(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	if err := o.closePhase1(ctx, beacon1); err != nil {
		t.Fatal(err)
	}
	start := filepath.FromSlash(phase2StartFile(cubicDef.id))
	raw, err := os.ReadFile(filepath.Join(other, start))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, start), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.contribute(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	_, err = c.finalize(ctx, beacon2, t.TempDir())
	if !errors.Is(err, ErrTranscript) || !strings.Contains(err.Error(), "phase 2 contribution 1") {
		t.Fatalf("finalize on a swapped start: %v", err)
	}
}

func TestParseTranscriptRefusesMalformed(t *testing.T) {
	dir, _ := runDistributed(t)
	good, err := os.ReadFile(filepath.Join(dir, TranscriptFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseTranscript(good); err != nil {
		t.Fatalf("good transcript: %v", err)
	}
	var base map[string]any
	if err := json.Unmarshal(good, &base); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"unknown field", func(m map[string]any) { m["extra"] = 1 }, "unknown field"},
		{"format", func(m map[string]any) { m["format"] = "other" }, "format"},
		{"phase", func(m map[string]any) { m["phase"] = "phase3" }, "phase"},
		{"domain", func(m map[string]any) { m["phase1_domain"] = 12 }, "domain"},
		{"path in circuit id", func(m map[string]any) { m["circuits"] = []string{"../x"} }, "circuit id"},
		{"path in file", func(m map[string]any) {
			m["contributions"].([]any)[0].(map[string]any)["file"] = "../../etc/passwd"
		}, "want \"phase1/0001.bin\""},
		{"index out of order", func(m map[string]any) {
			m["contributions"].([]any)[1].(map[string]any)["index"] = 5
		}, "index 5"},
		{"bad hash", func(m map[string]any) {
			m["contributions"].([]any)[0].(map[string]any)["sha256"] = "XYZ"
		}, "sha256"},
		{"beacon in phase 1", func(m map[string]any) { m["phase"] = "phase1" }, "beacon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			_ = json.Unmarshal(good, &m)
			tc.edit(m)
			raw, _ := json.Marshal(m)
			_, err := ParseTranscript(raw)
			if !errors.Is(err, ErrTranscript) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func flipByte(t *testing.T, path string, at int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[at%len(raw)] ^= 0x01
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
