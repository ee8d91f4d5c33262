package protocol

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps the architecture of DESIGN.md: lower packages never
// reach higher ones or the heavy dependencies of their siblings, and each
// heavy dependency is imported directly by one package only.
func TestLayering(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	const mod = "github.com/proofmesh/proofmesh/"
	const (
		libp2pHost = "github.com/libp2p/go-libp2p/p2p/"
		pubsub     = "github.com/libp2p/go-libp2p-pubsub"
		kad        = "github.com/libp2p/go-libp2p-kad-dht"
		bbolt      = "go.etcd.io/bbolt"
		wazero     = "github.com/tetratelabs/wazero"
		gnark      = "github.com/consensys/gnark"
	)
	forbidden := map[string][]string{
		"protocol":  {libp2pHost, pubsub, kad, bbolt, wazero, gnark, mod + "store", mod + "mesh", mod + "node", mod + "zk", mod + "sandbox"},
		"store":     {libp2pHost, pubsub, kad, wazero, gnark, mod + "mesh", mod + "node", mod + "zk", mod + "sandbox"},
		"sandbox":   {"github.com/libp2p/", bbolt, gnark, mod + "mesh", mod + "node", mod + "store", mod + "zk"},
		"zk":        {"github.com/libp2p/", bbolt, wazero, mod + "mesh", mod + "node", mod + "store", mod + "sandbox"},
		"mesh":      {bbolt, wazero, gnark, mod + "store", mod + "node", mod + "zk", mod + "sandbox"},
		"bootstrap": {bbolt, wazero, gnark, mod + "store", mod + "node", mod + "zk", mod + "sandbox"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				if strings.HasPrefix(dep, b) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
	owners := map[string]string{bbolt: "store", wazero: "sandbox", gnark: "zk", pubsub: "mesh", kad: "mesh"}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		for _, imp := range f[1:] {
			for dep, owner := range owners {
				if strings.HasPrefix(imp, dep) && pkg != owner && !strings.HasPrefix(pkg, owner+"/") {
					t.Errorf("%s imports %s, which only %s may import", pkg, imp, owner)
				}
			}
		}
	}
}
