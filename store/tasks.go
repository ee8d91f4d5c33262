package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/proofmesh/proofmesh/protocol"
)

// TaskRecord is a task as this node knows it: the published task, where it
// is in its lifecycle, and how it got there.
type TaskRecord struct {
	Task   protocol.Task      `json:"task"`
	State  protocol.TaskState `json:"state"`
	Reason string             `json:"reason,omitempty"` // why it failed
	// Origin is true when the task was submitted through this node (it
	// ranks, accepts and reports it).
	Origin bool `json:"origin,omitempty"`
	// SubmittedBy names the credential that submitted the task here (an
	// API key's prefix, or "admin"): it may cancel the task.
	SubmittedBy string `json:"submitted_by,omitempty"`
	// Signed is the task's envelope, signed by its submitter: what a
	// bundle carries so auditors can check who chose the candidates.
	Signed    []byte   `json:"signed"`
	Timeline  []Event  `json:"timeline"`
	Output    []byte   `json:"output,omitempty"`    // accepted output
	Executors []string `json:"executors,omitempty"` // executors seen claiming or answering
	// Settled are the executors whose equal results settled the task
	// (accepted, or failed by a confirmed failure); their stored results
	// make its bundle.
	Settled []string `json:"settled,omitempty"`
	// Outcome is the outcome they agreed on (Result.Outcome).
	Outcome string `json:"outcome,omitempty"`
	// Failure is the confirmed failure report of a failed task.
	Failure *protocol.Failure `json:"failure,omitempty"`
	// Updated is when the record last changed; the store sets it on every
	// write.
	Updated time.Time `json:"updated"`
}

// Event is one step of a task's timeline.
type Event struct {
	State  protocol.TaskState `json:"state"`
	Time   time.Time          `json:"time"`
	Detail string             `json:"detail,omitempty"`
	Peer   string             `json:"peer,omitempty"` // who caused it (executor, submitter)
}

// TaskFilter selects tasks for ListTasks. Zero fields select everything.
type TaskFilter struct {
	State  protocol.TaskState // only this state
	Type   string             // only this task type
	After  string             // start after this task id (a cursor: the last id of the page before)
	Limit  int                // at most this many; <= 0 means no limit
	Origin *bool              // only tasks submitted here (true) or elsewhere (false)
}

func (f *TaskFilter) match(r *TaskRecord) bool {
	return (f.State == "" || r.State == f.State) && (f.Type == "" || r.Task.Type == f.Type) &&
		(f.Origin == nil || *f.Origin == r.Origin)
}

// createdKey is the index key of a record: newest-first listing walks the
// index backwards and decodes only what it returns.
func createdKey(r *TaskRecord) []byte {
	ms := max(r.Task.Created, 0)
	k := make([]byte, 8, 8+len(r.Task.ID))
	binary.BigEndian.PutUint64(k, uint64(ms))
	return append(k, r.Task.ID...)
}

func encodeTask(r *TaskRecord) ([]byte, error) {
	if err := checkID("task", r.Task.ID); err != nil {
		return nil, err
	}
	if !r.State.Valid() {
		return nil, fmt.Errorf("store: task %s: unknown state %q", r.Task.ID, r.State)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("store: encode task %s: %w", r.Task.ID, err)
	}
	return b, nil
}

// decodeTask parses the stored value of key in the tasks bucket.
func decodeTask(key, val []byte) (TaskRecord, error) {
	var r TaskRecord
	if err := json.Unmarshal(val, &r); err != nil {
		return TaskRecord{}, corrupt(bucketTasks, key, err)
	}
	if r.Task.ID != string(key) {
		return TaskRecord{}, corrupt(bucketTasks, key, fmt.Errorf("holds task %q", r.Task.ID))
	}
	if !r.State.Valid() {
		return TaskRecord{}, corrupt(bucketTasks, key, fmt.Errorf("unknown state %q", r.State))
	}
	return r, nil
}

