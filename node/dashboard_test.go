package node

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/node/ui/uitest"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/tasks"
)

// The dashboard in a real browser against a real 3-node testnet: the
// peers appear, a task submitted from the form goes to accepted live with
// its proof verified, a module upload's output is shown as text (HTML in
// it stays text), a bad token gets a clear message, and no page logs a
// JavaScript error, requests a URL with the token or calls the API
// without the bearer header. PROOFMESH_SCREENSHOT=path keeps a
// screenshot of the network view.
func TestDashboardInBrowser(t *testing.T) {
	uitest.Chromium(t)
	tn := startTestnet(t, 3, nil)
	n := tn.Nodes[0]
	base := "http://" + n.APIAddr()
	ctx, logs := uitest.Browser(t, 6*time.Minute)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// What the nodes thought, to tell a slow proof from a stuck page.
		for i, nd := range tn.Nodes {
			ts, _ := nd.Tasks(api.TaskQuery{Limit: 10})
			for _, v := range ts {
				t.Logf("node %d: task %s %s %s %s timeline %+v", i, v.TaskID[:12], v.Type, v.State, v.Reason, v.Timeline)
			}
		}
	})
	run := func(what string, actions ...chromedp.Action) { t.Helper(); uitest.Run(t, ctx, what, actions...) }

	// The link `make demo` prints: the token in the fragment, moved to
	// sessionStorage and out of the address bar.
	start := time.Now()
	var loc string
	run("open the dashboard", chromedp.Navigate(base+"/#token="+n.Token()),
		chromedp.WaitVisible(fmt.Sprintf(`#peers tr[data-peer=%q]`, tn.Nodes[1].ID().String())),
		chromedp.WaitVisible(fmt.Sprintf(`#peers tr[data-peer=%q]`, tn.Nodes[2].ID().String())),
		uitest.WaitText("#node-id", n.ID().String()),
		uitest.WaitText("#peers", "direct"), // the connection column, from the peer table
		chromedp.Location(&loc))
	t.Logf("peers shown %s after the page was opened", time.Since(start).Round(time.Millisecond))
	if strings.Contains(loc, n.Token()) || !strings.HasSuffix(loc, "/ui/#/network") {
		t.Fatalf("address bar after load: %s", loc)
	}
	// A node without problems (or one whose API has no such field) shows
	// no problem box.
	var problems bool
	run("no problems", chromedp.Evaluate(`!!document.getElementById('problems')`, &problems))
	if problems {
		t.Fatal("a problem box on a healthy node")
	}

	// Submit from the form; the progress follows the event stream.
	start = time.Now()
	var id string
	run("submit mimc.chain.v1", chromedp.Click(`#nav a[data-view=submit]`), chromedp.WaitVisible(`#submit-input`),
		chromedp.SetValue(`#submit-input`, `{"x": "20261127"}`, chromedp.ByQuery),
		chromedp.Click(`#submit-button`), chromedp.WaitVisible(`#submitted a`),
		chromedp.Text(`#submitted a`, &id, chromedp.ByQuery))
	// Wait for the task's end, whichever it is, so that a failure shows
	// its reason at once.
	var trust string
	run("mimc ends", chromedp.WaitVisible(`#progress .trust`), chromedp.Text(`#progress .trust`, &trust, chromedp.ByQuery))
	if !strings.Contains(trust, "Groth16 proof verified") {
		t.Fatalf("mimc.chain.v1 task %s ended: %s", id, trust)
	}
	run("mimc accepted live", chromedp.WaitVisible(`#progress li[data-state=accepted]`))
	t.Logf("mimc.chain.v1 task %s accepted and shown %s after the click", id[:12], time.Since(start).Round(time.Millisecond))

	// Its page: the trust line, and the bundle verified by the node.
	run("task page and verify", chromedp.Click(`#submitted a`), uitest.WaitText(`#trust`, "proof verified"),
		chromedp.Click(`#verify`), uitest.WaitText(`#verify-verdict`, "bundle valid"))

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
		chromedp.WaitVisible(`#progress .trust`), chromedp.Text(`#progress .trust`, &trust, chromedp.ByQuery))
	if !strings.Contains(trust, "2 replicas agree") {
		t.Fatalf("wasm.exec.v1 task ended: %s", trust)
	}
	run("wasm.exec.v1 output", chromedp.Text(`#progress #output`, &out, chromedp.ByQuery),
		chromedp.Evaluate(`!!document.getElementById('xss') || window.pwned === 1`, &injected))
	t.Logf("wasm.exec.v1 task accepted and shown %s after the click", time.Since(start).Round(time.Millisecond))
	if out != payload || injected {
		t.Fatalf("output shown %q (injected %v), want the text %q", out, injected, payload)
	}

	// A module that fails: its confirmed failure has a bundle, which the
	// node verifies as a failure.
	failing := filepath.Join(t.TempDir(), "fail.wasm")
	if err := os.WriteFile(failing, exitWithStderr(3, "input rejected\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run("submit a failing wasm.exec.v1 module", chromedp.Evaluate(`location.hash = '#/submit/wasm.exec.v1'`, nil),
		chromedp.WaitVisible(`#submit-module`), chromedp.SetUploadFiles(`#submit-module`, []string{failing}, chromedp.ByQuery),
		chromedp.SetValue(`#submit-input`, "x", chromedp.ByQuery), chromedp.Click(`#submit-button`),
		chromedp.WaitVisible(`#progress .trust.bad`), uitest.WaitText(`#progress .trust.bad`, "exit code 3"))
	run("the failure's bundle verified", chromedp.Click(`#submitted a`), chromedp.WaitVisible(`#verify`),
		chromedp.Click(`#verify`), uitest.WaitText(`#verify-verdict`, "bundle valid: a confirmed failure"))

	// The task list, the audit chain, and back to the network with its
	// chart for the screenshot.
	run("tasks", chromedp.Click(`#nav a[data-view=tasks]`), chromedp.WaitVisible(fmt.Sprintf(`#tasks tr[data-task=%q]`, id)),
		chromedp.WaitVisible(`svg.chart rect.bar`))
	run("audit", chromedp.Click(`#nav a[data-view=audit]`), uitest.WaitText(`#audit-status`, "chain intact"),
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

	// An executor killed at work: the progress says what the task waits
	// for, which candidate is offline and when the next takes over.
	victim := tn.Nodes[2]
	n.rankHook = putFirst(victim.ID().String())
	var waitID string
	run("submit a task its first candidate will not finish", chromedp.Evaluate(`location.hash = '#/submit/mimc.chain.v1'`, nil),
		chromedp.WaitVisible(`#submit-input`), chromedp.SetValue(`#submit-input`, `{"x": "7"}`, chromedp.ByQuery),
		chromedp.Click(`#submit-button`), chromedp.WaitVisible(`#submitted a`), chromedp.Text(`#submitted a`, &waitID, chromedp.ByQuery))
	waitFor(t, testLease, "the victim at work", func() bool {
		v, err := n.Task(waitID)
		return err == nil && slices.Contains(v.Executors, victim.ID().String())
	})
	victim.Kill()
	run("the wait said", uitest.WaitText(`#progress #waiting`, "candidate 0 ("+protocol.ShortPeer(victim.ID().String())+") is listed offline here"))

	// A bad token, in a fresh tab (its own sessionStorage).
	bad, badLogs := uitest.Tab(t, ctx)
	var why string
	var formShown bool
	uitest.Run(t, bad, "bad token", chromedp.Navigate(base+"/#token=not-the-token"),
		uitest.WaitText(`#login-why`, "the API refused the token: "), chromedp.Text(`#login-why`, &why, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById('main').hidden && !document.getElementById('login').hidden`, &formShown))
	if !formShown || !strings.Contains(why, "not valid") {
		t.Fatalf("bad token: message %q, form shown %v", why, formShown)
	}

	logs.Check(t, n.Token())
	badLogs.Check(t, "not-the-token")
}
