package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
)

// Issue 12, attack 3: proofmesh peers printed a peer's "\x1b[31m…\r\n" as
// raw escape sequences and a forged extra row. Whatever a node's API
// returns (an older node, a stored row, a bug upstream), the tables print
// control characters escaped: one row per peer or task, no escape byte.
func TestTerminalEscapesPrintedEscaped(t *testing.T) {
	now := time.Now()
	peers := []api.PeerView{{
		ID: "12D3KooWevil", Status: protocol.StatusOnline, NodeType: "compute\tx",
		Region:   "\x1b[31meu\r\n12D3KooWforged  online  compute  eu  0.00  1s ago  0  0\u202e\xff",
		LastSeen: now,
	}}
	var out bytes.Buffer
	if err := printPeers(&out, peers, now); err != nil {
		t.Fatal(err)
	}
	checkTable(t, out.String(), 2, `\x1b[31meu\x0d\x0a12D3KooWforged`, `\u202e\xff`, `compute\x09x`)

	tasks := []api.TaskView{{TaskID: "t1", Type: "mimc.chain.v1", State: "failed", Reason: "bad\x1b]0;pwned\x07\nt2\tfake"}}
	out.Reset()
	if err := printTasks(&out, tasks); err != nil {
		t.Fatal(err)
	}
	checkTable(t, out.String(), 2, `bad\x1b]0;pwned\x07\x0at2\x09fake`)
}

func checkTable(t *testing.T, got string, rows int, want ...string) {
	t.Helper()
	if n := strings.Count(got, "\n"); n != rows {
		t.Errorf("%d lines, want %d:\n%s", n, rows, got)
	}
	if strings.ContainsAny(got, "\x1b\r\x07\u202e") || !strings.ContainsFunc(got, func(r rune) bool { return r == '\n' }) {
		t.Errorf("raw control characters printed: %q", got)
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("output %q lacks %q", got, w)
		}
	}
}

func TestCellLeavesPlainTextAlone(t *testing.T) {
	for _, s := range []string{"", "eu-west-1", "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo", "région ü 日本", "a\\x1b"} {
		if got := cell(s); got != s {
			t.Errorf("cell(%q) = %q", s, got)
		}
	}
}

// logs shows each executor's exit code or trap and its stderr, line by
// line, with a module's escape sequences printed escaped.
func TestLogsShowEachExecutorsReport(t *testing.T) {
	var b strings.Builder
	v := api.TaskView{TaskID: "t1", Type: "wasm.exec.v1", State: "failed", Reason: "the module failed", Results: []api.ResultView{
		{Executor: "exec-a", ExitCode: 3, Stderr: []byte("bad input\n\x1b[31mred\n"), Settled: true},
		{Executor: "exec-b", ExitCode: -1, Trap: "fuel"},
	}}
	if err := printLogs(&b, v); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"executor exec-a: exit code 3", "settled the task", "bad input\n", `\x1b[31mred`, "executor exec-b: trap fuel", "(no stderr)"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("a raw escape reached the terminal:\n%q", out)
	}
}

// --raw prints an output's bytes; --detach returns with the task id.
func TestSubmitRawAndDetach(t *testing.T) {
	var b strings.Builder
	if err := writeRaw(&b, []byte(`"aGVsbG8K"`)); err != nil || b.String() != "hello\n" {
		t.Fatalf("raw wasm output: %q %v", b.String(), err)
	}
	b.Reset()
	if err := writeRaw(&b, []byte(`{"y":"7"}`)); err != nil || b.String() != "{\"y\":\"7\"}\n" {
		t.Fatalf("raw typed output: %q %v", b.String(), err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("detached submit followed the task: %s %s", r.Method, r.URL.Path)
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"task_id":"abc"}`))
	}))
	defer srv.Close()
	c := &client{base: srv.URL, token: "t", http: srv.Client()}
	var out, progress strings.Builder
	if err := submitAndFollow(t.Context(), c, api.SubmitRequest{Type: "x"}, &out, &progress, followOpts{detach: true}); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != `{"task_id":"abc"}` {
		t.Fatalf("detached output %q", out.String())
	}
}

// --output-dir writes each output file under the directory, checked by
// hash, and refuses a path that would land outside it.
func TestOutputDirDownload(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/tasks/T/files/out/sub/a.txt" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("hi"))
	}))
	defer srv.Close()
	c := &client{base: srv.URL, token: "t", http: srv.Client()}
	dir := t.TempDir()
	var progress strings.Builder
	v := api.TaskView{TaskID: "T", Files: []protocol.OutputFile{{Path: "/out/sub/a.txt", Hash: protocol.HashHex([]byte("hi")), Size: 2}}}
	if err := downloadFiles(t.Context(), c, v, []string{"/out/sub/a.txt", "/out/missing.txt"}, dir, &progress); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sub", "a.txt")); err != nil || string(b) != "hi" {
		t.Fatalf("written: %q %v", b, err)
	}
	// A declared output the module did not write is named.
	if !strings.Contains(progress.String(), "/out/missing.txt: not written by the module") || strings.Contains(progress.String(), "/out/sub/a.txt: not written") {
		t.Fatalf("progress: %s", progress.String())
	}
	v.Files[0].Hash = protocol.HashHex([]byte("other"))
	if err := downloadFiles(t.Context(), c, v, nil, dir, &progress); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("bytes that do not match the hash: %v", err)
	}
	v.Files[0] = protocol.OutputFile{Path: "/out/../../etc/x", Hash: protocol.HashHex([]byte("hi"))}
	if err := downloadFiles(t.Context(), c, v, nil, dir, &progress); err == nil {
		t.Fatal("a path outside the directory was written")
	}
}
