package main

import (
	"strings"
	"testing"

	"github.com/proofmesh/proofmesh/internal/buildinfo"
	"github.com/proofmesh/proofmesh/protocol"
)

// proofmesh --version and proofmesh version print the same: the release,
// the commit and the wire protocol's major.
func TestVersionFlagAndCommand(t *testing.T) {
	want := buildinfo.String(protocol.ProtocolMajor)
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || out != want {
			t.Fatalf("%v: exit %d, stdout %q (want %q), stderr %q", args, code, out, want, errs)
		}
		if !strings.HasPrefix(out, "proofmesh "+buildinfo.Version()+"\n") || !strings.Contains(out, "commit    "+buildinfo.Commit()) || !strings.Contains(out, "protocol  1\n") {
			t.Fatalf("%v: %q", args, out)
		}
	}
}
