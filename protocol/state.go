package protocol

import "fmt"

// TaskState is a task's state as a person sees it.
type TaskState string

// Task states, in lifecycle order.
const (
	StatePending   TaskState = "pending"
	StateAssigned  TaskState = "assigned"
	StateRunning   TaskState = "running"
	StateProving   TaskState = "proving"
	StateVerifying TaskState = "verifying"
	StateAccepted  TaskState = "accepted"
	StateFailed    TaskState = "failed"
	StateCanceled  TaskState = "canceled"
)

var stateOrder = map[TaskState]int{
	StatePending: 0, StateAssigned: 1, StateRunning: 2, StateProving: 3,
	StateVerifying: 4, StateAccepted: 5, StateFailed: 5, StateCanceled: 5,
}

// Terminal reports whether no transition leaves s.
func (s TaskState) Terminal() bool {
	return s == StateAccepted || s == StateFailed || s == StateCanceled
}

// Valid reports whether s is a known state.
func (s TaskState) Valid() bool { _, ok := stateOrder[s]; return ok }

// Transition checks a state change: terminal states never change; failed is
// reachable from every other state; otherwise a task moves forward (gossip
// may skip a step) or back to assigned when a later candidate takes over.
func Transition(from, to TaskState) error {
	switch {
	case !from.Valid() || !to.Valid():
		return fmt.Errorf("%w: %q -> %q: unknown state", ErrBadTransition, from, to)
	case from.Terminal():
		return fmt.Errorf("%w: %s is final", ErrBadTransition, from)
	case to == StateFailed || to == StateCanceled:
		return nil
	case to == StateAssigned && from != StatePending && from != StateAssigned:
		return nil // takeover by the next candidate
	case stateOrder[to] > stateOrder[from]:
		return nil
	}
	return fmt.Errorf("%w: %s -> %s", ErrBadTransition, from, to)
}