func (tx *Tx) putTask(r *TaskRecord) error {
	tasks, err := tx.bucket(bucketTasks)
	if err != nil {
		return err
	}
	v, err := encodeTask(r)
	if err != nil {
		return err
	}
	return tasks.Put([]byte(r.Task.ID), v)
}

// CreateTask stores a new record; ErrExists if its task id is stored. An
// empty State means pending; a zero Updated means now; an empty Timeline
// gets one event for the initial state.
func (tx *Tx) CreateTask(rec TaskRecord) (TaskRecord, error) {
	tasks, err := tx.bucket(bucketTasks)
	if err != nil {
		return TaskRecord{}, err
	}
	idx, err := tx.bucket(bucketTasksCreated)
	if err != nil {
		return TaskRecord{}, err
	}
	if err := checkID("task", rec.Task.ID); err != nil {
		return TaskRecord{}, err
	}
	if tasks.Get([]byte(rec.Task.ID)) != nil {
		return TaskRecord{}, fmt.Errorf("task %s: %w", rec.Task.ID, ErrExists)
	}
	if rec.State == "" {
		rec.State = protocol.StatePending
	}
	if rec.Updated.IsZero() {
		rec.Updated = tx.now()
	}
	if len(rec.Timeline) == 0 {
		rec.Timeline = []Event{{State: rec.State, Time: rec.Updated}}
	}
	if err := tx.putTask(&rec); err != nil {
		return TaskRecord{}, err
	}
	if err := idx.Put(createdKey(&rec), nil); err != nil {
		return TaskRecord{}, fmt.Errorf("index task %s: %w", rec.Task.ID, err)
	}
	return rec, nil
}

