package node

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/store"
)

// driver runs the task lifecycle: one goroutine (loop) owns every live
// task's protocol.Lifecycle, feeds it what the mesh delivers, and carries
// out each step's actions; each step's persistence is one bbolt
// transaction (the result that caused it, the state and timeline, the
// output, the audit entry). Finished tasks leave memory at once.
type driver struct {
	n    *Node
	in   chan func() // work for the loop goroutine
	live map[string]*liveTask
	// tasks mirrors live's tasks (id -> *protocol.Task, immutable) for
	// validators off the loop goroutine: a result from an executor that
	// is no candidate is refused without waiting for the loop, so a flood
	// of forged results does not hold up gossipsub's bounded validators
	// (which drop what they have no room for, honest results included).
	tasks sync.Map
	early *earlyBuffer
	// observed counts the live tasks this node only observes, in all and
	// per submitter.
	observed            int
	observedBySubmitter map[string]int
	// observedRate and observedBytes are the store's budget for new
	// observed tasks (storeBudget).
	observedRate  *protocol.Limiter
	observedBytes *rate.Limiter

	// syncs and observedSyncs are the result syncs running for the tasks
	// this node submitted or runs (maxSyncs) and for those it only
	// observes (maxObservedSyncs).
	syncs, observedSyncs chan struct{}

	watchMu  sync.Mutex
	watchers map[string]map[chan struct{}]bool
	closed   bool
}

// liveTask is a task whose lifecycle is not over.
type liveTask struct {
	lc       *protocol.Lifecycle
	wake     time.Time
	cancel   context.CancelFunc // this node's run, while it goes
	observed bool               // neither submitted nor run by this node
}

// Bounds of the lifecycles in memory. Anyone can sign a task naming
// made-up candidates, and every node would follow it until its deadline:
// tasks this node only observes (it neither submitted nor runs them) are
// followed within a smaller share, and within a share per submitter, so a
// flood of forged tasks never crowds out the tasks this node submits or is
// a candidate for. A task beyond its share is neither followed nor stored.
const (
	maxLiveTasks            = 4096 // every live task
	maxObservedTasks        = 1024 // tasks this node neither submitted nor runs
	maxObservedPerSubmitter = 64   // of those, per submitting node
)

// errBusy is a task refused because the lifecycles in memory, or the
// store's budget for others' tasks, are at their bound.
var errBusy = errors.New("too many live tasks")

// The store's budget for the tasks this node only observes. The live
// bounds above count tasks until they end, and a signer chooses how soon
// that is: a review of 2026-12-07 had one stranger's key, with deadlines
// of a second, have a node store 320 tasks (65 MiB) in 22 s, to be kept
// for the retention. So new observed tasks are also limited in rate, per
// submitter and in bytes overall; with ObservedTaskRetention (an hour)
// that bounds the records of observed tasks in the store to about
// observedBytesBurst + observedBytesPerSec × the retention (16 + 56 MiB,
// counted by storeCharge).
const (
	observedPerSubmitterBurst = 64
	observedPerSubmitterRate  = 0.1 // tasks a second
	observedBytesBurst        = 16 << 20
	observedBytesPerSec       = 16 << 10
)

// storeCharge is what a task whose envelope is size bytes costs the
// store: its record holds the envelope about 2.4 times over (the task,
// with its input, and the envelope, each base64 again; a second review of
// 2026-12-07 measured 2.3× and found the budget counting 1×).
func storeCharge(size int) int { return size * 12 / 5 }

// storeBudget spends the store's budget for a new observed task of
// submitter whose envelope is size bytes (loop goroutine).
func (d *driver) storeBudget(submitter string, size int, now time.Time) error {
	if !d.observedRate.Has(submitter, now) {
		return fmt.Errorf("%w: submitter %s's tasks arrive faster than %g a second (after %d)", errBusy, protocol.ShortPeer(submitter), observedPerSubmitterRate, observedPerSubmitterBurst)
	}
	if !d.observedBytes.AllowN(now, storeCharge(size)) {
		return fmt.Errorf("%w: others' tasks arrive faster than %d bytes a second (after %d)", errBusy, observedBytesPerSec, observedBytesBurst)
	}
	d.observedRate.Allow(submitter, now)
	return nil
}

