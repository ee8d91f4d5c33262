package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/store"
)

// The chain alone cannot show that whoever holds the store rebuilt it from
// scratch; a checkpoint signed before the rewrite does.
func TestAuditCheckpointCatchesARewrittenChain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n, err := New(ctx, testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"task.submitted", "task.accepted", "apikey.created"} {
		if _, err := n.db.Append(store.AuditEntry{Time: time.Now(), Kind: kind, Subject: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := n.AuditCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if opened, err := protocol.OpenAuditCheckpoint(cp.Envelope); err != nil || opened.NodeID != n.ID().String() || opened.Seq != cp.Seq || opened.Hash != cp.Hash {
		t.Fatalf("checkpoint envelope: %+v, %v", opened, err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	total, err := VerifyAuditFile(dir, cp.Envelope)
	if err != nil || uint64(total) < cp.Seq {
		t.Fatalf("honest chain with its checkpoint: %d, %v", total, err)
	}

	// Another node's checkpoint proves nothing about this chain.
	other := t.TempDir()
	o, err := New(ctx, testConfig(t, other))
	if err != nil {
		t.Fatal(err)
	}
	ocp, err := o.AuditCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	_ = o.Close(ctx)
	if _, err := VerifyAuditFile(dir, ocp.Envelope); err == nil || !strings.Contains(err.Error(), "signed by") {
		t.Fatalf("another node's checkpoint: %v", err)
	}

	// The operator rewrites the whole chain, consistently, with more
	// entries than before.
	path := filepath.Join(dir, StoreFile)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < cp.Seq+2; i++ {
		if _, err := db.Append(store.AuditEntry{Time: time.Now(), Kind: "node.started"}); err != nil {
			t.Fatal(err)
		}
	}
	_ = db.Close()
	if _, err := VerifyAuditFile(dir); err != nil {
		t.Fatalf("the rewritten chain is consistent on its own: %v", err)
	}
	_, err = VerifyAuditFile(dir, cp.Envelope)
	if !errors.Is(err, ErrCheckpointMismatch) || !strings.Contains(err.Error(), "has hash") {
		t.Fatalf("rewritten chain against the checkpoint: %v", err)
	}

	// Or truncates it below the checkpoint.
	_ = os.Remove(path)
	db, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = db.Append(store.AuditEntry{Time: time.Now(), Kind: "node.started"})
	_ = db.Close()
	if _, err := VerifyAuditFile(dir, cp.Envelope); !errors.Is(err, ErrCheckpointMismatch) || !strings.Contains(err.Error(), "entries") {
		t.Fatalf("truncated chain against the checkpoint: %v", err)
	}
}
