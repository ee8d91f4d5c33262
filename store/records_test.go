package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/proofmesh/proofmesh/protocol"
)

func TestPeers(t *testing.T) {
	db, path := openT(t)
	if _, err := db.GetPeer("nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetPeer(unknown) = %v; want ErrNotFound", err)
	}
	if err := db.PutPeer(Peer{ID: "p", Status: "sleepy"}); err == nil {
		t.Fatal("unknown status accepted")
	}
	if err := db.PutPeer(Peer{ID: "", Status: protocol.StatusOnline}); err == nil {
		t.Fatal("empty id accepted")
	}
	if err := db.PutPeers([]Peer{{ID: "ok", Status: protocol.StatusOnline}, {ID: "bad", Status: protocol.StatusOnline, Heartbeat: []byte("{not json")}}); err == nil {
		t.Fatal("bad heartbeat accepted")
	}
	if ps, _ := db.ListPeers(); len(ps) != 0 {
		t.Fatalf("a failed PutPeers stored %d peers", len(ps))
	}

	now := time.Now()
	ps := []Peer{
		{ID: "a", Status: protocol.StatusOnline, LastSeen: now},
		{ID: "b", Status: protocol.StatusDeleted, DeletedAt: now.Add(-48 * time.Hour)},
		{ID: "c", Status: protocol.StatusDeleted, DeletedAt: now.Add(-time.Hour)},
		{ID: "d", Status: protocol.StatusOffline},
	}
	if err := db.PutPeers(ps); err != nil {
		t.Fatal(err)
	}
	ps[0].Seq = 9
	if err := db.PutPeer(ps[0]); err != nil {
		t.Fatal(err)
	}
	if p, err := db.GetPeer("a"); err != nil || p.Seq != 9 || !p.LastSeen.Equal(now) {
		t.Fatalf("GetPeer(a) = %+v, %v", p, err)
	}
	if p, err := db.GetPeer("b"); err != nil || !p.Deleted() {
		t.Fatalf("tombstone: %+v, %v", p, err)
	}
	n, err := db.PurgeDeleted(now.Add(-24 * time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PurgeDeleted = %d, %v; want 1", n, err)
	}
	list, _ := db.ListPeers()
	var ids []string
	for _, p := range list {
		ids = append(ids, p.ID)
	}
	if strings.Join(ids, ",") != "a,c,d" {
		t.Fatalf("after purge: %v", ids)
	}

	// A corrupt row is an error that names the bucket and key, not a panic.
	db.Close()
	rawUpdate(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketPeers).Put([]byte("c"), []byte(`{"id":"c","status":`)) })
	db = reopenT(t, path)
	for _, err := range []error{
		func() error { _, err := db.GetPeer("c"); return err }(),
		func() error { _, err := db.ListPeers(); return err }(),
	} {
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `bucket peers key "c"`) {
			t.Fatalf("corrupt peer: %v", err)
		}
	}
}

func newTask(id string, created int64) TaskRecord {
	return TaskRecord{Task: protocol.Task{ID: id, Type: "mimc.chain.v1", Created: created, Replicas: 1}}
}

func TestCreateTask(t *testing.T) {
	db, _ := openT(t)
	if err := db.CreateTask(newTask("t", 1)); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateTask(newTask("t", 2)); !errors.Is(err, ErrExists) {
		t.Fatalf("second CreateTask = %v; want ErrExists", err)
	}
	r, err := db.GetTask("t")
	if err != nil || r.State != protocol.StatePending || len(r.Timeline) != 1 || r.Timeline[0].State != protocol.StatePending || r.Updated.IsZero() {
		t.Fatalf("created record: %+v, %v", r, err)
	}
	if _, err := db.GetTask("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetTask(unknown) = %v", err)
	}
	for id, want := range map[string]bool{"t": true, "nope": false} {
		if got, err := db.HasTask(id); got != want || err != nil {
			t.Fatalf("HasTask(%q) = %v, %v; want %v", id, got, err, want)
		}
	}
	if err := db.CreateTask(TaskRecord{Task: protocol.Task{ID: "x"}, State: "lost"}); err == nil {
		t.Fatal("unknown state accepted")
	}
}