func newDriver(n *Node) *driver {
	return &driver{n: n, in: make(chan func(), 256), live: map[string]*liveTask{}, observedBySubmitter: map[string]int{},
		observedRate:  protocol.NewLimiter(observedPerSubmitterRate, observedPerSubmitterBurst),
		observedBytes: rate.NewLimiter(observedBytesPerSec, observedBytesBurst),
		syncs:         make(chan struct{}, maxSyncs), observedSyncs: make(chan struct{}, maxObservedSyncs),
		early: newEarlyBuffer(maxEarlyMessages, maxEarlyPerTask, earlyTTL), watchers: map[string]map[chan struct{}]bool{}}
}

// do runs fn on the loop goroutine and waits for it; false if the node is
// stopping.
func (d *driver) do(ctx context.Context, fn func()) bool {
	done := make(chan struct{})
	select {
	case d.in <- func() { fn(); close(done) }:
	case <-ctx.Done():
		return false
	case <-d.n.ctx.Done():
		return false
	}
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	case <-d.n.ctx.Done():
		return false
	}
}

// admit checks a message about task id against its live lifecycle on the
// loop goroutine: ErrStale for a task that is over here, ErrNotYet for one
// not seen yet, else what check says. A message that may become checkable
// later (task not seen, turn not come) is kept in the same step, so the
// replay that follows the task's arrival or its turn cannot miss it.
func (d *driver) admit(ctx context.Context, id string, m earlyMessage, check func(*protocol.Lifecycle) error) (*protocol.Task, error) {
	var (
		task *protocol.Task
		err  error
	)
	ok := d.do(ctx, func() {
		lt := d.live[id]
		if lt == nil {
			// Not decoded: anyone can send messages about a finished
			// task, and this runs on the loop goroutine.
			if stored, _ := d.n.db.HasTask(id); stored {
				err = fmt.Errorf("%w: task %s is over here", protocol.ErrStale, short(id))
				return
			}
			d.early.add(id, m)
			err = fmt.Errorf("%w: task %s not seen yet", protocol.ErrNotYet, short(id))
			return
		}
		task = lt.lc.Task()
		if err = check(lt.lc); errors.Is(err, protocol.ErrNotYourTurn) {
			d.early.add(id, m)
		}
	})
	if !ok {
		return nil, fmt.Errorf("%w: node stopping", protocol.ErrNotYet)
	}
	return task, err
}

// followed returns a live task, from any goroutine.
func (d *driver) followed(id string) (*protocol.Task, bool) {
	t, ok := d.tasks.Load(id)
	if !ok {
		return nil, false
	}
	return t.(*protocol.Task), true
}

// post queues fn for the loop goroutine without waiting.
func (d *driver) post(fn func()) {
	select {
	case d.in <- fn:
	case <-d.n.ctx.Done():
	}
}

// loop is the owner goroutine: it restores the live tasks from the store
// first, then serves work and wakes tasks whose time has come. It sleeps
// until the earliest wake-up a task asked for (protocol.WakeAt), not on a
// fixed tick: an idle node has no task to wake, and a 100 ms tick was half
// of its idle CPU.
func (d *driver) loop() {
	defer d.n.wg.Done()
	if err := d.restore(); err != nil {
		d.n.log.Error("tasks not restored", "err", err)
	}
	wake := time.NewTimer(0)
	defer wake.Stop()
	var armed, fired time.Time // when wake fires (zero: stopped); when it last fired
	// Early messages expire in coarse steps: they are bounded in number
	// anyway, and a step costs a wake-up.
	expire := time.NewTicker(earlyTTL / 8)
	defer expire.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		select {
		case <-d.n.ctx.Done():
			for _, lt := range d.live {
				if lt.cancel != nil {
					lt.cancel()
				}
			}
			return
		case fn := <-d.in:
			fn()
		case now := <-wake.C:
			armed, fired = time.Time{}, now
			for id, lt := range d.live {
				if !lt.wake.IsZero() && !now.Before(lt.wake) {
					d.step(id, protocol.EvTick{}, nil)
				}
			}
		case now := <-expire.C:
			d.early.expire(now)
		case <-prune.C:
			d.prune()
		}
		armed = d.rearm(wake, armed, fired.Add(minWakeGap))
	}
}

