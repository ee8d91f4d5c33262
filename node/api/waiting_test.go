package api

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/protocol"
)

// waitingBackend serves one task whose view the test steps through.
type waitingBackend struct {
	nopBackend
	mu    sync.Mutex
	views []TaskView
	ch    chan struct{}
}

func (b *waitingBackend) Task(id string) (TaskView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.views[0], nil
}

func (b *waitingBackend) next() {
	b.mu.Lock()
	b.views = b.views[1:]
	b.mu.Unlock()
	b.ch <- struct{}{}
}

func (b *waitingBackend) Watch(string) (<-chan struct{}, func(), error) {
	return b.ch, func() {}, nil
}

// A task's event stream says what it waits for when that changes, once,
// as a "waiting" event (clients that do not know it skip it), and says
// so again when it no longer waits.
func TestEventStreamSaysWhatTheTaskWaitsFor(t *testing.T) {
	note := "candidate 0 (abcdefgh) is listed offline here; without its result, candidate 1 (ijklmnop) takes over at 12:00:30 UTC"
	b := &waitingBackend{ch: make(chan struct{}), views: []TaskView{
		{TaskID: "t1", State: protocol.StateRunning},
		{TaskID: "t1", State: protocol.StateRunning, Waiting: note},
		{TaskID: "t1", State: protocol.StateRunning, Waiting: note},
		{TaskID: "t1", State: protocol.StateRunning},
		{TaskID: "t1", State: protocol.StateAccepted},
	}}
	addr, _ := serve(t, b, DefaultConfig())
	resp := openEvents(t, addr, "t1")
	go func() {
		for range 4 {
			b.next()
		}
	}()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	got := string(body)
	if n := strings.Count(got, "event: waiting"); n != 2 || strings.Count(got, note) != 1 || !strings.Contains(got, "event: end") {
		t.Fatalf("%d waiting events (want the note once, then its end); stream:\n%s", n, got)
	}
}

// The waiting note follows the peer table, which wakes no task watcher
// when a candidate goes offline by its heartbeats' age: the stream
// recomputes the view every WaitingRefresh and says it then.
func TestEventStreamSaysWhatTheTaskWaitsForUnwoken(t *testing.T) {
	note := "candidate 0 (abcdefgh) is listed offline here"
	b := &waitingBackend{ch: make(chan struct{}), views: []TaskView{
		{TaskID: "t1", State: protocol.StateRunning},
		{TaskID: "t1", State: protocol.StateRunning, Waiting: note},
	}}
	addr, _ := serve(t, b, DefaultConfig())
	resp := openEvents(t, addr, "t1")
	b.mu.Lock()
	b.views = b.views[1:] // the peer table moved; no watcher woken
	b.mu.Unlock()
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.Contains(sc.Text(), note) {
				got <- sc.Text()
				return
			}
		}
	}()
	select {
	case <-got:
	case <-time.After(3 * WaitingRefresh):
		t.Fatalf("no waiting event within %s of the view's change", 3*WaitingRefresh)
	}
}

// openEvents opens task id's event stream on the API at addr, with the
// admin token; it is closed when the test ends.
func openEvents(t *testing.T, addr, id string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/tasks/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}
