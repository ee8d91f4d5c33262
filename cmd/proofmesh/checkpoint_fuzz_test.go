package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/node"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/store"
)

// FuzzAuditVerifyCheckpoint gives arbitrary bytes as the checkpoint file of
// `proofmesh audit verify --checkpoint FILE`, against a stopped node's data
// dir whose chain holds the seeds' entries. The command never panics; a
// refusal names the file (or, once the chain is read, the checkpoint); an
// acceptance means the file reads one way only (no duplicate or
// case-variant key: protocol.DecodeWire accepts it) and everything a person
// reads in it (node, entry, hash, time) is what the node signed.
func FuzzAuditVerifyCheckpoint(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "data")
	if _, err := node.Init(dir); err != nil {
		f.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, node.StoreFile), store.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	for _, kind := range []string{"node.started", "apikey.created", "task.submitted"} {
		if _, err := db.Append(store.AuditEntry{Kind: kind, Subject: "s"}); err != nil {
			f.Fatal(err)
		}
	}
	seq, hash, err := db.AuditHead()
	if err != nil {
		f.Fatal(err)
	}
	if err := db.Close(); err != nil {
		f.Fatal(err)
	}
	key, err := node.LoadIdentity(dir)
	if err != nil {
		f.Fatal(err)
	}
	self, err := peerIDFromKey(key)
	if err != nil {
		f.Fatal(err)
	}
	taken := time.Date(2026, 3, 4, 5, 6, 7, 8e6, time.UTC)
	checkpoint := func(seq uint64, hash string) []byte {
		cp := protocol.AuditCheckpoint{NodeID: self.String(), Seq: seq, Hash: hash, Time: taken.UnixMilli()}
		env, err := protocol.Seal(&cp, key)
		if err != nil {
			f.Fatal(err)
		}
		b, err := json.Marshal(api.AuditCheckpoint{NodeID: cp.NodeID, Seq: seq, Hash: hash, Time: time.UnixMilli(cp.Time).UTC(), Envelope: env})
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	good := checkpoint(seq, hash)
	f.Add(good)
	f.Add(append(append([]byte{}, good...), '\n'))
	f.Add(checkpoint(seq+1, hash))                                                                                          // names an entry the chain lacks
	f.Add(checkpoint(seq, strings.Repeat("0", 64)))                                                                         // signed, but not this chain's hash
	f.Add(bytes.Replace(good, []byte(`"seq":3`), []byte(`"seq":2`), 1))                                                     // visible field edited
	f.Add(bytes.Replace(good, []byte(`"time":"2026-03-04T05:06:07.008Z"`), []byte(`"time":"2027-03-04T05:06:07.008Z"`), 1)) // visible time edited
	f.Add(bytes.Replace(good, []byte(`{"node_id"`), []byte(`{"hash":"`+strings.Repeat("f", 64)+`","node_id"`), 1))          // a second "hash", read first by people
	f.Add([]byte(`{"envelope":""}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`not json`))

	file := filepath.Join(f.TempDir(), "cp.json")
	// The seed that is the node's own checkpoint must pass, or the target
	// would never reach what it checks of an accepted file.
	if err := os.WriteFile(file, good, 0o600); err != nil {
		f.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"audit", "verify", "--data-dir", dir, "--checkpoint", file}, &out, &errb); code != 0 {
		f.Fatalf("the node's own checkpoint is refused: %d %s %s", code, out.String(), errb.String())
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var out, errb bytes.Buffer
		code := run(ctx, []string{"audit", "verify", "--data-dir", dir, "--checkpoint", file}, &out, &errb)
		if ctx.Err() != nil {
			t.Fatalf("audit verify did not return within 20s on %q", raw)
		}
		if code != 0 {
			if !strings.Contains(errb.String(), file) && !strings.Contains(out.String(), "checkpoint 1") {
				t.Fatalf("refusal names neither the file nor the checkpoint: code %d, stdout %q, stderr %q", code, out.String(), errb.String())
			}
			return
		}
		if !strings.Contains(out.String(), "holds all 1 checkpoints") {
			t.Fatalf("exit 0 without the checkpoint verified: %q", out.String())
		}
		var shown api.AuditCheckpoint
		if err := protocol.DecodeWire(raw, len(raw), &shown); err != nil {
			t.Fatalf("accepted a checkpoint file that a person or another parser can read differently (%v):\n%s", err, raw)
		}
		signed, err := protocol.OpenAuditCheckpoint(shown.Envelope)
		if err != nil {
			t.Fatalf("accepted a checkpoint whose envelope does not open: %v", err)
		}
		if shown.NodeID != signed.NodeID || shown.Seq != signed.Seq || shown.Hash != signed.Hash || !shown.Time.Equal(time.UnixMilli(signed.Time)) {
			t.Fatalf("accepted a checkpoint that shows node %s, entry %d, hash %s, time %s but signs node %s, entry %d, hash %s, time %s:\n%s",
				shown.NodeID, shown.Seq, shown.Hash, shown.Time.UTC().Format(time.RFC3339Nano),
				signed.NodeID, signed.Seq, signed.Hash, time.UnixMilli(signed.Time).UTC().Format(time.RFC3339Nano), raw)
		}
	})
}