// GetTask returns the record of id; ErrNotFound if none.
func (tx *Tx) GetTask(id string) (TaskRecord, error) {
	tasks, err := tx.bucket(bucketTasks)
	if err != nil {
		return TaskRecord{}, err
	}
	v := tasks.Get([]byte(id))
	if v == nil {
		return TaskRecord{}, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	return decodeTask([]byte(id), v)
}

// UpdateTask reads the record of id, lets fn change it and writes it back,
// in this transaction. If fn returns an error nothing is written and that
// error is returned. fn may not change the task id. If fn changed State, the
// change must pass protocol.Transition or it is refused with an error
// wrapping protocol.ErrBadTransition and nothing is written; UpdateTask adds
// no timeline event (Advance does). Updated is set to now.
func (tx *Tx) UpdateTask(id string, fn func(*TaskRecord) error) (TaskRecord, error) {
	rec, err := tx.GetTask(id)
	if err != nil {
		return TaskRecord{}, err
	}
	oldState, oldKey := rec.State, createdKey(&rec)
	if err := fn(&rec); err != nil {
		return TaskRecord{}, err
	}
	if rec.Task.ID != id {
		return TaskRecord{}, fmt.Errorf("task %s: update may not change the task id (to %q)", id, rec.Task.ID)
	}
	if rec.State != oldState {
		if err := protocol.Transition(oldState, rec.State); err != nil {
			return TaskRecord{}, fmt.Errorf("task %s: %w", id, err)
		}
	}
	rec.Updated = tx.now()
	if err := tx.putTask(&rec); err != nil {
		return TaskRecord{}, err
	}
	if newKey := createdKey(&rec); !bytes.Equal(oldKey, newKey) {
		idx, err := tx.bucket(bucketTasksCreated)
		if err != nil {
			return TaskRecord{}, err
		}
		if err := idx.Delete(oldKey); err != nil {
			return TaskRecord{}, err
		}
		if err := idx.Put(newKey, nil); err != nil {
			return TaskRecord{}, err
		}
	}
	return rec, nil
}

// Advance moves the task id to state to: it checks protocol.Transition,
// appends ev to the timeline (ev.State is set to to; a zero ev.Time means
// now) and sets State. Moving to failed with no Reason yet sets Reason to
// ev.Detail. An illegal transition returns an error wrapping
// protocol.ErrBadTransition and writes nothing.
func (tx *Tx) Advance(id string, to protocol.TaskState, ev Event) (TaskRecord, error) {
	if ev.State != "" && ev.State != to {
		return TaskRecord{}, fmt.Errorf("task %s: event state %s differs from target state %s", id, ev.State, to)
	}
	ev.State = to
	if ev.Time.IsZero() {
		ev.Time = tx.now()
	}
	return tx.UpdateTask(id, func(r *TaskRecord) error {
		if err := protocol.Transition(r.State, to); err != nil {
			return fmt.Errorf("task %s: %w", id, err)
		}
		r.State = to
		r.AddEvent(ev)
		if to == protocol.StateFailed && r.Reason == "" {
			r.Reason = ev.Detail
		}
		return nil
	})
}

// MinTaskIDPrefix is the shortest prefix of a task id people may use.
const MinTaskIDPrefix = 8

// ErrAmbiguous is a task id prefix that more than one task has.
var ErrAmbiguous = errors.New("ambiguous task id prefix")

// ResolveTaskID returns the full id of the one task whose id starts with
// prefix (a whole id, or at least MinTaskIDPrefix hex characters):
// ErrNotFound if none, ErrAmbiguous (naming some) if several.
func (tx *Tx) ResolveTaskID(prefix string) (string, error) {
	if len(prefix) < MinTaskIDPrefix || len(prefix) > 64 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return "", fmt.Errorf("task %q: %w (give the id, or at least its first %d hex characters)", prefix, ErrNotFound, MinTaskIDPrefix)
	}
	tasks, err := tx.bucket(bucketTasks)
	if err != nil {
		return "", err
	}
	var found []string
	c := tasks.Cursor()
	for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)) && len(found) < 3; k, _ = c.Next() {
		found = append(found, string(k))
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("task %s: %w", prefix, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("task %s: %w: %s, … (give more characters)", prefix, ErrAmbiguous, strings.Join(found, ", "))
}

// MaxTimeline bounds a task's timeline: later events replace the ones
// before the last, so a chatty task cannot grow its record without end.
const MaxTimeline = 64

// AddEvent appends ev to a record's timeline within MaxTimeline.
func (r *TaskRecord) AddEvent(ev Event) {
	if len(r.Timeline) >= MaxTimeline {
		r.Timeline = append(r.Timeline[:MaxTimeline-2], r.Timeline[len(r.Timeline)-1])
	}
	r.Timeline = append(r.Timeline, ev)
}

// DeleteTask removes a task, its index entry and its results.
func (tx *Tx) DeleteTask(id string) error {
	rec, err := tx.GetTask(id)
	if err != nil {
		return err
	}
	tasks, err := tx.bucket(bucketTasks)
	if err != nil {
		return err
	}
	idx, err := tx.bucket(bucketTasksCreated)
	if err != nil {
		return err
	}
	results, err := tx.bucket(bucketResults)
	if err != nil {
		return err
	}
	if err := idx.Delete(createdKey(&rec)); err != nil {
		return err
	}
	prefix := []byte(id + "\x00")
	var keys [][]byte
	c := results.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := results.Delete(k); err != nil {
			return err
		}
	}
	return tasks.Delete([]byte(id))
}

// PruneRule says which finished tasks PruneTasks deletes.
type PruneRule struct {
	// Before: finished tasks last updated before it.
	Before time.Time
	// ObservedBefore (zero: Before) applies instead to the tasks this
	// node (Self) neither submitted nor ran (a candidate whose turn never
	// came did not run it): anyone can sign tasks that every node follows
	// and stores, naming any node a candidate, so those are kept a
	// shorter time.
	ObservedBefore time.Time
	Self           string
	Limit          int // at most this many a call
	// Before and ObservedBefore zero prune nothing of theirs; Before
	// zero keeps this node's own tasks forever (--task-retention 0).
}

