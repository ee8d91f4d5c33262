package store

import (
	"bytes"
	"fmt"
	"strings"
)

func resultKey(taskID, executor string) ([]byte, error) {
	if err := checkID("task", taskID); err != nil {
		return nil, err
	}
	if err := checkID("executor", executor); err != nil {
		return nil, err
	}
	if strings.IndexByte(taskID, 0) >= 0 || strings.IndexByte(executor, 0) >= 0 {
		return nil, fmt.Errorf("store: result key: task %q or executor %q contains NUL", taskID, executor)
	}
	return []byte(taskID + "\x00" + executor), nil
}

// PutResult stores the sealed result envelope of executor for taskID.
// Storing the same bytes again is a no-op; different bytes for the same
// task and executor are refused with ErrExists (the first one stays: an
// executor that signs two answers is equivocating, which the caller may
// want to record).
func (tx *Tx) PutResult(taskID, executor string, envelope []byte) error {
	return tx.putResult(taskID, executor, "", envelope)
}

// PutEquivocation keeps the second, different result an executor signed
// for a task (evidence that it equivocated), beside its first; a third is
// refused with ErrExists. Results lists it under "executor\x00second".
func (tx *Tx) PutEquivocation(taskID, executor string, envelope []byte) error {
	return tx.putResult(taskID, executor, "\x00second", envelope)
}

// putResult stores an envelope under the result key with suffix: the same
// bytes again are a no-op, other bytes ErrExists.
func (tx *Tx) putResult(taskID, executor, suffix string, envelope []byte) error {
	b, err := tx.bucket(bucketResults)
	if err != nil {
		return err
	}
	k, err := resultKey(taskID, executor)
	if err != nil {
		return err
	}
	k = append(k, suffix...)
	if old := b.Get(k); old != nil {
		if bytes.Equal(old, envelope) {
			return nil
		}
		return fmt.Errorf("result%s of task %s by %s: %w with different bytes", strings.ReplaceAll(suffix, "\x00", " "), taskID, executor, ErrExists)
	}
	return b.Put(k, bytes.Clone(envelope))
}

// Results returns the stored envelopes of taskID by executor (empty, not
// nil, if none); an equivocating executor's second result is under
// "executor\x00second".
func (tx *Tx) Results(taskID string) (map[string][]byte, error) {
	b, err := tx.bucket(bucketResults)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte)
	prefix := []byte(taskID + "\x00")
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		exec := string(k[len(prefix):])
		if exec == "" {
			return nil, corrupt(bucketResults, k, fmt.Errorf("no executor in key"))
		}
		out[exec] = bytes.Clone(v)
	}
	return out, nil
}

// PutResult stores a sealed result envelope and commits. See Tx.PutResult.
func (db *DB) PutResult(taskID, executor string, envelope []byte) error {
	return db.Update(func(tx *Tx) error { return tx.PutResult(taskID, executor, envelope) })
}

// Results returns the stored envelopes of taskID by executor.
func (db *DB) Results(taskID string) (map[string][]byte, error) {
	var m map[string][]byte
	err := db.View(func(tx *Tx) error {
		var err error
		m, err = tx.Results(taskID)
		return err
	})
	return m, err
}
