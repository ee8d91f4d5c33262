package node

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/store"
)

// newerTask is a task of a later release of protocol major 1, with an
// optional field this release does not know.
type newerTask struct {
	protocol.Task
	Priority string `json:"priority"`
}

func (*newerTask) Domain() string                   { return protocol.DomainTask }
func (*newerTask) Codec() []byte                    { return (&protocol.Task{}).Codec() }
func (t *newerTask) MarshalRecord() ([]byte, error) { return json.Marshal(t) }
func (t *newerTask) UnmarshalRecord(b []byte) error { return json.Unmarshal(b, t) }

// Issue 13: within a major, a newer release's task (one more field, its id
// over all of its bytes) is accepted, executed, proven and settled by
// nodes of this release, and its bundle verifies offline.
func TestNewerReleasesTaskAcceptedThroughGossip(t *testing.T) {
	tn := startTestnet(t, 2, nil)
	sub, exec := tn.Nodes[0], tn.Nodes[1]
	tt := sub.reg["mimc.chain.v1"]
	in := []byte(`{"x":"7"}`)
	now := time.Now()
	nt := &newerTask{Task: protocol.Task{
		Type: tt.ID, Input: in, InputHash: protocol.HashHex(in), InputSize: len(in), Submitter: sub.ID().String(),
		Created: now.UnixMilli(), Replicas: 1, Candidates: []string{exec.ID().String(), sub.ID().String()}, LeaseMS: tt.SLO.LeaseMS,
	}, Priority: "high"}
	nt.Deadline = protocol.MaxDeadline(nt.Created, 2, 1, tt.Lease())
	b, _ := json.Marshal(nt)
	nt.ID = protocol.HashHex(b) // the newer release's content id: its encoding with the id empty
	env, err := protocol.Seal(nt, sub.key)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := (&protocol.TaskMessage{Task: env}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Published until the executor has it: the gossip mesh may still be
	// forming.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := sub.Mesh().Publish(context.Background(), mesh.KindTasks, msg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if _, err := exec.db.GetTaskByPrefix(nt.ID); err == nil {
			break
		} else if !errors.Is(err, store.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("the executor never took the newer task: %v", err)
		}
	}
	v := waitTask(t, exec, nt.ID, 2*time.Minute)
	if v.State != protocol.StateAccepted {
		t.Fatalf("newer task %s: %s", v.State, v.Reason)
	}
	bundle, err := exec.Bundle(nt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := exec.VerifyBundle(bundle); err != nil || !rep.Valid {
		t.Fatalf("bundle of the newer task: %v %+v", err, rep)
	}
}