func TestIllegalTransitionRefused(t *testing.T) {
	db, _ := openT(t)
	if err := db.CreateTask(newTask("t", 1)); err != nil {
		t.Fatal(err)
	}
	for _, to := range []protocol.TaskState{protocol.StateAssigned, protocol.StateRunning, protocol.StateAccepted} {
		if _, err := db.Advance("t", to, Event{Detail: "step"}); err != nil {
			t.Fatalf("Advance to %s: %v", to, err)
		}
	}
	before, _ := db.GetTask("t")

	if _, err := db.Advance("t", protocol.StateRunning, Event{}); !errors.Is(err, protocol.ErrBadTransition) {
		t.Fatalf("accepted -> running = %v; want ErrBadTransition", err)
	}
	if _, err := db.UpdateTask("t", func(r *TaskRecord) error {
		r.State = protocol.StateFailed
		r.Reason = "late"
		return nil
	}); !errors.Is(err, protocol.ErrBadTransition) {
		t.Fatalf("UpdateTask accepted -> failed = %v; want ErrBadTransition", err)
	}
	if _, err := db.UpdateTask("t", func(r *TaskRecord) error { r.Task.ID = "other"; return nil }); err == nil {
		t.Fatal("UpdateTask changed the id")
	}
	boom := errors.New("boom")
	if _, err := db.UpdateTask("t", func(r *TaskRecord) error { r.Reason = "x"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error = %v", err)
	}
	if _, _, err := db.AdvanceAudited("t", protocol.StatePending, Event{}, AuditEntry{Kind: "task.pending"}); !errors.Is(err, protocol.ErrBadTransition) {
		t.Fatalf("AdvanceAudited illegal = %v", err)
	}
	after, _ := db.GetTask("t")
	if mustJSON(t, after) != mustJSON(t, before) {
		t.Fatalf("a refused change was written:\nbefore %s\nafter  %s", mustJSON(t, before), mustJSON(t, after))
	}
	if seq, _, _ := db.AuditHead(); seq != 0 {
		t.Fatalf("a refused AdvanceAudited left audit entry %d", seq)
	}
}

func TestAdvance(t *testing.T) {
	db, _ := openT(t)
	if err := db.CreateTask(newTask("t", 1)); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := db.Advance("t", protocol.StateRunning, Event{State: protocol.StateProving}); err == nil {
		t.Fatal("event state differing from target accepted")
	}
	r, err := db.Advance("t", protocol.StateRunning, Event{Time: at, Peer: "exec1"}) // gossip may skip a step
	if err != nil {
		t.Fatal(err)
	}
	if ev := r.Timeline[len(r.Timeline)-1]; ev.State != protocol.StateRunning || !ev.Time.Equal(at) || ev.Peer != "exec1" {
		t.Fatalf("event = %+v", ev)
	}
	r, a, err := db.AdvanceAudited("t", protocol.StateFailed, Event{Detail: "deadline passed"}, AuditEntry{Kind: "task.failed", Subject: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != protocol.StateFailed || r.Reason != "deadline passed" || a.Seq != 1 || a.Subject != "t" {
		t.Fatalf("AdvanceAudited = %+v, %+v", r, a)
	}
	if _, err := db.Advance("nope", protocol.StateRunning, Event{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Advance(unknown) = %v", err)
	}
}

// A state change and its audit entry commit together or not at all.
func TestUpdateIsAtomic(t *testing.T) {
	db, _ := openT(t)
	if err := db.CreateTask(newTask("t", 1)); err != nil {
		t.Fatal(err)
	}
	err := db.Update(func(tx *Tx) error {
		if _, err := tx.Advance("t", protocol.StateAssigned, Event{}); err != nil {
			return err
		}
		_, err := tx.Append(AuditEntry{}) // no kind: refused
		return err
	})
	if err == nil {
		t.Fatal("Append without kind accepted")
	}
	if r, _ := db.GetTask("t"); r.State != protocol.StatePending {
		t.Fatalf("state %s committed without its audit entry", r.State)
	}
	err = db.Update(func(tx *Tx) error {
		if _, err := tx.Advance("t", protocol.StateAssigned, Event{}); err != nil {
			return err
		}
		_, err := tx.Append(AuditEntry{Kind: "task.assigned", Subject: "t"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := db.GetTask("t")
	es, _ := db.AuditEntries(1, 10)
	if r.State != protocol.StateAssigned || len(es) != 1 || es[0].Kind != "task.assigned" {
		t.Fatalf("state %s, audit %+v", r.State, es)
	}
}

func TestConcurrentUpdateTask(t *testing.T) {
	db, _ := openT(t)
	if err := db.CreateTask(newTask("t", 1)); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := db.UpdateTask("t", func(r *TaskRecord) error {
					r.Executors = append(r.Executors, fmt.Sprintf("w%d-%d", w, i))
					return nil
				}); err != nil {
					errs <- err
				}
				if _, err := db.Append(AuditEntry{Kind: "test", Actor: fmt.Sprint(w)}); err != nil {
					errs <- err
				}
			}
		})
	}
	// Readers run alongside.
	wg.Go(func() {
		for range 50 {
			if _, err := db.ListTasks(TaskFilter{}); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r, _ := db.GetTask("t")
	if len(r.Executors) != workers*each {
		t.Fatalf("%d executors recorded, want %d: lost updates", len(r.Executors), workers*each)
	}
	if n, err := db.VerifyAudit(); n != workers*each || err != nil {
		t.Fatalf("VerifyAudit = %d, %v", n, err)
	}
}

func TestListTasks(t *testing.T) {
	db, _ := openT(t)
	yes, no := true, false
	for i := range 10 {
		r := newTask(fmt.Sprintf("t%d", i), int64(1000+i))
		r.Origin = i%2 == 0
		if err := db.CreateTask(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"t3", "t6", "t8"} {
		if _, err := db.Advance(id, protocol.StateFailed, Event{Detail: "no capable peer"}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(rs []TaskRecord, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, r := range rs {
			s = append(s, r.Task.ID)
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct {
		f    TaskFilter
		want string
	}{
		{TaskFilter{}, "t9,t8,t7,t6,t5,t4,t3,t2,t1,t0"},
		{TaskFilter{Limit: 3}, "t9,t8,t7"},
		{TaskFilter{State: protocol.StateFailed}, "t8,t6,t3"},
		{TaskFilter{State: protocol.StateFailed, Origin: &yes}, "t8,t6"},
		{TaskFilter{Origin: &no, Limit: 2}, "t9,t7"},
		{TaskFilter{State: protocol.StateAccepted}, ""},
	} {
		if got := ids(db.ListTasks(c.f)); got != c.want {
			t.Errorf("ListTasks(%+v) = %s; want %s", c.f, got, c.want)
		}
	}
	// Changing Created moves the task in the index.
	if _, err := db.UpdateTask("t0", func(r *TaskRecord) error { r.Task.Created = 5000; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := ids(db.ListTasks(TaskFilter{Limit: 2})); got != "t0,t9" {
		t.Fatalf("after moving t0: %s", got)
	}
	if got := ids(db.ListTasks(TaskFilter{})); strings.Count(got, "t0") != 1 {
		t.Fatalf("stale index entry: %s", got)
	}
}

func TestResults(t *testing.T) {
	db, _ := openT(t)
	if err := db.PutResult("ab", "e1", []byte("r1")); err != nil {
		t.Fatal(err)
	}
	if err := db.PutResult("ab", "e1", []byte("r1")); err != nil {
		t.Fatalf("idempotent PutResult: %v", err)
	}
	if err := db.PutResult("ab", "e1", []byte("other")); !errors.Is(err, ErrExists) {
		t.Fatalf("different result from the same executor = %v; want ErrExists", err)
	}
	if err := db.PutResult("ab", "e2", []byte("r2")); err != nil {
		t.Fatal(err)
	}
	if err := db.PutResult("a", "b\x00c", []byte("x")); err == nil {
		t.Fatal("NUL in executor accepted")
	}
	if err := db.PutResult("abc", "e3", []byte("r3")); err != nil {
		t.Fatal(err)
	}
	m, err := db.Results("ab")
	if err != nil || len(m) != 2 || string(m["e1"]) != "r1" || string(m["e2"]) != "r2" {
		t.Fatalf("Results(ab) = %q, %v", m, err)
	}
	if m, err := db.Results("none"); err != nil || m == nil || len(m) != 0 {
		t.Fatalf("Results(none) = %v, %v", m, err)
	}
}

func TestBlobs(t *testing.T) {
	db, path := openT(t)
	data := []byte("\x00asm\x01\x00\x00\x00")
	h, err := db.PutBlob(data)
	if err != nil || h != protocol.HashHex(data) {
		t.Fatalf("PutBlob = %s, %v", h, err)
	}
	if h2, err := db.PutBlob(data); err != nil || h2 != h {
		t.Fatalf("second PutBlob = %s, %v", h2, err)
	}
	if !db.HasBlob(h) || db.HasBlob(protocol.HashHex([]byte("x"))) || db.HasBlob("../etc/passwd") {
		t.Fatal("HasBlob wrong")
	}
	for _, bad := range []string{protocol.HashHex([]byte("x")), strings.ToUpper(h), "../" + h[3:], ""} {
		if _, err := db.GetBlob(bad); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetBlob(%q) = %v; want ErrNotFound", bad, err)
		}
	}
	db.Close()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).Put([]byte(h), []byte("\x00asm\x01\x00\x00\x01"))
	})
	db = reopenT(t, path)
	if _, err := db.GetBlob(h); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), h) {
		t.Fatalf("GetBlob of damaged blob = %v; want ErrCorrupt naming it", err)
	}
	// Storing the blob again repairs it.
	if _, err := db.PutBlob(data); err != nil {
		t.Fatal(err)
	}
	if b, err := db.GetBlob(h); err != nil || string(b) != string(data) {
		t.Fatalf("after repair: %q, %v", b, err)
	}
}

// Finished tasks past the retention go with their results; live ones and
// recent ones stay; a timeline never grows past MaxTimeline.
func TestPruneTasksAndBoundedTimeline(t *testing.T) {
	db, _ := openT(t)
	shared, err := db.PutBlob([]byte("module used by t0 and t1"))
	if err != nil {
		t.Fatal(err)
	}
	own, err := db.PutBlob([]byte("module of t0 only"))
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range []protocol.TaskState{protocol.StateAccepted, protocol.StateRunning, protocol.StateFailed} {
		r := newTask(fmt.Sprintf("t%d", i), int64(i+1))
		r.State = st
		r.Task.ModuleHash = shared
		if i == 0 {
			r.Task.InputHash, r.Task.InputSize = own, protocol.MaxInlineInput+1
		}
		if err := db.CreateTask(r); err != nil {
			t.Fatal(err)
		}
		if err := db.PutResult(r.Task.ID, "exec", []byte("env")); err != nil {
			t.Fatal(err)
		}
	}
	var gone []string
	if err := db.Update(func(tx *Tx) error {
		var err error
		gone, err = tx.PruneTasks(PruneRule{Before: time.Now().Add(time.Hour), Limit: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(gone, ",") != "t0" {
		t.Fatalf("pruned %v, want the oldest finished task only (limit 1)", gone)
	}
	if _, err := db.GetTask("t0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pruned task still there: %v", err)
	}
	if rs, _ := db.Results("t0"); len(rs) != 0 {
		t.Fatalf("pruned task's results still there: %v", rs)
	}
	if db.HasBlob(own) || !db.HasBlob(shared) {
		t.Fatalf("blobs after pruning: own %v (want gone), shared %v (want kept)", db.HasBlob(own), db.HasBlob(shared))
	}
	if err := db.Update(func(tx *Tx) error {
		var err error
		gone, err = tx.PruneTasks(PruneRule{Before: time.Now().Add(-time.Hour), Limit: 10})
		return err
	}); err != nil || len(gone) != 0 {
		t.Fatalf("pruned recent tasks: %v %v", gone, err)
	}
	if list, _ := db.ListTasks(TaskFilter{}); len(list) != 2 {
		t.Fatalf("%d tasks left, want 2", len(list))
	}
	var r TaskRecord
	for i := range 3 * MaxTimeline {
		r.AddEvent(Event{Detail: fmt.Sprint(i)})
	}
	if len(r.Timeline) != MaxTimeline || r.Timeline[len(r.Timeline)-1].Detail != fmt.Sprint(3*MaxTimeline-1) {
		t.Fatalf("timeline of %d events, last %q", len(r.Timeline), r.Timeline[len(r.Timeline)-1].Detail)
	}
}

// A task id may be given by a unique prefix of 8+ hex characters.
func TestResolveTaskIDByPrefix(t *testing.T) {
	db, _ := openT(t)
	for _, id := range []string{"abcdef0011", "abcdef0022", "12345678ff"} {
		if err := db.CreateTask(newTask(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := db.GetTaskByPrefix("12345678"); err != nil || r.Task.ID != "12345678ff" {
		t.Fatalf("unique prefix: %v %v", r.Task.ID, err)
	}
	if _, err := db.GetTaskByPrefix("abcdef00"); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "abcdef0011") {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	for _, bad := range []string{"1234567", "../../etc", "ABCDEF00", "99999999"} {
		if _, err := db.GetTaskByPrefix(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// Listing pages through tasks newest first with a cursor, by type.
func TestListTasksByTypeWithCursor(t *testing.T) {
	db, _ := openT(t)
	for i := range 5 {
		r := newTask(fmt.Sprintf("task%d", i), int64(i+1))
		if i%2 == 1 {
			r.Task.Type = "wasm.exec.v1"
		}
		if err := db.CreateTask(r); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(rs []TaskRecord) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Task.ID)
		}
		return strings.Join(out, ",")
	}
	page1, _ := db.ListTasks(TaskFilter{Limit: 2})
	page2, _ := db.ListTasks(TaskFilter{Limit: 2, After: page1[len(page1)-1].Task.ID})
	page3, _ := db.ListTasks(TaskFilter{Limit: 2, After: page2[len(page2)-1].Task.ID})
	if got := ids(page1) + "|" + ids(page2) + "|" + ids(page3); got != "task4,task3|task2,task1|task0" {
		t.Fatalf("pages %s", got)
	}
	if got, _ := db.ListTasks(TaskFilter{Type: "wasm.exec.v1"}); ids(got) != "task3,task1" {
		t.Fatalf("by type: %s", ids(got))
	}
	if _, err := db.ListTasks(TaskFilter{After: "nope0000"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown cursor: %v", err)
	}
}

// An executor's second, different result is kept beside its first as
// evidence of equivocation; a third is refused.
func TestEquivocationKeptBesideTheFirstResult(t *testing.T) {
	db, _ := openT(t)
	if err := db.CreateTask(newTask("t", 1)); err != nil {
		t.Fatal(err)
	}
	err := db.Update(func(tx *Tx) error {
		if err := tx.PutResult("t", "e", []byte("A")); err != nil {
			return err
		}
		if err := tx.PutResult("t", "e", []byte("B")); !errors.Is(err, ErrExists) {
			return fmt.Errorf("second result: %v", err)
		}
		if err := tx.PutEquivocation("t", "e", []byte("B")); err != nil {
			return err
		}
		if err := tx.PutEquivocation("t", "e", []byte("C")); !errors.Is(err, ErrExists) {
			return fmt.Errorf("third result: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := db.Results("t")
	if len(rs) != 2 || string(rs["e"]) != "A" || string(rs["e\x00second"]) != "B" {
		t.Fatalf("results %q", rs)
	}
}

// Tasks this node only observed (neither submitted nor a candidate of)
// go after ObservedBefore, its own after Before; the walk stops at the
// first task created after the later cutoff, so it never reads a recent
// record (a review of 2026-12-07 had a prune decode every stored task,
// once a minute, while none was due).
func TestPruneTasksObservedSoonerAndStopsAtRecent(t *testing.T) {
	db, _ := openT(t)
	now := time.Now()
	old := now.Add(-2 * time.Hour).UnixMilli()
	for _, c := range []struct {
		id        string
		origin    bool
		cands     []string
		executors []string
	}{
		{"own", true, nil, nil},
		{"ran", false, []string{"other", "me"}, []string{"me"}},
		// A candidate whose turn never came did not run it: anyone can
		// name any node a candidate (a second review of 2026-12-07).
		{"named", false, []string{"other", "me"}, []string{"other"}},
		{"seen", false, []string{"other"}, nil},
	} {
		r := newTask(c.id, old)
		r.State, r.Origin, r.Task.Candidates, r.Task.Submitter = protocol.StateAccepted, c.origin, c.cands, "someone"
		r.Executors = c.executors
		r.Updated = time.UnixMilli(old)
		if err := db.CreateTask(r); err != nil {
			t.Fatal(err)
		}
	}
	// A recent task whose record cannot be read: a walk that reached it
	// would fail.
	fresh := newTask("fresh", now.UnixMilli())
	if err := db.CreateTask(fresh); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error {
		b, err := tx.bucket(bucketTasks)
		if err != nil {
			return err
		}
		return b.Put([]byte("fresh"), []byte("not a record"))
	}); err != nil {
		t.Fatal(err)
	}
	var gone []string
	if err := db.Update(func(tx *Tx) error {
		var err error
		gone, err = tx.PruneTasks(PruneRule{Before: now.Add(-7 * 24 * time.Hour), ObservedBefore: now.Add(-time.Hour), Self: "me", Limit: 100})
		return err
	}); err != nil {
		t.Fatalf("prune read a record created after its cutoffs: %v", err)
	}
	if slices.Sort(gone); strings.Join(gone, ",") != "named,seen" {
		t.Fatalf("pruned %v, want only the tasks this node did not run", gone)
	}
}
