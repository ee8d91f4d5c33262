package node

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/sandbox"
)

// Every trap kind the sandbox reports becomes a failure report that the
// protocol accepts on the wire (the two packages spell the kinds alike;
// this keeps them so), and a stop that is not the module's fault is no
// report at all.
func TestFailureReportsOfEveryTrapKind(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []sandbox.TrapKind{sandbox.TrapNone, sandbox.TrapFuel, sandbox.TrapMemory, sandbox.TrapTime,
		sandbox.TrapStack, sandbox.TrapOutputLimit, sandbox.TrapBadModule, sandbox.TrapGuest}
	for _, k := range kinds {
		code := -1
		if k == sandbox.TrapNone {
			code = 3
		}
		f := failureReport(&sandbox.Failure{Kind: k, ExitCode: code, Stderr: make([]byte, 4096), Err: errors.New("x")})
		if f == nil || f.Trap != string(k) || len(f.Stderr) != protocol.MaxStderrTail {
			t.Fatalf("kind %q: report %+v", k, f)
		}
		r := &protocol.Result{TaskID: protocol.HashHex(nil), Type: "wasm.exec.v1", Executor: id.String(), OutputHash: protocol.HashHex(nil), Failure: f}
		env, err := protocol.Seal(r, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := protocol.OpenResult(env); err != nil {
			t.Fatalf("kind %q: the wire refuses the report: %v", k, err)
		}
	}
	if f := failureReport(errors.New("context canceled")); f != nil {
		t.Fatalf("a stop reported as a failure: %+v", f)
	}
}
