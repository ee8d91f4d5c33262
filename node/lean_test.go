package node

import (
	"context"
	"testing"
)

// TestIdleNodeHoldsNoProvingKeyOrModule: a node that has not proved or run
// anything holds no proving key and no compiled module in memory (they are
// megabytes each); they load at the first proof or run that needs them.
func TestIdleNodeHoldsNoProvingKeyOrModule(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.KeysDir = "../zk/keys" // a key set of its own: other tests prove with the shared default one
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	for _, c := range n.keys.Circuits() {
		if !n.keys.HasProvingKey(c) {
			t.Errorf("%s: the node has no proving key", c)
		}
		if n.keys.ProvingKeyLoaded(c) {
			t.Errorf("%s: proving key in memory on a node that never proved", c)
		}
	}
	if m := n.sb.CompiledModules(); m != 0 {
		t.Errorf("%d modules compiled in memory on a node that never ran one", m)
	}
}
