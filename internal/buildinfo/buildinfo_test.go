package buildinfo

import (
	"strings"
	"testing"
)

func TestStampedVersionWins(t *testing.T) {
	old, oldC := version, commit
	t.Cleanup(func() { version, commit = old, oldC })
	version, commit = "v1.2.3-4-gabcdef0-dirty", "abcdef0123456789"
	if Version() != "v1.2.3-4-gabcdef0-dirty" || Commit() != "abcdef0123456789" {
		t.Fatalf("Version %q Commit %q", Version(), Commit())
	}
	s := String(1)
	for _, want := range []string{"proofmesh v1.2.3-4-gabcdef0-dirty\n", "commit    abcdef0123456789\n", "protocol  1\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q lacks %q", s, want)
		}
	}
}

func TestUnstampedVersionFallsBack(t *testing.T) {
	old, oldC := version, commit
	t.Cleanup(func() { version, commit = old, oldC })
	version, commit = "", ""
	if v := Version(); v == "" {
		t.Fatal("empty version")
	}
	if c := Commit(); c == "" {
		t.Fatal("empty commit")
	}
}

// A tag with bytes peers would refuse in a heartbeat still gives a usable
// version.
func TestStampedVersionCleaned(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	for in, want := range map[string]string{
		"v1.0.0@rc#1 beta":      "v1.0.0-rc-1-beta",
		strings.Repeat("v", 70): strings.Repeat("v", 64),
		"v2.0.0-1-gabc_def+x/y": "v2.0.0-1-gabc_def+x/y",
	} {
		version = in
		if got := Version(); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}
