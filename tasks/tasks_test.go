package tasks_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/protocol/spec"
	"github.com/proofmesh/proofmesh/tasks"
)

// TestMain checks that the sandboxes of the guest tests leave no
// goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestModuleLookup checks the lookup contract the node relies on: every
// built-in type has a module whose content address is ModuleHash, and
// unknown types have neither.
func TestModuleLookup(t *testing.T) {
	ids := tasks.TypeIDs()
	if want := []string{spec.TypeMiMCChain, spec.TypeMLPInfer}; !slices.Equal(ids, want) {
		t.Fatalf("TypeIDs() = %v, want %v", ids, want)
	}
	for _, id := range ids {
		m, ok := tasks.Module(id)
		if !ok || len(m) == 0 {
			t.Fatalf("Module(%q) = %d bytes, %v", id, len(m), ok)
		}
		if !bytes.HasPrefix(m, []byte("\x00asm\x01\x00\x00\x00")) {
			t.Errorf("Module(%q) is not a WASM binary", id)
		}
		h := tasks.ModuleHash(id)
		if h != protocol.HashHex(m) {
			t.Errorf("ModuleHash(%q) = %s, HashHex(module) = %s", id, h, protocol.HashHex(m))
		}
		if h != strings.ToLower(h) || len(h) != 64 {
			t.Errorf("ModuleHash(%q) = %q, want 64 lower-case hex digits", id, h)
		}
	}
	for _, id := range []string{spec.TypeWASMExec, "", "mimc.chain.v2"} {
		if m, ok := tasks.Module(id); ok || m != nil {
			t.Errorf("Module(%q) = %d bytes, %v; want nothing", id, len(m), ok)
		}
		if h := tasks.ModuleHash(id); h != "" {
			t.Errorf("ModuleHash(%q) = %q, want empty", id, h)
		}
	}
	if tasks.ModuleHash(spec.TypeMiMCChain) == tasks.ModuleHash(spec.TypeMLPInfer) {
		t.Error("both types have the same module")
	}
}

// TestEmbeddedMatchChecksums checks the embedded modules against
// SHA256SUMS, which build.sh writes next to them: a module replaced without
// a rebuild is caught even where the toolchain differs.
func TestEmbeddedMatchChecksums(t *testing.T) {
	sums := readSums(t, "SHA256SUMS")
	for file, id := range map[string]string{"mimc.wasm": spec.TypeMiMCChain, "mlp.wasm": spec.TypeMLPInfer} {
		if got := tasks.ModuleHash(id); sums[file] != got {
			t.Errorf("%s: SHA256SUMS says %s, embedded module hashes to %s", file, sums[file], got)
		}
	}
}

// TestModulesRebuildReproducibly rebuilds the guests from source with
// build.sh and checks that the result is byte for byte the committed
// modules. The bytes depend on the Go toolchain, so the check runs only
// with the toolchain recorded in TOOLCHAIN.
func TestModulesRebuildReproducibly(t *testing.T) {
	if testing.Short() || os.Getenv("PROOFMESH_REBUILD_WASM") == "" {
		t.Skip("rebuilds the WASM guests with the Go toolchain (a minute under -race): run `make check-wasm`")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found: cannot run build.sh")
	}
	recorded, err := os.ReadFile("TOOLCHAIN")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Skipf("go command unavailable: %v", err)
	}
	if have, want := strings.TrimSpace(string(out)), strings.TrimSpace(string(recorded)); have != want {
		t.Skipf("toolchain %s, modules were built with %s: bytes may differ", have, want)
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", "build.sh", dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	for _, id := range tasks.TypeIDs() {
		file := strings.SplitN(id, ".", 2)[0] + ".wasm"
		fresh, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		committed, _ := tasks.Module(id)
		if !bytes.Equal(fresh, committed) {
			t.Errorf("%s: fresh build hashes to %s, committed module to %s: run `make wasm` and commit",
				file, protocol.HashHex(fresh), protocol.HashHex(committed))
		}
	}
}

func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			t.Fatalf("%s: bad line %q", path, sc.Text())
		}
		sums[fields[1]] = fields[0]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sums
}
