package zk

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsAreAllowed keeps the layering of DESIGN.md: zk (and its
// command) imports only the standard library, gnark, gnark-crypto, zerolog
// (to silence gnark's logger), protocol/spec and zk itself.
func TestImportsAreAllowed(t *testing.T) {
	allowed := []string{
		"github.com/consensys/gnark/", "github.com/consensys/gnark-crypto/", "github.com/rs/zerolog",
		"github.com/proofmesh/proofmesh/protocol/spec", "github.com/proofmesh/proofmesh/zk",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ := filepath.Glob("cmd/*/*.go")
	for _, name := range append(files, cmd...) {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			ok := !strings.Contains(strings.SplitN(path, "/", 2)[0], ".") // standard library
			for _, a := range allowed {
				ok = ok || path == strings.TrimSuffix(a, "/") || strings.HasPrefix(path, a)
			}
			if !ok {
				t.Errorf("%s imports %s, which zk may not depend on", name, path)
			}
		}
	}
}
