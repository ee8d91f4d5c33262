package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/proofmesh/proofmesh/tasks"
)

// chromium returns the path of a Chromium to drive. Without one the test
// fails in CI (which installs it: .ci/run) and is skipped elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: the dashboard's browser test needs it (.ci/run installs the Debian package chromium)")
	}
	t.Skip("no chromium on PATH: apt-get install chromium to run the dashboard's browser test")
	return ""
}

// browserLog collects what a page did that the test checks: JavaScript
// exceptions and console errors (CSP violations included), and every URL
// it requested with whether an API call carried the bearer header.
type browserLog struct {
	mu       sync.Mutex
	errors   []string
	urls     []string
	unauthed []string
}

func (b *browserLog) listen(ctx context.Context) {
	chromedp.ListenTarget(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.errors = append(b.errors, "exception: "+e.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.errors = append(b.errors, "console.error: "+strings.Join(args, " "))
			}
		case *cdplog.EventEntryAdded:
			// Refused requests (the bad token's 401) are the network's
			// to report; anything else at error level is the page's.
			if e.Entry.Level == cdplog.LevelError && e.Entry.Source != cdplog.SourceNetwork {
				b.errors = append(b.errors, fmt.Sprintf("log %s: %s", e.Entry.Source, e.Entry.Text))
			}
		case *network.EventRequestWillBeSent:
			b.urls = append(b.urls, e.Request.URL)
			if strings.Contains(e.Request.URL, "/api/") {
				bearer := false
				for k, v := range e.Request.Headers {
					s, _ := v.(string)
					bearer = bearer || strings.EqualFold(k, "Authorization") && strings.HasPrefix(s, "Bearer ")
				}
				if !bearer {
					b.unauthed = append(b.unauthed, e.Request.URL)
				}
			}
		}
	})
}

func (b *browserLog) check(t *testing.T, secret string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		t.Errorf("JavaScript error in the dashboard: %s", e)
	}
	api := 0
	for _, u := range b.urls {
		if strings.Contains(u, secret) {
			t.Errorf("the page requested a URL with the token: %s", u)
		}
		if strings.Contains(u, "/api/") {
			api++
		}
	}
	if api == 0 {
		t.Errorf("no API request seen among %d: %v", len(b.urls), b.urls)
	}
	for _, u := range b.unauthed {
		t.Errorf("API request without the bearer header: %s", u)
	}
}

