// Package buildinfo knows which build of proofmesh is running: the release
// (git describe) and the commit, stamped by `make build` with
//
//	-ldflags "-X github.com/proofmesh/proofmesh/internal/buildinfo.version=$(git describe --tags --always --dirty)
//	          -X github.com/proofmesh/proofmesh/internal/buildinfo.commit=$(git rev-parse HEAD)"
//
// A plain `go build` in a git checkout falls back to the VCS stamp the Go
// toolchain embeds (vcs.revision, vcs.modified); anything else is "dev".
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker (-X); empty in a plain build.
var (
	version string
	commit  string
)

// Version returns the release: the stamped git describe string
// ("v0.4.0", "v0.4.0-3-g1a2b3c4-dirty"), else the short VCS revision the
// toolchain embedded ("1a2b3c4d5e6f", "-dirty" when modified), else "dev".
//
// It is always 1-64 of [A-Za-z0-9._+/-], the alphabet peers accept in a
// heartbeat: any other byte of a tag becomes "-".
func Version() string {
	if version != "" {
		return clean(version)
	}
	if rev, dirty := vcs(); rev != "" {
		v := rev
		if len(v) > 12 {
			v = v[:12]
		}
		if dirty {
			v += "-dirty"
		}
		return v
	}
	return "dev"
}

// clean maps v into the heartbeat's version alphabet and length.
func clean(v string) string {
	b := []byte(v)
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '+' || c == '/' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

// Commit returns the full commit hash of the build, or "unknown".
func Commit() string {
	if commit != "" {
		return commit
	}
	if rev, _ := vcs(); rev != "" {
		return rev
	}
	return "unknown"
}

// String is what `proofmesh version` prints: release, commit, wire
// protocol major and Go version, one per line.
func String(protocolMajor int) string {
	return fmt.Sprintf("proofmesh %s\ncommit    %s\nprotocol  %d\ngo        %s\n", Version(), Commit(), protocolMajor, runtime.Version())
}

// vcs returns the revision and modified flag the Go toolchain embedded.
func vcs() (rev string, dirty bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", false
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	return rev, dirty
}
