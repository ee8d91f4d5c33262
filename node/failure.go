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
	kinds := []struct {
		err  error
		trap string
	}{
		{sandbox.ErrFuelExhausted, protocol.TrapFuel}, {sandbox.ErrMemoryLimit, protocol.TrapMemory},
		{sandbox.ErrTimeout, protocol.TrapTime}, {sandbox.ErrInvalidModule, protocol.TrapBadModule},
		{sandbox.ErrExit, protocol.TrapNone}, {sandbox.ErrTrap, protocol.TrapGuest},
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return &protocol.Failure{Trap: k.trap, ExitCode: -1, Message: clipMessage(err)}
		}
	}
	return nil
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