// waitText waits until the element's text contains want, as long as the
// test's context allows (a proof under the race detector on a loaded
// machine takes a minute).
func waitText(sel, want string) chromedp.Action {
	return chromedp.Poll(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q); })()`, sel, want), nil,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))
}

// The dashboard in a real browser against a real 3-node testnet: the
// peers appear, a task submitted from the form goes to accepted live with
// its proof verified, a module upload's output is shown as text (HTML in
// it stays text), a bad token gets a clear message, and no page logs a
// JavaScript error or puts the token in a URL.
func TestDashboardInBrowser(t *testing.T) {
	exe := chromium(t)
	tn := startTestnet(t, 3, nil)
	n := tn.Nodes[0]
	base := "http://" + n.APIAddr()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	var logs browserLog
	logs.listen(ctx)

	// Start the browser first, so that the times below are the page's.
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			var body string
			_ = chromedp.Run(context.WithoutCancel(ctx), chromedp.Text("body", &body, chromedp.ByQuery))
			t.Fatalf("%s: %v\npage: %s", what, err, body)
		}
	}
	run("start the browser", network.Enable())

	// The link `make demo` prints: the token in the fragment, moved to
	// sessionStorage and out of the address bar.
	start := time.Now()
	var loc string
	run("open the dashboard", chromedp.Navigate(base+"/#token="+n.Token()),
		chromedp.WaitVisible(fmt.Sprintf(`#peers tr[data-peer=%q]`, tn.Nodes[1].ID().String())),
		chromedp.WaitVisible(fmt.Sprintf(`#peers tr[data-peer=%q]`, tn.Nodes[2].ID().String())),
		waitText("#node-id", n.ID().String()),
		chromedp.Location(&loc))
	t.Logf("peers shown %s after the page was opened", time.Since(start).Round(time.Millisecond))
	if strings.Contains(loc, n.Token()) || !strings.HasSuffix(loc, "/ui/#/network") {
		t.Fatalf("address bar after load: %s", loc)
	}

	// Submit from the form; the progress follows the event stream.
	start = time.Now()
	var id string
	run("submit mimc.chain.v1", chromedp.Click(`#nav a[data-view=submit]`), chromedp.WaitVisible(`#submit-input`),
		chromedp.SetValue(`#submit-input`, `{"x": "20261127"}`, chromedp.ByQuery),
		chromedp.Click(`#submit-button`), chromedp.WaitVisible(`#submitted a`),
		chromedp.Text(`#submitted a`, &id, chromedp.ByQuery))
	run("mimc accepted live", waitText(`#progress #trust`, "Groth16 proof verified"),
		chromedp.WaitVisible(`#progress li[data-state=accepted]`))
	t.Logf("mimc.chain.v1 task %s accepted and shown %s after the click", id[:12], time.Since(start).Round(time.Millisecond))

	// Its page: the trust line, and the bundle verified by the node.
	run("task page and verify", chromedp.Click(`#submitted a`), waitText(`#trust`, "proof verified"),
		chromedp.Click(`#verify`), waitText(`#verify-verdict`, "bundle valid"))

	// A module upload (wasm.exec.v1, replicated): its output is text, and
	// the HTML in it stays text.
	mod := filepath.Join(t.TempDir(), "echo.wasm")
	if err := os.WriteFile(mod, tasks.EchoModule(), 0o600); err != nil {
		t.Fatal(err)
	}
	payload := `<img src=x id=xss onerror="window.pwned=1">hello`
	var out string
	var injected bool
	start = time.Now()
	run("submit wasm.exec.v1 with a module", chromedp.Evaluate(`location.hash = '#/submit/wasm.exec.v1'`, nil),
		chromedp.WaitVisible(`#submit-module`), chromedp.SetUploadFiles(`#submit-module`, []string{mod}, chromedp.ByQuery),
		chromedp.SetValue(`#submit-input`, payload, chromedp.ByQuery), chromedp.Click(`#submit-button`),
		waitText(`#progress #trust`, "replicas agree"), chromedp.Text(`#progress #output`, &out, chromedp.ByQuery),
		chromedp.Evaluate(`!!document.getElementById('xss') || window.pwned === 1`, &injected))
	t.Logf("wasm.exec.v1 task accepted and shown %s after the click", time.Since(start).Round(time.Millisecond))
	if out != payload || injected {
		t.Fatalf("output shown %q (injected %v), want the text %q", out, injected, payload)
	}

	// The task list, the audit chain, and back to the network with its
	// chart for the screenshot.
	run("tasks", chromedp.Click(`#nav a[data-view=tasks]`), chromedp.WaitVisible(fmt.Sprintf(`#tasks tr[data-task=%q]`, id)),
		chromedp.WaitVisible(`svg.chart rect.bar`))
	run("audit", chromedp.Click(`#nav a[data-view=audit]`), waitText(`#audit-status`, "chain intact"),
		chromedp.WaitVisible(`#audit tbody tr`), chromedp.WaitVisible(`#audit-checkpoint dl`))
	run("network again", chromedp.Click(`#nav a[data-view=network]`), chromedp.WaitVisible(`svg.chart polyline`))
	if path := os.Getenv("PROOFMESH_SCREENSHOT"); path != "" {
		var png []byte
		run("screenshot", chromedp.FullScreenshot(&png, 100))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}

	// A bad token, in a fresh tab (its own sessionStorage).
	bad, cancelBad := chromedp.NewContext(ctx)
	defer cancelBad()
	var badLogs browserLog
	badLogs.listen(bad)
	var why string
	var mainHidden bool
	if err := chromedp.Run(bad, network.Enable(), chromedp.Navigate(base+"/#token=not-the-token"),
		waitText(`#login-why`, "the API refused the token: "), chromedp.Text(`#login-why`, &why, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById('main').hidden && !document.getElementById('login').hidden`, &mainHidden)); err != nil {
		t.Fatalf("bad token: %v", err)
	}
	if !mainHidden || !strings.Contains(why, "not valid") {
		t.Fatalf("bad token: message %q, form shown %v", why, mainHidden)
	}

	logs.check(t, n.Token())
	badLogs.check(t, "not-the-token")
}