// minWakeGap is the least time between two wake-ups of the driver: a task
// whose step asked for no later wake-up (the lifecycle always does, but
// nothing checks it) is ticked again at the old fixed tick's pace, not in
// a busy loop.
const minWakeGap = 100 * time.Millisecond

// rearm sets wake to fire at the earliest wake-up of a live task, but
// not before floor, or stops it if none asked for one, and returns when it
// fires. armed is when it fires now (zero: stopped); an unchanged time
// costs nothing.
func (d *driver) rearm(wake *time.Timer, armed, floor time.Time) time.Time {
	var next time.Time
	for _, lt := range d.live {
		if !lt.wake.IsZero() && (next.IsZero() || lt.wake.Before(next)) {
			next = lt.wake
		}
	}
	if !next.IsZero() && next.Before(floor) {
		next = floor
	}
	switch {
	case next.Equal(armed):
	case next.IsZero():
		wake.Stop()
	default:
		wake.Reset(time.Until(next)) // at once if due (Go 1.23+ timers drop a stale fire)
	}
	return next
}

// restore rebuilds the lifecycles of unfinished tasks after a restart:
// their stored results count (they passed the validators before they were
// stored), and a task this node had started is not run again.
func (d *driver) restore() error {
	recs, err := d.n.db.ListTasks(store.TaskFilter{})
	if err != nil {
		return fmt.Errorf("restore tasks: %w", err)
	}
	for _, rec := range recs {
		if rec.State.Terminal() {
			continue
		}
		t, err := protocol.OpenTask(rec.Signed)
		if err != nil {
			d.n.log.Warn("stored task does not open", "task", short(rec.Task.ID), "err", err)
			continue
		}
		tt, err := d.n.reg.Lookup(t.Type)
		if err != nil {
			continue
		}
		results, err := d.n.db.Results(t.ID)
		if err != nil {
			return fmt.Errorf("restore results of %s: %w", short(t.ID), err)
		}
		ev := protocol.EvRestored{State: rec.State, Ran: slices.Contains(rec.Executors, d.n.id.String())}
		for _, r := range openResults(results) {
			ev.Results = append(ev.Results, delivery(r))
		}
		observed := t.Submitter != d.n.id.String() && t.CandidateIndex(d.n.id.String()) < 0
		if err := d.room(t, observed); err != nil {
			d.n.log.Warn("stored task not followed after the restart", "task", short(t.ID), "err", err)
			continue
		}
		d.add(t, tt, observed)
		d.step(t.ID, ev, nil)
	}
	return nil
}

// openResults opens the stored results of a task (each signature checked
// once) and orders them by their signing time, the order they came in.
// An envelope that does not open is left out.
func openResults(m map[string][]byte) []*protocol.Result {
	rs := make([]*protocol.Result, 0, len(m))
	for _, env := range m {
		if r, err := protocol.OpenResult(env); err == nil {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b *protocol.Result) int { return cmp.Compare(a.Time, b.Time) })
	return rs
}

func delivery(r *protocol.Result) protocol.Delivery {
	return protocol.Delivery{Executor: r.Executor, Outcome: r.Outcome(), Failure: r.Failure}
}