// PruneTasks deletes finished tasks (with their results) as rule says, at
// most rule.Limit of them, oldest created first, and the blobs (inputs
// sent by hash, modules) that only they referenced; it returns the ids
// deleted. It stops at the first task created after the later cutoff
// (plus the clock skew a task's time may have): none after it can be
// due, so a store full of recent tasks costs nothing to prune.
func (tx *Tx) PruneTasks(rule PruneRule) ([]string, error) {
	idx, err := tx.bucket(bucketTasksCreated)
	if err != nil {
		return nil, err
	}
	tasks, err := tx.bucket(bucketTasks)
	if err != nil {
		return nil, err
	}
	observedBefore := rule.ObservedBefore
	if observedBefore.IsZero() {
		observedBefore = rule.Before
	}
	latest := rule.Before
	if observedBefore.After(latest) {
		latest = observedBefore
	}
	stop := uint64(max(latest.Add(protocol.DefaultClockSkew).UnixMilli(), 0))
	var ids []string
	c := idx.Cursor()
	for k, _ := c.First(); k != nil && len(ids) < rule.Limit; k, _ = c.Next() {
		if len(k) <= 8 {
			return nil, corrupt(bucketTasksCreated, k, fmt.Errorf("key of %d bytes", len(k)))
		}
		if binary.BigEndian.Uint64(k[:8]) > stop {
			break
		}
		id := k[8:]
		r, err := decodeTask(id, tasks.Get(id))
		if err != nil {
			return nil, err
		}
		cutoff := rule.Before
		if !r.Origin && r.Task.Submitter != rule.Self && !slices.Contains(r.Executors, rule.Self) {
			cutoff = observedBefore
		}
		if r.State.Terminal() && r.Updated.Before(cutoff) {
			ids = append(ids, string(id))
		}
	}
	blobs := map[string]bool{}
	for _, id := range ids {
		r, err := tx.GetTask(id)
		if err != nil {
			return nil, err
		}
		for _, h := range taskBlobs(&r) {
			blobs[h] = true
		}
		results, err := tx.Results(id)
		if err != nil {
			return nil, err
		}
		for _, env := range results { // a job's output files
			if res, err := protocol.OpenResult(env); err == nil {
				for _, f := range res.Files {
					blobs[f.Hash] = true
				}
			}
		}
		if err := tx.DeleteTask(id); err != nil {
			return nil, err
		}
	}
	if len(blobs) == 0 {
		return ids, nil
	}
	// Keep the blobs a remaining task still names (its module, input and
	// files; an output file identical to one of a pruned task's is not
	// looked for, and is fetched again from an executor if asked for).
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		r, err := decodeTask(k[8:], tasks.Get(k[8:]))
		if err != nil {
			return nil, err
		}
		for _, h := range taskBlobs(&r) {
			delete(blobs, h)
		}
	}
	bb, err := tx.bucket(bucketBlobs)
	if err != nil {
		return nil, err
	}
	for h := range blobs {
		if err := bb.Delete([]byte(h)); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// taskBlobs are the blobs a task names: its module, an input sent by
// hash, its job's files.
func taskBlobs(r *TaskRecord) []string {
	var hs []string
	if r.Task.ModuleHash != "" {
		hs = append(hs, r.Task.ModuleHash)
	}
	if !protocol.InlineInput(r.Task.InputSize) && r.Task.InputHash != "" {
		hs = append(hs, r.Task.InputHash)
	}
	if j := r.Task.Job; j != nil {
		for _, f := range j.Files {
			hs = append(hs, f.Hash)
		}
	}
	return hs
}

// ListTasks returns the records that match f, newest (by Task.Created)
// first.
func (tx *Tx) ListTasks(f TaskFilter) ([]TaskRecord, error) {
	tasks, err := tx.bucket(bucketTasks)
	if err != nil {
		return nil, err
	}
	idx, err := tx.bucket(bucketTasksCreated)
	if err != nil {
		return nil, err
	}
	out := []TaskRecord{} // not nil: an empty list encodes as []
	c := idx.Cursor()
	k, _ := c.Last()
	if f.After != "" {
		v := tasks.Get([]byte(f.After))
		if v == nil {
			return nil, fmt.Errorf("after %q: %w", f.After, ErrNotFound)
		}
		prev, err := decodeTask([]byte(f.After), v)
		if err != nil {
			return nil, err
		}
		ck := createdKey(&prev)
		if k, _ = c.Seek(ck); k != nil && bytes.Equal(k, ck) {
			k, _ = c.Prev()
		}
	}
	for ; k != nil; k, _ = c.Prev() {
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
		if len(k) <= 8 {
			return nil, corrupt(bucketTasksCreated, k, fmt.Errorf("key of %d bytes", len(k)))
		}
		id := k[8:]
		v := tasks.Get(id)
		if v == nil {
			return nil, corrupt(bucketTasksCreated, k, fmt.Errorf("indexes missing task %q", id))
		}
		r, err := decodeTask(id, v)
		if err != nil {
			return nil, err
		}
		if f.match(&r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// CreateTask stores a new record and commits; ErrExists if its task id is
// stored. See Tx.CreateTask for the defaults it fills in.
func (db *DB) CreateTask(rec TaskRecord) error {
	return db.Update(func(tx *Tx) error {
		_, err := tx.CreateTask(rec)
		return err
	})
}

// GetTask returns the record of id; ErrNotFound if none.
func (db *DB) GetTask(id string) (TaskRecord, error) {
	var r TaskRecord
	err := db.View(func(tx *Tx) error {
		var err error
		r, err = tx.GetTask(id)
		return err
	})
	return r, err
}

// HasTask reports whether a record of id is stored, without decoding it
// (a record holds the task's input and envelope).
func (db *DB) HasTask(id string) (bool, error) {
	var ok bool
	err := db.View(func(tx *Tx) error {
		tasks, err := tx.bucket(bucketTasks)
		if err != nil {
			return err
		}
		ok = tasks.Get([]byte(id)) != nil
		return nil
	})
	return ok, err
}

// UpdateTask is an atomic read-modify-write of the record of id, committed
// before it returns. See Tx.UpdateTask.
func (db *DB) UpdateTask(id string, fn func(*TaskRecord) error) (TaskRecord, error) {
	var r TaskRecord
	err := db.Update(func(tx *Tx) error {
		var err error
		r, err = tx.UpdateTask(id, fn)
		return err
	})
	return r, err
}

// Advance moves the task id to state to, appending ev to its timeline, and
// commits. See Tx.Advance. To commit an audit entry with the state change,
// call tx.Advance and tx.Append inside one DB.Update, or use AdvanceAudited.
func (db *DB) Advance(id string, to protocol.TaskState, ev Event) (TaskRecord, error) {
	var r TaskRecord
	err := db.Update(func(tx *Tx) error {
		var err error
		r, err = tx.Advance(id, to, ev)
		return err
	})
	return r, err
}

// AdvanceAudited is Advance and Append in one transaction: the state change
// and its audit entry are both committed or neither is.
func (db *DB) AdvanceAudited(id string, to protocol.TaskState, ev Event, a AuditEntry) (TaskRecord, AuditEntry, error) {
	var (
		r   TaskRecord
		out AuditEntry
	)
	err := db.Update(func(tx *Tx) error {
		var err error
		if r, err = tx.Advance(id, to, ev); err != nil {
			return err
		}
		out, err = tx.Append(a)
		return err
	})
	if err != nil {
		return TaskRecord{}, AuditEntry{}, err
	}
	return r, out, nil
}

// GetTaskByPrefix returns the record of the one task whose id starts with
// prefix; see Tx.ResolveTaskID.
func (db *DB) GetTaskByPrefix(prefix string) (TaskRecord, error) {
	var r TaskRecord
	err := db.View(func(tx *Tx) error {
		id, err := tx.ResolveTaskID(prefix)
		if err != nil {
			return err
		}
		r, err = tx.GetTask(id)
		return err
	})
	return r, err
}

// ListTasks returns the records that match f, newest (by Task.Created)
// first.
func (db *DB) ListTasks(f TaskFilter) ([]TaskRecord, error) {
	var rs []TaskRecord
	err := db.View(func(tx *Tx) error {
		var err error
		rs, err = tx.ListTasks(f)
		return err
	})
	return rs, err
}
