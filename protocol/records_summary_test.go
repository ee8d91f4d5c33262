package protocol

import "testing"

// A failure's one line names the trap once: a guest's own trap is "trap"
// with its message, not "trap trap" (an operator's walkthrough of
// 2026-12-07 read "trap trap (sandbox: module trapped…)").
func TestFailureSummaryNamesTheTrapOnce(t *testing.T) {
	for _, c := range []struct {
		f    Failure
		want string
	}{
		{Failure{ExitCode: 3}, "exit code 3"},
		{Failure{Trap: TrapFuel}, "trap fuel"},
		{Failure{Trap: TrapGuest, Message: "unreachable"}, "trap (unreachable)"},
		{Failure{Trap: TrapGuest, Stderr: []byte("boom")}, `trap, stderr: "boom"`},
	} {
		if got := c.f.Summary(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.f, got, c.want)
		}
	}
}
