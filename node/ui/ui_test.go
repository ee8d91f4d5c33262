package ui_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/proofmesh/proofmesh/node/ui"
	"github.com/proofmesh/proofmesh/node/ui/uitest"
)

// hostile is what a peer or a task could put in a string the page shows.
const hostile = `<img src=x class=pwn onerror="window.pwned=1"><script>window.pwned=1</script>`

// fakeAPI answers the few routes the dashboard calls with strings that
// try to inject HTML, a node with problems, and an event stream that
// breaks off once, then comes cut in awkward places; only the bearer token "secret" is let in.
func fakeAPI(t *testing.T, queries chan<- string) http.Handler {
	now := time.Now().UTC()
	task := map[string]any{
		"task_id": "f00d" + strings.Repeat("0", 60), "type": "wasm.exec.v1", "state": "failed", "reason": "module trapped: " + hostile,
		"origin": true, "submitter": "12D3KooWSubmitter", "created": now.Add(-3 * time.Second), "deadline": now.Add(time.Minute),
		"replicas": 2, "candidates": []string{"12D3KooWA" + hostile}, "executors": []string{"12D3KooWA" + hostile},
		"failure":  map[string]any{"exit_code": 3, "trap": "exit", "stderr": base64.StdEncoding.EncodeToString([]byte("stderr " + hostile))},
		"timeline": []map[string]any{{"state": "pending", "time": now.Add(-3 * time.Second)}, {"state": "failed", "time": now, "detail": hostile}},
	}
	routes := map[string]any{
		"/api/v1/node": map[string]any{
			"id": "12D3KooWSelf", "network": "devnet", "version": "v1.2.3", "addrs": []string{"/ip4/127.0.0.1/tcp/1/" + hostile},
			"node_type": "compute", "task_types": []string{"wasm.exec.v1"}, "heartbeat_interval_ms": 1000, "started": now,
			"peers":    map[string]int{"online": 1},
			"problems": []map[string]any{{"code": "network_mismatch", "message": "peer 12D3KooWX speaks network other " + hostile, "since": now}},
		},
		"/api/v1/peers": []map[string]any{{
			"id": "12D3KooWPeer" + hostile, "status": "online", "node_type": hostile, "region": hostile, "version": hostile,
			"capabilities": map[string]any{"cpu_cores": 2, hostile: hostile}, "load": 0.5, "last_seen": now,
			"verified_results": 1, "rejected_results": 0,
		}},
		"/api/v1/task-types":                        []map[string]any{{"id": "wasm.exec.v1", "verification": map[string]any{"kind": "replicated", "quorum": 2}, "default_replicas": 2, "max_replicas": 5}},
		"/api/v1/tasks":                             []any{task},
		"/api/v1/tasks/" + task["task_id"].(string): task,
	}
	var streams atomic.Int32
	mux := http.NewServeMux()
	mux.Handle("GET /ui/", ui.Handler())
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "unauthorized", "message": "the bearer token is not valid"})
			return
		}
		if r.URL.Path == "/api/v1/tasks" && queries != nil {
			select {
			case queries <- r.URL.RawQuery:
			default:
			}
		}
		if strings.HasSuffix(r.URL.Path, "/events") {
			w.Header().Set("Content-Type", "text/event-stream")
			ev := func(name string, v any) string {
				b, _ := json.Marshal(v)
				return "event: " + name + "\ndata: " + string(b) + "\n\n"
			}
			tl := task["timeline"].([]map[string]any)
			if streams.Add(1) == 1 {
				// The first stream breaks off after one state: the page
				// must open it again and not show that state twice.
				_, _ = w.Write([]byte(ev("state", tl[0])))
				return
			}
			stream := ev("state", tl[0]) + ": keepalive\n\n" + ev("state", tl[1]) + ev("end", task)
			// Cut the stream in awkward places: inside a field, between
			// the two newlines of a frame's end.
			cuts := []int{9, 40, strings.Index(stream, "\n\n") + 1, len(stream)}
			from := 0
			for _, cut := range cuts {
				_, _ = w.Write([]byte(stream[from:cut]))
				w.(http.Flusher).Flush()
				time.Sleep(20 * time.Millisecond)
				from = cut
			}
			return
		}
		v, ok := routes[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "not_found", "message": "no route " + r.URL.Path})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
	return mux
}