// track starts following a checked task (loop goroutine): it records it
// if new and steps EvSeen. A task already finished here is not revived.
func (d *driver) track(t *protocol.Task, env []byte, tt protocol.TaskType, rec *store.TaskRecord) error {
	if d.live[t.ID] != nil {
		return nil
	}
	observed := t.Submitter != d.n.id.String() && t.CandidateIndex(d.n.id.String()) < 0
	if observed && rec == nil {
		if seen, _ := d.n.db.HasTask(t.ID); seen {
			return nil // seen before: finished here (a replay spends no budget)
		}
	}
	err := d.room(t, observed)
	if err == nil && observed && rec == nil {
		err = d.storeBudget(t.Submitter, len(env), time.Now())
	}
	if err != nil {
		d.n.met.notFollowed.Inc()
		d.n.log.Debug("task not followed", "task", short(t.ID), "submitter", t.Submitter, "err", err)
		return err
	}
	if rec == nil {
		err := d.n.db.CreateTask(store.TaskRecord{Task: *t, Signed: env, State: protocol.StatePending,
			Timeline: []store.Event{{State: protocol.StatePending, Time: time.Now(), Detail: "seen on the mesh", Peer: t.Submitter}}})
		if errors.Is(err, store.ErrExists) {
			return nil // seen before: finished here, or restored already
		}
		if err != nil {
			d.n.log.Warn("task not recorded", "task", short(t.ID), "err", err)
			return err
		}
	}
	d.add(t, tt, observed)
	d.step(t.ID, protocol.EvSeen{}, nil)
	d.replayEarly(t.ID)
	return nil
}

// room says whether a task fits within the bounds of live lifecycles.
func (d *driver) room(t *protocol.Task, observed bool) error {
	switch {
	case len(d.live) >= maxLiveTasks:
		return fmt.Errorf("%w: %d followed", errBusy, maxLiveTasks)
	case observed && d.observed >= maxObservedTasks:
		return fmt.Errorf("%w: %d observed", errBusy, maxObservedTasks)
	case observed && d.observedBySubmitter[t.Submitter] >= maxObservedPerSubmitter:
		return fmt.Errorf("%w: %d observed from submitter %s", errBusy, maxObservedPerSubmitter, protocol.ShortPeer(t.Submitter))
	}
	return nil
}

// add makes a task live (loop goroutine).
func (d *driver) add(t *protocol.Task, tt protocol.TaskType, observed bool) {
	d.live[t.ID] = &liveTask{lc: protocol.NewLifecycle(d.n.id.String(), t, tt), observed: observed}
	d.tasks.Store(t.ID, t)
	if observed {
		d.observed++
		d.observedBySubmitter[t.Submitter]++
	}
}

// remove ends a live task (loop goroutine).
func (d *driver) remove(id string) {
	lt := d.live[id]
	if lt == nil {
		return
	}
	delete(d.live, id)
	d.tasks.Delete(id)
	d.early.drop(id)
	if lt.observed {
		d.observed--
		sub := lt.lc.Task().Submitter
		if d.observedBySubmitter[sub]--; d.observedBySubmitter[sub] <= 0 {
			delete(d.observedBySubmitter, sub)
		}
	}
}

// step feeds one event to a live task's lifecycle and carries out the
// actions (loop goroutine). env is the result envelope that caused the
// event, stored in the same transaction.
func (d *driver) step(id string, ev protocol.Event, env []byte) {
	lt := d.live[id]
	if lt == nil {
		return
	}
	now := time.Now()
	acts := lt.lc.Step(now, ev)
	var (
		persists  []protocol.Persist
		penalties []protocol.Penalize
		run       bool
		sync      *protocol.Sync
	)
	for _, a := range acts {
		switch a := a.(type) {
		case protocol.Persist:
			persists = append(persists, a)
		case protocol.Penalize:
			penalties = append(penalties, a)
		case protocol.Run:
			run = true
		case protocol.Stop:
			if lt.cancel != nil {
				d.n.log.Info("stopping run", "task", short(id), "reason", a.Reason)
				lt.cancel()
			}
		case protocol.WakeAt:
			lt.wake = a.At
		case protocol.Sync:
			sync = &a
		}
	}
	if err := d.commit(id, now, env, persists, penalties, run); err != nil {
		d.n.log.Warn("task step not persisted", "task", short(id), "err", err)
	}
	for _, p := range penalties {
		if pid, err := peerID(p.Executor); err == nil {
			d.n.rep.rejected(pid)
			d.n.mesh.MarkChanged(pid)
		}
	}
	if run {
		d.startRun(lt)
	}
	if sync != nil {
		d.syncResults(lt.lc.Task(), *sync, lt.observed)
	}
	if lt.lc.State().Terminal() {
		d.remove(id)
	}
	if len(persists) > 0 {
		d.notify(id)
		if d.live[id] != nil {
			d.replayEarly(id) // a turn may have come for a result kept as early
		}
	}
}

