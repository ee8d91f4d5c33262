package node

import (
	"fmt"
	"testing"
	"time"
)

// The buffer of early messages stays within its bounds however many a
// peer sends: per task, in total, and in age.
func TestEarlyBufferBounded(t *testing.T) {
	b := newEarlyBuffer(100, 4, time.Minute)
	now := time.Now()
	for i := range 10 {
		b.add("one", earlyMessage{kind: "results", data: []byte(fmt.Sprint(i)), at: now})
	}
	if got := len(b.take("one")); got != 4 {
		t.Fatalf("%d kept for one task, limit 4", got)
	}
	for i := range 1000 {
		b.add(fmt.Sprint("task", i), earlyMessage{kind: "results", data: []byte("x"), at: now.Add(time.Duration(i) * time.Millisecond)})
	}
	if b.len() != 100 {
		t.Fatalf("%d kept, limit 100", b.len())
	}
	if len(b.take("task0")) != 0 || len(b.take("task999")) != 1 {
		t.Fatal("the oldest should go first")
	}
	b.expire(now.Add(2 * time.Minute))
	if b.len() != 0 {
		t.Fatalf("%d kept past their age", b.len())
	}
}

// A flood through one forwarder evicts its own messages, not an honest
// forwarder's (issue 11's attacker filled the buffer with junk progress).
func TestEarlyBufferEvictsTheLargestForwarderFirst(t *testing.T) {
	b := newEarlyBuffer(10, 4, time.Minute)
	now := time.Now()
	b.add("honest-task", earlyMessage{kind: "results", via: "honest", data: []byte("result"), at: now})
	for i := range 100 {
		b.add(fmt.Sprint("junk", i), earlyMessage{kind: "tasks", via: "flooder", data: []byte(fmt.Sprint(i)), at: now.Add(time.Duration(i+1) * time.Millisecond)})
	}
	if b.len() != 10 || len(b.take("honest-task")) != 1 {
		t.Fatalf("%d kept; the honest message was evicted by the flood", b.len())
	}
}
