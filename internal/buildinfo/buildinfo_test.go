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