// Strings from peers and tasks reach the page as text, never as HTML; a
// node's problems are shown; a failed task's timeline, reason and stderr
// come through an event stream cut at awkward places, opened again when
// it ends early.
func TestDashboardShowsHostileStringsAsTextAndProblems(t *testing.T) {
	uitest.Chromium(t)
	queries := make(chan string, 100)
	srv := httptest.NewServer(fakeAPI(t, queries))
	defer srv.Close()
	ctx, logs := uitest.Browser(t, 2*time.Minute)
	injected := func(what string) {
		t.Helper()
		var bad bool
		uitest.Run(t, ctx, what+": injection check",
			chromedp.Evaluate(`document.querySelectorAll('img, .pwn, main script').length > 0 || window.pwned === 1`, &bad))
		if bad {
			t.Fatalf("%s: HTML from the API became elements", what)
		}
	}
	var problems, peers string
	uitest.Run(t, ctx, "network view", chromedp.Navigate(srv.URL+"/ui/#token=secret"),
		uitest.WaitText(`#problems`, "network_mismatch"), uitest.WaitText(`#peers`, "online"),
		chromedp.Text(`#problems`, &problems, chromedp.ByQuery), chromedp.Text(`#peers`, &peers, chromedp.ByQuery))
	if !strings.Contains(problems, "speaks network other "+hostile) || !strings.Contains(peers, hostile) {
		t.Fatalf("problems %q, peers %q: the strings should be shown as text", problems, peers)
	}
	injected("network")

	var reason string
	uitest.Run(t, ctx, "tasks view", chromedp.Click(`#nav a[data-view=tasks]`), uitest.WaitText(`#tasks`, "module trapped"),
		chromedp.Text(`#tasks td.reason`, &reason, chromedp.ByQuery))
	if reason != "module trapped: "+hostile {
		t.Fatalf("reason shown %q", reason)
	}
	injected("tasks")

	// The filters become the list's query.
	uitest.Run(t, ctx, "filter by state", chromedp.WaitReady(`#filter-type option[value="wasm.exec.v1"]`),
		chromedp.Evaluate(`for (const [id, v] of [['filter-type', 'wasm.exec.v1'], ['filter-state', 'failed']]) {
			const s = document.getElementById(id); s.value = v; s.dispatchEvent(new Event('change'));
		}`, nil))
	want := "type=wasm.exec.v1&state=failed&limit=50"
	deadline := time.After(10 * time.Second)
	for q := ""; q != want; {
		select {
		case q = <-queries:
		case <-deadline:
			t.Fatalf("no task list query %q", want)
		}
	}

	var states int
	var stderr string
	uitest.Run(t, ctx, "task page", chromedp.Click(`#tasks a`), uitest.WaitText(`#result`, "module trapped"),
		chromedp.Evaluate(`document.querySelectorAll('#timeline li').length`, &states),
		chromedp.Text(`#result pre`, &stderr, chromedp.ByQuery))
	if states != 2 || stderr != "stderr "+hostile {
		t.Fatalf("timeline of %d states (want 2), stderr %q", states, stderr)
	}
	injected("task")
	logs.Check(t, "secret")
}

// Without a token the page asks for one, and a token typed in the form is
// used; a link may name a view before its token.
func TestDashboardAsksForATokenAndUsesTheForm(t *testing.T) {
	uitest.Chromium(t)
	srv := httptest.NewServer(fakeAPI(t, nil))
	defer srv.Close()
	ctx, logs := uitest.Browser(t, 2*time.Minute)
	uitest.Run(t, ctx, "no token", chromedp.Navigate(srv.URL+"/ui/"), uitest.WaitText(`#login-why`, "this node's API needs a token: "))
	uitest.Run(t, ctx, "token from the form", chromedp.SendKeys(`#login-token`, "secret", chromedp.ByQuery),
		chromedp.Click(`#login-form button[type=submit]`, chromedp.ByQuery), uitest.WaitText(`#problems`, "network_mismatch"))
	var stored string
	uitest.Run(t, ctx, "session storage", chromedp.Evaluate(`sessionStorage.getItem('proofmesh.token')`, &stored))
	if stored != "secret" {
		t.Fatalf("sessionStorage holds %q", stored)
	}
	logs.Check(t, "secret")

	// A link to a view with the token after it opens that view, and the
	// address bar keeps the view without the token.
	tab, tabLogs := uitest.Tab(t, ctx)
	var loc string
	uitest.Run(t, tab, "link to a view", chromedp.Navigate(srv.URL+"/ui/#/tasks&token=secret"),
		uitest.WaitText(`#tasks`, "module trapped"), chromedp.Location(&loc))
	if !strings.HasSuffix(loc, "/ui/#/tasks") {
		t.Fatalf("address bar: %s", loc)
	}
	tabLogs.Check(t, "secret")
}
