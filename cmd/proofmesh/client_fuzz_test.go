package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
)

// fuzzNode is an HTTP server that answers as a node would, with bytes
// the fuzzer chooses: POST /api/v1/tasks submits task t1, and every other
// request gets the current status and body.
type fuzzNode struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int
	body   []byte
}

func newFuzzNode(f *testing.F) *fuzzNode {
	n := &fuzzNode{}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/tasks" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"task_id":"t1"}`))
			return
		}
		n.mu.Lock()
		status, body := n.status, n.body
		n.mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/events") {
			w.Header().Set("Content-Type", "text/event-stream")
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	f.Cleanup(n.srv.Close)
	return n
}

func (n *fuzzNode) serve(status int, body []byte) {
	n.mu.Lock()
	n.status, n.body = status, body
	n.mu.Unlock()
}

func (n *fuzzNode) client() *client {
	return &client{base: n.srv.URL, token: "tok", http: n.srv.Client()}
}

// sseEvent formats one server-sent event as the node's events handler does.
func sseEvent(f *testing.F, name string, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return fmt.Sprintf("event: %s\ndata: %s\n\n", name, b)
}

// hasControl reports a byte that a terminal would act on: escape, carriage
// return, the other C0 controls but newline and tab, and DEL (C1 and
// bidirectional controls as UTF-8 too).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && r != '\t' && needsEscape(r) })
}

// FuzzFollowEvents serves arbitrary bytes as a task's event stream to
// the client's follow loop (submitAndFollow over client.watch), as a node
// or anything on its address could. The client neither panics nor hangs;
// it exits 0 only for the task it submitted, ended accepted; a failure
// names the task; and what it prints for people carries no terminal control
// sequence (the rule cell keeps for tables).
func FuzzFollowEvents(f *testing.F) {
	t0 := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	accepted := api.TaskView{TaskID: "t1", Type: "mimc.chain.v1", State: protocol.StateAccepted, Output: json.RawMessage(`"42"`), Created: t0}
	failed := api.TaskView{TaskID: "t1", Type: "mimc.chain.v1", State: protocol.StateFailed, Reason: "no executor", Created: t0}
	state := func(s protocol.TaskState, d string) string {
		return sseEvent(f, "state", api.Event{State: s, Time: t0, Detail: d})
	}
	f.Add([]byte(state(protocol.StatePending, "") + state(protocol.StateRunning, "on 12D3KooW") + ": keepalive\n\n" + sseEvent(f, "end", accepted)))
	f.Add([]byte(state(protocol.StatePending, "") + sseEvent(f, "end", failed)))
	f.Add([]byte(strings.ReplaceAll(state(protocol.StatePending, "")+sseEvent(f, "end", accepted), "\n", "\r\n")))
	f.Add([]byte(state(protocol.StatePending, ""))) // the node went away
	f.Add([]byte("event: end\ndata: {\"task_id\":\"t1\",\"state\":\"acc"))
	f.Add([]byte("event: state\ndata: x\n\nevent: end\ndata: [1]\n\n"))
	f.Add([]byte("data: " + strings.Repeat("a", 70<<10) + "\n"))
	f.Add([]byte("event: end\ndata: {}\n\n"))                                   // an end that is no task's
	f.Add([]byte(state(protocol.StateRunning, "\x1b]0;owned\a\x1b[2J") + "\n")) // a detail that drives the terminal

	n := newFuzzNode(f)
	f.Fuzz(func(t *testing.T, stream []byte) {
		n.serve(http.StatusOK, stream)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out, progress bytes.Buffer
		err := submitAndFollow(ctx, n.client(), api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"1"}`)}, &out, &progress, followOpts{})
		if ctx.Err() != nil {
			t.Fatalf("following the stream did not end within 10s: %v", err)
		}
		if hasControl(progress.String()) {
			t.Fatalf("a control character from the stream reaches the terminal: %q", progress.String())
		}
		var ee exitError
		switch {
		case err == nil:
			var v api.TaskView
			if jerr := json.Unmarshal(out.Bytes(), &v); jerr != nil || v.TaskID != "t1" || v.State != protocol.StateAccepted {
				t.Fatalf("exit 0 for %q (task %q, state %q, %v)", out.String(), v.TaskID, v.State, jerr)
			}
		case errors.As(err, &ee):
			// Printed a task that was not accepted: it must be t1, ended.
			var v api.TaskView
			if jerr := json.Unmarshal(out.Bytes(), &v); jerr != nil || v.TaskID != "t1" || !v.State.Terminal() {
				t.Fatalf("reported as the end of t1: %q (task %q, state %q, %v)", out.String(), v.TaskID, v.State, jerr)
			}
		default:
			if !strings.Contains(err.Error(), "t1") {
				t.Fatalf("error does not name the task it followed: %v", err)
			}
		}
	})
}

// FuzzClientDo serves arbitrary answers (status and body) to client.do, the
// decoder of every API answer the CLI reads. It never panics; an error
// answer (3xx-5xx) comes back as an *apiError that gives the status; a
// success that does not decode is an error naming the request; and an
// error's text carries no terminal control sequence (the CLI prints it
// as it is).
func FuzzClientDo(f *testing.F) {
	t0 := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	peers, err := json.Marshal([]api.PeerView{{ID: "12D3KooW", Status: protocol.StatusOnline, NodeType: "executor", LastSeen: t0}})
	if err != nil {
		f.Fatal(err)
	}
	apiErr, err := json.Marshal(api.Error{Error: "not_found", Message: "not found: task t1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(200, peers)
	f.Add(200, []byte(`[]`))
	f.Add(200, []byte(`null`))
	f.Add(404, apiErr)
	f.Add(500, []byte("internal error\n"))
	f.Add(401, []byte(`{"error":""}`))
	f.Add(204, []byte(nil))

	n := newFuzzNode(f)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 200 || status > 599 {
			return // net/http refuses to write other codes
		}
		if status == http.StatusNoContent || status == http.StatusNotModified || (status >= 100 && status < 200) {
			body = nil // a body net/http may not send
		}
		n.serve(status, body)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var got []api.PeerView
		err := n.client().do(ctx, http.MethodGet, "/api/v1/peers", nil, &got)
		if ctx.Err() != nil {
			t.Fatalf("do did not return within 10s: %v", err)
		}
		if err == nil {
			if status >= 300 {
				t.Fatalf("status %d accepted", status)
			}
			return
		}
		if hasControl(err.Error()) {
			t.Fatalf("a control character from the answer reaches the terminal: %q", err.Error())
		}
		var ae *apiError
		if status >= 300 {
			if !errors.As(err, &ae) || ae.status != status || !strings.Contains(err.Error(), fmt.Sprint(status)) {
				t.Fatalf("status %d answered as %v", status, err)
			}
			return
		}
		if !strings.Contains(err.Error(), "/api/v1/peers") {
			t.Fatalf("an answer that does not decode gives an error that does not name the request: %v", err)
		}
	})
}