// commit writes one step: the result envelope, each state change with its
// timeline entry, the settlement (output, settling executors, failure),
// this node's claim on a run, and the audit entries, in one transaction.
func (d *driver) commit(id string, now time.Time, env []byte, ps []protocol.Persist, pen []protocol.Penalize, run bool) error {
	if env == nil && len(ps) == 0 && len(pen) == 0 && !run {
		return nil
	}
	self := d.n.id.String()
	var final protocol.TaskState
	err := d.n.db.Update(func(tx *store.Tx) error {
		if env != nil {
			r, err := protocol.OpenResult(env)
			if err != nil {
				return err
			}
			err = tx.PutResult(id, r.Executor, env)
			if errors.Is(err, store.ErrExists) {
				err = tx.PutEquivocation(id, r.Executor, env)
			}
			if err != nil && !errors.Is(err, store.ErrExists) {
				return err
			}
		}
		rec, err := tx.UpdateTask(id, func(rec *store.TaskRecord) error {
			for _, p := range ps {
				if p.State != rec.State {
					if err := protocol.Transition(rec.State, p.State); err != nil {
						return err
					}
					rec.State = p.State
				}
				rec.AddEvent(store.Event{State: p.State, Time: now, Detail: p.Detail, Peer: p.Peer})
				if p.Reason != "" && rec.Reason == "" {
					rec.Reason = p.Reason
				}
				if p.Ran && !slices.Contains(rec.Executors, p.Peer) {
					rec.Executors = append(rec.Executors, p.Peer)
				}
				if s := p.Settlement; s != nil {
					rec.Settled, rec.Failure, rec.Outcome = s.Executors, s.Failure, s.Outcome
					if s.Failure == nil {
						out, err := settledOutput(tx, id, s.Executors[0], s.Outcome)
						if err != nil {
							return err
						}
						rec.Output = out
					}
				}
			}
			if run && !slices.Contains(rec.Executors, self) {
				rec.Executors = append(rec.Executors, self)
			}
			return nil
		})
		if err != nil {
			return err
		}
		final = rec.State
		for _, p := range pen {
			if _, err := tx.Append(store.AuditEntry{Kind: "result.refuted", Actor: p.Executor, Subject: id, Detail: p.Detail}); err != nil {
				return err
			}
		}
		if final.Terminal() {
			last := rec.Timeline[len(rec.Timeline)-1]
			if _, err := tx.Append(store.AuditEntry{Kind: "task." + string(final), Actor: last.Peer, Subject: id, Detail: last.Detail}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range ps {
		d.n.met.tasks.WithLabelValues(string(p.State)).Inc()
	}
	if final == protocol.StateAccepted {
		if rec, err := d.n.db.GetTask(id); err == nil {
			d.n.met.submitTo.Observe(time.Since(time.UnixMilli(rec.Task.Created)).Seconds())
		}
		d.n.log.Info("task accepted", "task", short(id))
	} else if final.Terminal() {
		d.n.log.Info("task ended", "task", short(id), "state", final)
	}
	return nil
}

// settledOutput is the output of the executor whose result settled a task.
func settledOutput(tx *store.Tx, id, executor, outcome string) ([]byte, error) {
	rs, err := tx.Results(id)
	if err != nil {
		return nil, err
	}
	env, r := settledResult(rs, executor, outcome)
	if env == nil {
		return nil, fmt.Errorf("the settling result of %s (outcome %s) is not stored", protocol.ShortPeer(executor), outcome)
	}
	return r.Output, nil
}

// settledResult picks, among an executor's stored results (two if it
// equivocated), the one with the settled outcome.
func settledResult(rs map[string][]byte, executor, outcome string) ([]byte, *protocol.Result) {
	for _, k := range []string{executor, executor + "\x00second"} {
		if r, err := protocol.OpenResult(rs[k]); err == nil && (outcome == "" || r.Outcome() == outcome) {
			return rs[k], r
		}
	}
	return nil, nil
}

// startRun starts this node's run of a live task (loop goroutine).
func (d *driver) startRun(lt *liveTask) {
	t := lt.lc.Task()
	ctx, cancel := context.WithDeadline(d.n.ctx, time.UnixMilli(t.Deadline))
	lt.cancel = cancel
	d.n.wg.Add(1)
	go func() {
		defer d.n.wg.Done()
		defer cancel()
		err := d.n.execute(ctx, t)
		switch {
		case err == nil, d.n.ctx.Err() != nil:
		case errors.Is(ctx.Err(), context.Canceled):
			// Stopped: settled, canceled or handed on, which the Stop
			// logged with its reason; not a failure (a walkthrough saw a
			// WARN "context canceled" for every cancel).
			d.n.log.Debug("run stopped", "task", short(t.ID), "err", err)
		default:
			d.n.met.execFailed.WithLabelValues(execFailReason(err)).Inc()
			d.n.log.Warn("task execution failed", "task", short(t.ID), "type", t.Type, "err", err)
		}
		d.post(func() {
			if lt := d.live[t.ID]; lt != nil {
				lt.cancel = nil
			}
		})
	}()
}

// Bounds of result syncs (protocol.Sync): how many run at once, for the
// tasks this node submitted or is a candidate for and for those it only
// observes (anyone can sign tasks that every node observes: they must
// not take the slots of a node's own), and how long an ask may last past
// the silence it precedes (at most syncTimeout in all). A sync that finds
// no slot before then is dropped: the next silence asks again.
const (
	maxSyncs         = 16
	maxObservedSyncs = 8
	syncGrace        = time.Second
	syncTimeout      = 10 * time.Second
)

// syncTargets are the peers a node asks for the results of the silent
// executors of task t. The submitter and the candidates ask each silent
// executor (it keeps its own result) and the submitter (it keeps every
// result it checked). A node that only observes the task asks the
// submitter alone: anyone can sign a task naming any candidates, and
// every node of the network follows it, so were observers to ask the
// candidates, one forged task would have the whole network call on them.
func syncTargets(t *protocol.Task, executors []string, observed bool) []string {
	if observed {
		return []string{t.Submitter}
	}
	targets := slices.Clone(executors)
	if !slices.Contains(targets, t.Submitter) {
		targets = append(targets, t.Submitter)
	}
	return targets
}

// syncResults asks peers (syncTargets, all at once, so that one that
// stalls costs nothing but its own answer) for the results of executors
// that this node lacks, before its lifecycle acts on their silence, and
// until a moment after it. Each envelope fetched is checked as a result
// that came by gossip, with its executor as the publisher (the envelope
// is its signature), and stepped like one. Every node that observes the
// task asks its submitter at about the same time, so an observer waits a
// random part of the first half of the time left before the silence: the
// asks reach the submitter spread out, not at once. The participants,
// few, ask at once.
func (d *driver) syncResults(t *protocol.Task, s protocol.Sync, observed bool) {
	targets := syncTargets(t, s.Executors, observed)
	slots := d.syncs
	if observed {
		slots = d.observedSyncs
	}
	left := time.Until(s.Before)
	var jitter time.Duration
	if observed && left > 1 {
		jitter = rand.N(left / 2)
	}
	timeout := min(max(left, 0)+syncGrace, syncTimeout)
	d.n.wg.Add(1)
	go func() {
		defer d.n.wg.Done()
		ctx, cancel := context.WithTimeout(d.n.ctx, timeout)
		defer cancel()
		if observed {
			// Observers are many: they ask only over a connection that
			// exists, so a silence never has the network dial the submitter.
			ctx = network.WithNoDial(ctx, "results sync of an observed task")
		}
		select {
		case <-time.After(jitter):
		case <-ctx.Done():
			return
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-ctx.Done():
			return
		}
		var (
			mu    sync.Mutex
			found = map[string]bool{}
			seen  = map[[32]byte]bool{} // envelopes already looked at
			errs  []error
			asked sync.WaitGroup
		)
		for _, target := range targets {
			p, err := peer.Decode(target)
			if err != nil || p == d.n.id {
				continue
			}
			asked.Go(func() {
				envs, err := d.n.mesh.FetchResults(ctx, p, t.ID)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				for _, env := range envs {
					h := sha256.Sum256(env)
					mu.Lock()
					dup := seen[h]
					seen[h] = true
					mu.Unlock()
					if dup {
						continue // the same envelope from another peer, or twice in one answer
					}
					if r := d.n.synced(ctx, t.ID, p, env); r != nil && slices.Contains(s.Executors, r.Executor) {
						mu.Lock()
						found[r.Executor] = true
						mu.Unlock()
						d.n.met.synced.WithLabelValues("recovered").Inc()
						d.n.log.Info("result recovered from a peer", "task", short(t.ID), "executor", protocol.ShortPeer(r.Executor), "from", p)
					}
				}
			})
		}
		asked.Wait()
		switch {
		case len(found) > 0:
		case len(errs) > 0 && len(seen) == 0:
			d.n.met.synced.WithLabelValues("error").Inc()
		default:
			d.n.met.synced.WithLabelValues("none").Inc()
		}
		d.n.log.Debug("results asked of peers", "task", short(t.ID), "silent", len(s.Executors), "still_missing", len(s.Executors)-len(found), "err", errors.Join(errs...))
	}()
}

// prune deletes finished tasks past the retention (loop goroutine).
func (d *driver) prune() {
	keep, keepObserved := d.n.cfg.TaskRetention, d.n.cfg.ObservedTaskRetention
	if keep > 0 && (keepObserved <= 0 || keepObserved > keep) {
		keepObserved = keep
	}
	if keep <= 0 && keepObserved <= 0 {
		return // everything kept forever
	}
	var ids []string
	err := d.n.db.Update(func(tx *store.Tx) error {
		var err error
		now := time.Now()
		// --task-retention 0 keeps this node's own tasks forever, not
		// strangers' (a second review of 2026-12-07).
		rule := store.PruneRule{Self: d.n.id.String(), Limit: 1000}
		if keep > 0 {
			rule.Before = now.Add(-keep)
		}
		if keepObserved > 0 {
			rule.ObservedBefore = now.Add(-keepObserved)
		}
		ids, err = tx.PruneTasks(rule)
		return err
	})
	if err != nil {
		d.n.log.Warn("finished tasks not pruned", "err", err)
		return
	}
	if len(ids) > 0 {
		d.n.met.pruned.Add(float64(len(ids)))
		d.n.log.Debug("finished tasks pruned", "count", len(ids))
	}
}

// ---- watchers (API) ----

func (d *driver) notify(id string) {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	for ch := range d.watchers[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (d *driver) watch(id string) (<-chan struct{}, func()) {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	ch := make(chan struct{}, 1)
	if d.closed {
		close(ch)
		return ch, func() {}
	}
	if d.watchers[id] == nil {
		d.watchers[id] = map[chan struct{}]bool{}
	}
	d.watchers[id][ch] = true
	return ch, func() {
		d.watchMu.Lock()
		defer d.watchMu.Unlock()
		if d.watchers[id][ch] {
			delete(d.watchers[id], ch)
			if len(d.watchers[id]) == 0 {
				delete(d.watchers, id)
			}
			close(ch)
		}
	}
}

func (d *driver) closeWatchers() {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	d.closed = true
	for id, ws := range d.watchers {
		for ch := range ws {
			close(ch)
		}
		delete(d.watchers, id)
	}
}
