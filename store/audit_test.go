package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// chainT makes a store with an audit chain of n entries and closes it.
func chainT(t *testing.T, n int) (string, []AuditEntry) {
	t.Helper()
	db, path := openT(t)
	var es []AuditEntry
	for i := range n {
		e, err := db.Append(AuditEntry{Kind: "auth.failure", Actor: fmt.Sprintf("tok:%04x", i), Subject: "/api/v1/tasks", Detail: fmt.Sprintf("attempt %d", i+1)})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path, es
}

func TestAuditAppend(t *testing.T) {
	db, _ := openT(t)
	at := time.Date(2026, 5, 6, 7, 8, 9, 10, time.FixedZone("X", 3600))
	e1, err := db.Append(AuditEntry{Kind: "node.joined", Actor: "self", Time: at, Seq: 99, Prev: "forged", Hash: "forged"})
	if err != nil {
		t.Fatal(err)
	}
	if e1.Seq != 1 || e1.Prev != "" || e1.Hash != AuditHash(&e1) || !e1.Time.Equal(at) || e1.Time.Location() != time.UTC {
		t.Fatalf("first entry = %+v", e1)
	}
	e2, err := db.Append(AuditEntry{Kind: "peer.deleted", Subject: "12D3KooWX"})
	if err != nil {
		t.Fatal(err)
	}
	if e2.Seq != 2 || e2.Prev != e1.Hash || e2.Time.IsZero() {
		t.Fatalf("second entry = %+v", e2)
	}
	seq, hash, err := db.AuditHead()
	if err != nil || seq != 2 || hash != e2.Hash {
		t.Fatalf("AuditHead = %d %s %v", seq, hash, err)
	}
	for i := 3; i <= 10; i++ {
		if _, err := db.Append(AuditEntry{Kind: "k"}); err != nil {
			t.Fatal(err)
		}
	}
	es, err := db.AuditEntries(4, 3)
	if err != nil || len(es) != 3 || es[0].Seq != 4 || es[2].Seq != 6 {
		t.Fatalf("AuditEntries(4, 3) = %+v, %v", es, err)
	}
	if es, _ := db.AuditEntries(0, 0); len(es) != 10 {
		t.Fatalf("AuditEntries(0, 0) = %d entries", len(es))
	}
	if es, _ := db.AuditEntries(11, 5); len(es) != 0 {
		t.Fatalf("AuditEntries past the end = %d entries", len(es))
	}
	if _, err := db.Append(AuditEntry{}); err == nil {
		t.Fatal("entry without kind accepted")
	}
}

// Strings an attacker controls (a token, a path) are stored so that the
// chain still verifies: invalid UTF-8 and huge values included.
func TestAuditHostileStrings(t *testing.T) {
	db, path := openT(t)
	huge := strings.Repeat("é", maxAuditField) // 2 bytes per rune: cut on a boundary
	e, err := db.Append(AuditEntry{Kind: "auth.failure", Actor: "\xff\xfe\x00bad", Subject: "../../etc\x00", Detail: huge})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Detail) > maxAuditField+len("…") || !strings.HasSuffix(e.Detail, "…") {
		t.Fatalf("detail not clipped: %d bytes", len(e.Detail))
	}
	db.Close()
	db = reopenT(t, path)
	if n, err := db.VerifyAudit(); n != 1 || err != nil {
		t.Fatalf("VerifyAudit = %d, %v", n, err)
	}
	got, _ := db.AuditEntries(1, 1)
	if got[0].Actor != e.Actor || got[0].Detail != e.Detail {
		t.Fatal("stored entry differs from the one Append returned")
	}
}

func TestAuditHashUnambiguous(t *testing.T) {
	a := AuditEntry{Seq: 1, Kind: "ab", Actor: "c"}
	b := AuditEntry{Seq: 1, Kind: "a", Actor: "bc"}
	c := AuditEntry{Seq: 1, Kind: "a", Subject: "bc"}
	if AuditHash(&a) == AuditHash(&b) || AuditHash(&b) == AuditHash(&c) {
		t.Fatal("moving bytes between fields keeps the hash")
	}
	d := a
	d.Time = time.Unix(0, 1)
	if AuditHash(&a) == AuditHash(&d) {
		t.Fatal("time not covered by the hash")
	}
}

