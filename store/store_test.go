package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/proofmesh/proofmesh/protocol"
)

// openT opens a store in a fresh temp dir and closes it at cleanup.
func openT(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "proofmesh.db")
	return reopenT(t, path), path
}

func reopenT(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// rawUpdate edits the closed store file with bbolt directly, as an
// attacker or a disk fault would.
func rawUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenCreatesSchema(t *testing.T) {
	db, path := openT(t)
	v, err := db.SchemaVersion()
	if err != nil || v != CurrentSchema {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, CurrentSchema)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("store file mode %v is readable by others", st.Mode().Perm())
	}
}

func TestSchemaTable(t *testing.T) {
	if len(migrations) != CurrentSchema {
		t.Fatalf("%d migrations but CurrentSchema is %d: bump it with the table", len(migrations), CurrentSchema)
	}
}

func TestOptionsValidate(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "x.db"), Options{Timeout: -time.Second}); err == nil {
		t.Fatal("negative timeout accepted")
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	db, path := openT(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	peers := []Peer{
		{ID: "12D3KooWA", FirstSeen: t0, LastSeen: t0.Add(time.Minute), Status: protocol.StatusOnline,
			Heartbeat: json.RawMessage(`{"node_id":"12D3KooWA","seq":7}`), IntervalMS: 1000, Seq: 7, Verified: 3, Invalid: 1},
		{ID: "12D3KooWB", FirstSeen: t0, LastSeen: t0, Status: protocol.StatusDeleted, DeletedAt: t0.Add(time.Hour), LeaveReason: "shutdown"},
	}
	if err := db.PutPeers(peers); err != nil {
		t.Fatal(err)
	}
	task := protocol.Task{ID: "t1", Type: "mimc.chain.v1", Input: []byte(`{"x":"3"}`), Created: t0.UnixMilli(), Replicas: 1}
	if err := db.CreateTask(TaskRecord{Task: task, Origin: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Advance("t1", protocol.StateAssigned, Event{Peer: "12D3KooWA"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateTask("t1", func(r *TaskRecord) error {
		r.Executors = append(r.Executors, "12D3KooWA")
		r.Output = []byte{0, 1, 2, 0xff}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutResult("t1", "12D3KooWA", []byte("envelope")); err != nil {
		t.Fatal(err)
	}
	hash, err := db.PutBlob([]byte("\x00asm module"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := db.Append(AuditEntry{Kind: "test", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	wantTask, _ := db.GetTask("t1")
	wantPeers, _ := db.ListPeers()
	wantAudit, _ := db.AuditEntries(0, 0)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = reopenT(t, path)
	gotPeers, err := db.ListPeers()
	if err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, gotPeers) != mustJSON(t, wantPeers) || len(gotPeers) != 2 {
		t.Fatalf("peers after reopen:\n got %s\nwant %s", mustJSON(t, gotPeers), mustJSON(t, wantPeers))
	}
	if !gotPeers[0].LastSeen.Equal(t0.Add(time.Minute)) || !gotPeers[1].DeletedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("times lost: %+v", gotPeers)
	}
	gotTask, err := db.GetTask("t1")
	if err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, gotTask) != mustJSON(t, wantTask) {
		t.Fatalf("task after reopen:\n got %s\nwant %s", mustJSON(t, gotTask), mustJSON(t, wantTask))
	}
	if gotTask.State != protocol.StateAssigned || len(gotTask.Timeline) != 2 || !gotTask.Origin || !bytes.Equal(gotTask.Output, []byte{0, 1, 2, 0xff}) {
		t.Fatalf("task after reopen: %+v", gotTask)
	}
	res, err := db.Results("t1")
	if err != nil || string(res["12D3KooWA"]) != "envelope" || len(res) != 1 {
		t.Fatalf("Results = %q, %v", res, err)
	}
	if b, err := db.GetBlob(hash); err != nil || string(b) != "\x00asm module" {
		t.Fatalf("GetBlob = %q, %v", b, err)
	}
	gotAudit, err := db.AuditEntries(0, 0)
	if err != nil || mustJSON(t, gotAudit) != mustJSON(t, wantAudit) {
		t.Fatalf("audit after reopen: %v\n got %s\nwant %s", err, mustJSON(t, gotAudit), mustJSON(t, wantAudit))
	}
	if n, err := db.VerifyAudit(); n != 3 || err != nil {
		t.Fatalf("VerifyAudit = %d, %v", n, err)
	}
	// The chain continues where it stopped.
	e, err := db.Append(AuditEntry{Kind: "test"})
	if err != nil || e.Seq != 4 || e.Prev != wantAudit[2].Hash {
		t.Fatalf("Append after reopen = %+v, %v", e, err)
	}
}

func TestNotADatabaseLeftIntact(t *testing.T) {
	for name, content := range map[string][]byte{
		"short text": []byte("identity key, not a database\n"),
		"one page":   bytes.Repeat([]byte{0xAB}, 4096),
		"many pages": bytes.Repeat([]byte("0123456789abcdef"), 4096),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "proofmesh.db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path, Options{})
			if err == nil {
				db.Close()
				t.Fatal("Open accepted a file that is not a database")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q should wrap ErrCorrupt and name %s", err, path)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, content) {
				t.Fatal("Open modified a file that is not a database")
			}
		})
	}
}

func TestForeignBoltFileLeftIntact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("someone-else"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	before, _ := os.ReadFile(path)
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "someone-else") {
		t.Fatalf("Open = %v; want ErrCorrupt naming the foreign bucket", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("Open modified a foreign bbolt file")
	}
}

func TestLockedBySecondOpen(t *testing.T) {
	_, path := openT(t)
	start := time.Now()
	_, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open = %v; want ErrLocked naming %s", err, path)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open waited %s", d)
	}
	if _, err := Open(path, Options{ReadOnly: true, Timeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only Open of a held file = %v; want ErrLocked", err)
	}
	if _, err := VerifyAuditFile(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("VerifyAuditFile of a held file = %v; want ErrLocked", err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	db, path := openT(t)
	db.Close()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, be64(uint64(CurrentSchema+7)))
	})
	before, _ := os.ReadFile(path)
	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: ro})
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("Open(ReadOnly=%v) = %v; want ErrSchemaTooNew", ro, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, fmt.Sprintf("schema %d", CurrentSchema+7)) || !strings.Contains(msg, fmt.Sprintf("up to %d", CurrentSchema)) || !strings.Contains(msg, path) {
			t.Fatalf("error %q should name both versions and the file", msg)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("Open modified a file with a newer schema")
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proofmesh.db")
	db, err := open(path, Options{NoSync: true}, migrations)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutPeer(Peer{ID: "p", Status: protocol.StatusOnline}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// A failing migration leaves the file at its old version, with
	// nothing of the migration written.
	failing := append(append([]migration(nil), migrations...),
		migration{"marker", func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("v2"))
			return err
		}},
		migration{"fails", func(*bolt.Tx) error { return errors.New("disk says no") }},
	)
	if _, err := open(path, Options{}, failing); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("migrate schema %d to %d", CurrentSchema+1, CurrentSchema+2)) {
		t.Fatalf("failing migration: %v", err)
	}
	db = reopenT(t, path)
	if v, _ := db.SchemaVersion(); v != CurrentSchema {
		t.Fatalf("version after failed migration = %d", v)
	}
	_ = db.View(func(tx *Tx) error {
		if tx.tx.Bucket([]byte("v2")) != nil {
			t.Error("a failed migration run left partial writes")
		}
		return nil
	})
	db.Close()

	// Read-only never migrates.
	good := failing[:len(failing)-1]
	if _, err := open(path, Options{ReadOnly: true}, good); err == nil || !strings.Contains(err.Error(), "migrate") {
		t.Fatalf("read-only open of an old schema: %v", err)
	}
	db, err = open(path, Options{}, good)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(); v != len(good) {
		t.Fatalf("version after migration = %d, want %d", v, len(good))
	}
	if p, err := db.GetPeer("p"); err != nil || p.ID != "p" {
		t.Fatalf("data lost in migration: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	db, path := openT(t)
	if _, err := db.Append(AuditEntry{Kind: "node.started"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, _ := os.ReadFile(path)
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.PutPeer(Peer{ID: "x", Status: protocol.StatusOnline}); err == nil {
		t.Fatal("read-only store accepted a write")
	}
	// Two readers may share the file.
	if n, err := VerifyAuditFile(path); n != 1 || err != nil {
		t.Fatalf("VerifyAuditFile = %d, %v", n, err)
	}
	ro.Close()
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("read-only open modified the file")
	}
	if _, err := VerifyAuditFile(filepath.Join(t.TempDir(), "missing.db")); err == nil || !strings.Contains(err.Error(), "missing.db") {
		t.Fatalf("VerifyAuditFile of a missing file = %v", err)
	}
}

// TestImports keeps the layering of DESIGN.md: store imports bbolt,
// protocol and the standard library only.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for imp := range strings.FieldsSeq(string(out)) {
		switch {
		case imp == "go.etcd.io/bbolt", imp == "go.etcd.io/bbolt/errors", imp == "github.com/proofmesh/proofmesh/protocol":
		case !strings.Contains(strings.Split(imp, "/")[0], "."):
		default:
			t.Errorf("store imports %s", imp)
		}
	}
}
