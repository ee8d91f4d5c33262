package buildinfo

import (
	"os"
	"regexp"
	"testing"
)

// The build scripts stamp this package's variables: a -X naming anything
// else is dropped by the linker without a word, and the binary says "dev"
// (the compose testnet's did, until an operator's walkthrough of
// 2026-12-07 saw "dev" in every node's VERSION column).
func TestBuildScriptsStampThisPackage(t *testing.T) {
	stamp := regexp.MustCompile(`-X ([^ "=]+)=`)
	for _, f := range []string{"../../Makefile", "../../testnet/up.sh"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]bool{}
		for _, m := range stamp.FindAllStringSubmatch(string(b), -1) {
			switch m[1] {
			case "github.com/proofmesh/proofmesh/internal/buildinfo.version", "github.com/proofmesh/proofmesh/internal/buildinfo.commit":
				found[m[1]] = true
			default:
				t.Errorf("%s stamps %s, which is not a variable of internal/buildinfo", f, m[1])
			}
		}
		if len(found) != 2 {
			t.Errorf("%s stamps %d of internal/buildinfo's version and commit, want both", f, len(found))
		}
	}
}