func TestAuditTamperDetected(t *testing.T) {
	// edit rewrites the stored JSON of entry seq.
	edit := func(seq uint64, fn func(e *AuditEntry)) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAudit)
			var e AuditEntry
			if err := json.Unmarshal(b.Get(be64(seq)), &e); err != nil {
				return err
			}
			fn(&e)
			v, err := json.Marshal(&e)
			if err != nil {
				return err
			}
			return b.Put(be64(seq), v)
		}
	}
	for _, c := range []struct {
		name   string
		tamper func(*bolt.Tx) error
		want   string // in the error
	}{
		{"edited detail", edit(3, func(e *AuditEntry) { e.Detail = "nothing happened" }), "at seq 3: hash mismatch"},
		{"edited actor", edit(1, func(e *AuditEntry) { e.Actor = "someone else" }), "at seq 1: hash mismatch"},
		{"edited time", edit(4, func(e *AuditEntry) { e.Time = e.Time.Add(-time.Hour) }), "at seq 4: hash mismatch"},
		{"edited prev", edit(3, func(e *AuditEntry) { e.Prev = strings.Repeat("0", 64) }), "at seq 3: hash mismatch"},
		{"edited prev, hash recomputed", edit(3, func(e *AuditEntry) {
			e.Prev = strings.Repeat("0", 64)
			e.Hash = AuditHash(e)
		}), "at seq 3: broken link"},
		{"edited detail, hash recomputed", edit(3, func(e *AuditEntry) {
			e.Detail = "nothing happened"
			e.Hash = AuditHash(e)
		}), "at seq 4: broken link: prev"},
		{"middle entry deleted", func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(be64(3)) }, "at seq 3: entry missing (next entry is seq 4)"},
		{"first entry deleted", func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(be64(1)) }, "at seq 1: entry missing"},
		{"last entry deleted", func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(be64(5)) }, "at seq 5: entries 5..5 missing"},
		{"entries swapped", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAudit)
			v2, v3 := append([]byte(nil), b.Get(be64(2))...), append([]byte(nil), b.Get(be64(3))...)
			if err := b.Put(be64(2), v3); err != nil {
				return err
			}
			return b.Put(be64(3), v2)
		}, "at seq 2: "},
		{"garbage entry", func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Put(be64(2), []byte("{\"seq\":2,")) }, "at seq 2: "},
		{"re-encoded unchanged", edit(2, func(e *AuditEntry) {}), ""}, // control: re-encoding alone breaks nothing
		{"entry appended without the head", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketAudit).Put(be64(6), tx.Bucket(bucketAudit).Get(be64(5)))
		}, "at seq 6: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			path, _ := chainT(t, 5)
			rawUpdate(t, path, c.tamper)
			n, err := VerifyAuditFile(path)
			if c.want == "" {
				if err != nil || n != 5 {
					t.Fatalf("VerifyAuditFile = %d, %v", n, err)
				}
				return
			}
			t.Log(err)
			if !errors.Is(err, ErrAuditBroken) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("VerifyAuditFile = %d, %v; want ErrAuditBroken with %q", n, err, c.want)
			}
			db := reopenT(t, path)
			if _, err2 := db.VerifyAudit(); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("VerifyAudit = %v; VerifyAuditFile said %v", err2, err)
			}
		})
	}
}

func TestAuditEntriesCorrupt(t *testing.T) {
	path, _ := chainT(t, 3)
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAudit).Put(be64(2), []byte(`{"seq":2,"kind":"x","evil":1}`))
	})
	db := reopenT(t, path)
	if _, err := db.AuditEntries(0, 0); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "bucket audit key") {
		t.Fatalf("AuditEntries over a corrupt entry = %v", err)
	}
}

func TestAppendBatchedConcurrent(t *testing.T) {
	db, _ := openT(t)
	const writers = 40
	seqs := make(chan uint64, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			e, err := db.AppendBatched(AuditEntry{Kind: "auth.failure", Actor: fmt.Sprint(i)})
			if err != nil {
				t.Error(err)
			}
			seqs <- e.Seq
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if s == 0 || seen[s] {
			t.Fatalf("seq %d returned twice or zero", s)
		}
		seen[s] = true
	}
	if n, err := db.VerifyAudit(); n != writers || err != nil {
		t.Fatalf("VerifyAudit = %d, %v", n, err)
	}
}
