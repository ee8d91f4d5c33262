package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzDecodeStored feeds arbitrary bytes to every decoder of stored
// records, as a damaged or hostile file would: each must return an error
// wrapping ErrCorrupt or a record that re-encodes to one decoding the same.
func FuzzDecodeStored(f *testing.F) {
	f.Add(uint8(0), []byte("p1"), []byte(`{"id":"p1","status":"online","heartbeat":{"seq":1},"deleted_at":"2026-01-01T00:00:00Z"}`))
	f.Add(uint8(0), []byte("p1"), []byte(`{"id":"p1","status":"gone"}`))
	f.Add(uint8(1), []byte("t1"), []byte(`{"task":{"id":"t1","created":5},"state":"running","timeline":[{"state":"pending","time":"2026-01-01T00:00:00Z"}],"output":"AAE="}`))
	f.Add(uint8(1), []byte("t1"), []byte(`{"task":{"id":"t1"},"state":"pending","output":"!!"}`))
	f.Add(uint8(2), be64(1), []byte(`{"seq":1,"time":"2026-01-01T00:00:00Z","kind":"k","prev":"","hash":"00"}`))
	f.Add(uint8(2), be64(1), []byte(`{"seq":1,"kind":"k"} {}`))
	f.Add(uint8(2), []byte{1}, []byte(`{}`))
	f.Fuzz(func(t *testing.T, which uint8, key, val []byte) {
		var (
			rec any
			err error
		)
		switch which % 3 {
		case 0:
			var p Peer
			if p, err = decodePeer(key, val); err == nil {
				rec = p
			}
		case 1:
			var r TaskRecord
			if r, err = decodeTask(key, val); err == nil {
				rec = r
			}
		case 2:
			var e AuditEntry
			if e, err = decodeAudit(key, val); err == nil {
				rec = e
			}
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		again, err := json.Marshal(rec)
		if err != nil {
			return // e.g. a time beyond year 9999: decodes, cannot be re-encoded; never written by the store
		}
		switch which % 3 {
		case 0:
			_, err = decodePeer(key, again)
		case 1:
			_, err = decodeTask(key, again)
		case 2:
			_, err = decodeAudit(key, again)
		}
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n%s", err, again)
		}
	})
}

// FuzzAuditSeal checks that whatever strings an entry carries, the stored
// encoding decodes to an entry with the same hash: the chain never breaks
// by itself.
func FuzzAuditSeal(f *testing.F) {
	f.Add("auth.failure", "tok:ab12", "/api/v1/tasks", "bad token", int64(1700000000), int64(5))
	f.Add("k", "\xff\xfe", "a\x00b", "\u2028<script>&", int64(-1), int64(999999999))
	f.Fuzz(func(t *testing.T, kind, actor, subject, detail string, sec, nsec int64) {
		if kind == "" {
			return
		}
		at := time.Unix(sec%(1<<35), nsec%1e9)
		e, v, err := sealAudit(AuditEntry{Time: at, Kind: kind, Actor: actor, Subject: subject, Detail: detail}, 7, "ab")
		if err != nil {
			return // time outside JSON's years 0..9999: Append refuses it
		}
		got, err := decodeAudit(binary.BigEndian.AppendUint64(nil, 7), v)
		if err != nil {
			t.Fatalf("sealed entry does not decode: %v\n%s", err, v)
		}
		if h := AuditHash(&got); h != e.Hash || got.Hash != e.Hash {
			t.Fatalf("stored entry hashes to %s, sealed as %s\n%s", h, e.Hash, v)
		}
	})
}
