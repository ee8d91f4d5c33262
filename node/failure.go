package node

import (
	"errors"

	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/sandbox"
)

// failureReport turns a sandbox error into the failure report an executor
// publishes, or nil when the run did not fail through the module (the
// node was stopped, the task canceled): those are not the module's fault
// and are not reported.
func failureReport(err error) *protocol.Failure {
	var f *sandbox.Failure
	if !errors.As(err, &f) {
		return nil
	}
	rep := &protocol.Failure{Trap: string(f.Kind), ExitCode: f.ExitCode, Message: clipMessage(f.Err)}
	if len(f.Stderr) > 0 {
		rep.Stderr = f.Stderr[max(len(f.Stderr)-protocol.MaxStderrTail, 0):]
	}
	if rep.Trap == protocol.TrapNone && rep.ExitCode == 0 {
		rep.Trap, rep.ExitCode = protocol.TrapGuest, -1 // never confused with success
	}
	return rep
}

func clipMessage(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
