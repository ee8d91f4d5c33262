// Package uitest drives the dashboard in headless Chromium for tests: it
// finds the browser (a test fails without one in CI and is skipped
// elsewhere), and records what a page did that tests check: JavaScript
// exceptions, console errors (CSP violations included) and every URL it
// requested.
package uitest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium returns the path of a Chromium to drive. Without one the test
// fails in CI (CI=true; .ci/run installs the Debian package) and is
// skipped elsewhere.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: the dashboard's browser tests need it (.ci/run installs the Debian package chromium)")
	}
	t.Skip("no chromium on PATH: apt-get install chromium to run the dashboard's browser tests")
	return ""
}

// Browser starts a headless Chromium for the test and returns the context
// of its first tab (bounded by timeout) and that tab's log. The browser is
// started before Browser returns, so the times a test measures are its
// pages'.
func Browser(t testing.TB, timeout time.Duration) (context.Context, *Log) {
	t.Helper()
	exe := Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	ctx, cancel := context.WithTimeout(browser, timeout)
	t.Cleanup(func() {
		// Close the browser and wait for it, so that it no longer writes
		// to the user data dir that t.TempDir's cleanup removes next.
		_ = chromedp.Cancel(browser)
		cancel()
		cancelBrowser()
		cancelAlloc()
	})
	log := &Log{}
	log.listen(browser)
	// The first Run starts the browser, which lives as long as the context
	// of that call: the one without the timeout, so that a page can still
	// be read after a step timed out.
	if err := chromedp.Run(browser, network.Enable()); err != nil {
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	return ctx, log
}

// Tab opens another tab of the browser of ctx, with its own
// sessionStorage and log.
func Tab(t testing.TB, ctx context.Context) (context.Context, *Log) {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	log := &Log{}
	log.listen(tab)
	if err := chromedp.Run(tab, network.Enable()); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return tab, log
}

// Run runs the actions and fails the test with what and the page's text
// when one fails.
func Run(t testing.TB, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var body string
		short, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = chromedp.Run(short, chromedp.Text("body", &body, chromedp.ByQuery))
		t.Fatalf("%s: %v\npage: %s", what, err, body)
	}
}

// WaitText waits until the first element matching sel has a text that
// contains want, as long as the context allows (a proof under the race
// detector on a loaded machine takes a minute).
func WaitText(sel, want string) chromedp.Action {
	return chromedp.Poll(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q); })()`, sel, want), nil,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))
}

// Log is what a tab did.
type Log struct {
	mu       sync.Mutex
	errors   []string
	urls     []string
	unauthed []string
}

func (b *Log) listen(ctx context.Context) {
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
			// Refused requests (a bad token's 401) are the network's to
			// report; anything else at error level is the page's.
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

// Check fails the test on any JavaScript error of the tab, on a requested
// URL that contains secret, and on an API request without the bearer
// header; the tab must have made at least one API request.
func (b *Log) Check(t testing.TB, secret string) {
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
