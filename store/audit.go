package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// AuditEntry is one entry of the append-only audit chain. Append assigns
// Seq, Prev and Hash; Hash is the SHA-256 of a canonical encoding of every
// other field (AuditHash), Prev the Hash of the entry before, so editing,
// removing or reordering an entry breaks the chain at that entry.
type AuditEntry struct {
	Seq     uint64    `json:"seq"` // 1, 2, 3, … with no gap
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`              // e.g. "peer.deleted", "auth.failure", "task.accepted"
	Actor   string    `json:"actor,omitempty"`   // who did it: peer id, token fingerprint
	Subject string    `json:"subject,omitempty"` // what it was done to: task id, peer id
	Detail  string    `json:"detail,omitempty"`
	Prev    string    `json:"prev"` // Hash of entry Seq-1; "" for the first
	Hash    string    `json:"hash"`
}

// auditDomain separates audit hashes from every other hash in proofmesh.
const auditDomain = "proofmesh/audit/v1\n"

// maxAuditField bounds each string of an entry, so an attacker who can make
// the node log (a failed login with a huge token) cannot grow the file fast.
const maxAuditField = 4 << 10

// AuditHash computes the hash of e: SHA-256 over the domain, Seq (8 bytes
// big-endian), Time as Unix seconds (8 bytes) and nanoseconds (4 bytes),
// then Kind, Actor, Subject, Detail and Prev, each as an 8-byte big-endian
// length and its bytes. The encoding is unambiguous: no two entries share
// it. The result is lower-case hex.
func AuditHash(e *AuditEntry) string {
	h := sha256.New()
	var buf [8]byte
	h.Write([]byte(auditDomain))
	binary.BigEndian.PutUint64(buf[:], e.Seq)
	h.Write(buf[:])
	binary.BigEndian.PutUint64(buf[:], uint64(e.Time.Unix()))
	h.Write(buf[:])
	binary.BigEndian.PutUint32(buf[:4], uint32(e.Time.Nanosecond()))
	h.Write(buf[:4])
	for _, s := range []string{e.Kind, e.Actor, e.Subject, e.Detail, e.Prev} {
		binary.BigEndian.PutUint64(buf[:], uint64(len(s)))
		h.Write(buf[:])
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// jsonSafe makes s survive a JSON round trip byte for byte: encoding/json
// turns each invalid UTF-8 byte into U+FFFD, and the hash must cover what is
// stored.
func jsonSafe(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b []byte
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return string(b)
}

// clipField makes s JSON-safe and cuts it to maxAuditField bytes on a rune
// boundary.
func clipField(s string) string {
	s = jsonSafe(s)
	if len(s) <= maxAuditField {
		return s
	}
	i := maxAuditField
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

type auditHead struct {
	seq  uint64
	hash string
}

func readHead(meta *bolt.Bucket) (auditHead, error) {
	v := meta.Get(keyAuditHead)
	if v == nil {
		return auditHead{}, nil
	}
	if len(v) != 8+64 || !isHexHash(string(v[8:])) {
		return auditHead{}, corrupt(bucketMeta, keyAuditHead, fmt.Errorf("%d bytes, want seq and hex hash", len(v)))
	}
	return auditHead{seq: binary.BigEndian.Uint64(v), hash: string(v[8:])}, nil
}

// decodeAudit parses the stored value of key in the audit bucket.
func decodeAudit(key, val []byte) (AuditEntry, error) {
	if len(key) != 8 {
		return AuditEntry{}, corrupt(bucketAudit, key, fmt.Errorf("key of %d bytes, want 8", len(key)))
	}
	k := binary.BigEndian.Uint64(key)
	bad := func(err error) error {
		return fmt.Errorf("%w: bucket %s key %d: %v", ErrCorrupt, bucketAudit, k, err)
	}
	var e AuditEntry
	dec := json.NewDecoder(bytes.NewReader(val))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return AuditEntry{}, bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return AuditEntry{}, bad(fmt.Errorf("trailing data"))
	}
	if e.Seq != k {
		return AuditEntry{}, bad(fmt.Errorf("entry says seq %d", e.Seq))
	}
	return e, nil
}

// Append adds e to the end of the chain in this transaction: it sets Seq,
// Prev and Hash (overwriting what the caller put there), Time to now if
// zero (normalised to UTC), and clips each string to 4 KiB (invalid UTF-8
// becomes U+FFFD, as JSON would store it). Kind is
// required. The entry commits with whatever else the transaction writes.
func (tx *Tx) Append(e AuditEntry) (AuditEntry, error) {
	if e.Kind == "" {
		return AuditEntry{}, fmt.Errorf("store: audit entry without a kind")
	}
	meta, err := tx.bucket(bucketMeta)
	if err != nil {
		return AuditEntry{}, err
	}
	log, err := tx.bucket(bucketAudit)
	if err != nil {
		return AuditEntry{}, err
	}
	head, err := readHead(meta)
	if err != nil {
		return AuditEntry{}, err
	}
	if e.Time.IsZero() {
		e.Time = tx.now()
	}
	e, v, err := sealAudit(e, head.seq+1, head.hash)
	if err != nil {
		return AuditEntry{}, err
	}
	if err := log.Put(be64(e.Seq), v); err != nil {
		return AuditEntry{}, fmt.Errorf("store: append audit entry %d: %w", e.Seq, err)
	}
	if err := meta.Put(keyAuditHead, append(be64(e.Seq), e.Hash...)); err != nil {
		return AuditEntry{}, fmt.Errorf("store: audit head: %w", err)
	}
	return e, nil
}

// sealAudit fills in seq, prev and the hash of e, normalised so that what
// is hashed is exactly what decodes from the returned encoding.
func sealAudit(e AuditEntry, seq uint64, prev string) (AuditEntry, []byte, error) {
	e.Time = e.Time.UTC().Round(0)
	e.Kind, e.Actor = clipField(e.Kind), clipField(e.Actor)
	e.Subject, e.Detail = clipField(e.Subject), clipField(e.Detail)
	e.Seq, e.Prev = seq, prev
	e.Hash = AuditHash(&e)
	v, err := json.Marshal(&e)
	if err != nil {
		return AuditEntry{}, nil, fmt.Errorf("store: encode audit entry %d: %w", seq, err)
	}
	return e, v, nil
}

// AuditHead returns the Seq and Hash of the last entry (0 and "" for an
// empty chain). Publishing or signing it elsewhere anchors the chain: an
// attacker who rewrites the file can rebuild a consistent chain, but not
// one that ends at a head already seen outside it.
func (tx *Tx) AuditHead() (uint64, string, error) {
	meta, err := tx.bucket(bucketMeta)
	if err != nil {
		return 0, "", err
	}
	h, err := readHead(meta)
	return h.seq, h.hash, err
}

// AuditEntries returns up to limit entries (all if limit <= 0) from seq
// from on, in order.
func (tx *Tx) AuditEntries(from uint64, limit int) ([]AuditEntry, error) {
	log, err := tx.bucket(bucketAudit)
	if err != nil {
		return nil, err
	}
	var out []AuditEntry
	c := log.Cursor()
	for k, v := c.Seek(be64(from)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
		e, err := decodeAudit(k, v)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// VerifyAudit walks the whole chain and returns how many entries verified.
// The first problem stops it with an error wrapping ErrAuditBroken that
// names the seq and what is wrong: an entry that does not decode, a hash
// that does not match the entry (edited), a Prev that does not match the
// entry before (edited or reordered), a gap in the seqs (removed), or a
// chain that ends before the recorded head (truncated).
func (tx *Tx) VerifyAudit() (int, error) {
	meta, err := tx.bucket(bucketMeta)
	if err != nil {
		return 0, err
	}
	log, err := tx.bucket(bucketAudit)
	if err != nil {
		return 0, err
	}
	broken := func(seq uint64, format string, args ...any) error {
		return fmt.Errorf("%w at seq %d: %s", ErrAuditBroken, seq, fmt.Sprintf(format, args...))
	}
	var (
		n    int
		want uint64 = 1
		prev string
	)
	c := log.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			return n, broken(want, "stray key %x in the audit bucket", k)
		}
		seq := binary.BigEndian.Uint64(k)
		if seq != want {
			if seq > want {
				return n, broken(want, "entry missing (next entry is seq %d)", seq)
			}
			return n, broken(seq, "unexpected entry (expected seq %d)", want)
		}
		e, err := decodeAudit(k, v)
		if err != nil {
			return n, broken(seq, "%v", err)
		}
		if got := AuditHash(&e); got != e.Hash {
			return n, broken(seq, "hash mismatch: entry was edited (stored %.16s…, content hashes to %.16s…)", e.Hash, got)
		}
		if e.Prev != prev {
			return n, broken(seq, "broken link: prev %.16s… is not the hash of seq %d (%.16s…)", e.Prev, seq-1, prev)
		}
		prev = e.Hash
		want++
		n++
	}
	head, err := readHead(meta)
	if err != nil {
		return n, fmt.Errorf("%w: %v", ErrAuditBroken, err)
	}
	switch last := want - 1; {
	case head.seq > last:
		return n, broken(last+1, "entries %d..%d missing: the chain ends before its recorded head", last+1, head.seq)
	case head.seq < last:
		return n, broken(head.seq+1, "entries after the recorded head seq %d", head.seq)
	case head.hash != prev:
		return n, broken(last, "last entry's hash does not match the recorded head")
	}
	return n, nil
}

// Append adds e to the audit chain and commits. See Tx.Append; to commit an
// entry together with other writes, call tx.Append inside DB.Update.
func (db *DB) Append(e AuditEntry) (AuditEntry, error) {
	var out AuditEntry
	err := db.Update(func(tx *Tx) error {
		var err error
		out, err = tx.Append(e)
		return err
	})
	return out, err
}

// AppendBatched is Append for entries written at a high rate from many
// goroutines (auth failures under a flood): concurrent calls share one
// transaction and one fsync (bbolt's DB.Batch), so the rate is no longer
// bounded by one fsync per entry. Each call still returns only after its
// own entry is committed, but may wait up to 10 ms for company: a lone
// caller should use Append.
func (db *DB) AppendBatched(e AuditEntry) (AuditEntry, error) {
	var out AuditEntry
	// Batch may run the function again alone if the shared transaction
	// fails; it only writes through tx, so a retry is safe.
	err := db.bolt.Batch(func(btx *bolt.Tx) error {
		var err error
		out, err = (&Tx{tx: btx, now: db.now}).Append(e)
		return err
	})
	return out, err
}

// AuditHead returns the Seq and Hash of the last entry. See Tx.AuditHead.
func (db *DB) AuditHead() (seq uint64, hash string, err error) {
	err = db.View(func(tx *Tx) error {
		seq, hash, err = tx.AuditHead()
		return err
	})
	return seq, hash, err
}

// AuditEntries returns up to limit entries (all if limit <= 0) from seq
// from on, in order.
func (db *DB) AuditEntries(from uint64, limit int) ([]AuditEntry, error) {
	var out []AuditEntry
	err := db.View(func(tx *Tx) error {
		var err error
		out, err = tx.AuditEntries(from, limit)
		return err
	})
	return out, err
}

// VerifyAudit checks the whole chain in one snapshot. See Tx.VerifyAudit.
func (db *DB) VerifyAudit() (int, error) {
	var n int
	err := db.View(func(tx *Tx) error {
		var err error
		n, err = tx.VerifyAudit()
		return err
	})
	return n, err
}

// VerifyAuditFile opens the store file at path read-only and verifies its
// audit chain: `proofmesh audit verify --data-dir` on a stopped node. A
// running node holds the file, so this fails with ErrLocked; ask the node's
// API instead.
func VerifyAuditFile(path string) (int, error) {
	db, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return db.VerifyAudit()
}
