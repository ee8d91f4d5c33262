package api

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/proofmesh/proofmesh/node/ui"
)

func uiGet(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

// GET / sends a browser to the dashboard; the browser keeps the URL's
// fragment (#token=…), which the server never sees.
func TestDashboardRootRedirectsToUI(t *testing.T) {
	h := Handler(nopBackend{}, Options{Token: strings.Repeat("t", 64)})
	rec := uiGet(t, h, "/")
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("GET /: %d Location %q, want 302 /ui/", rec.Code, rec.Header().Get("Location"))
	}
	if rec := uiGet(t, h, "/ui"); rec.Code/100 != 3 || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("GET /ui: %d Location %q", rec.Code, rec.Header().Get("Location"))
	}
}

// The dashboard's files load without a token, with their own CSP (self
// only, no inline script), while the API keeps its strict headers and
// still refuses requests without a token.
func TestDashboardFilesWithoutTokenAPIStillClosed(t *testing.T) {
	h := Handler(nopBackend{}, Options{Token: strings.Repeat("t", 64)})
	for path, ctype := range map[string]string{
		"/ui/":            "text/html",
		"/ui/app.js":      "text/javascript",
		"/ui/api.js":      "text/javascript",
		"/ui/app.css":     "text/css",
		"/ui/favicon.svg": "image/svg+xml",
	} {
		rec := uiGet(t, h, path)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s without a token: %d %s", path, rec.Code, rec.Body)
		}
		if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, got, ctype)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if csp != ui.CSP || !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "connect-src 'self'") ||
			strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v", path, rec.Header())
		}
	}
	for _, path := range []string{"/api/v1/node", "/api/v1/tasks", "/api/v1/audit", "/metrics"} {
		rec := uiGet(t, h, path)
		if path == "/metrics" && rec.Code == http.StatusNotFound {
			continue // no registry in this handler
		}
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, rec.Code)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); csp != "default-src 'none'; frame-ancestors 'none'" {
			t.Errorf("GET %s: the API's CSP became %q", path, csp)
		}
	}
	if rec := uiGet(t, h, "/ui/nothing.js"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /ui/nothing.js: %d", rec.Code)
	}
}

// The page works on a machine without internet and never builds HTML from
// strings: no URL of another origin, no inline script or style, no
// innerHTML (peers' heartbeat strings and task outputs reach the page),
// and the token goes only into the Authorization header.
func TestDashboardFilesSelfContainedAndNoHTMLFromStrings(t *testing.T) {
	files := ui.Files()
	forbidden := []*regexp.Regexp{
		regexp.MustCompile(`(?i)https?://`),                                                                // another origin
		regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?//`),                                                 // protocol-relative
		regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function`), // HTML or code from strings
		regexp.MustCompile(`(?i)<script>|<script\s+(type="[^"]*"\s*)?>|\sstyle=|\son[a-z]+=`),              // inline script, style, handlers
		regexp.MustCompile(`new EventSource`),                                                              // cannot send the Authorization header
		regexp.MustCompile(`[?&]token=|access_token`),                                                      // a token in a URL query
	}
	n := 0
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := fs.ReadFile(files, path)
		if err != nil {
			return err
		}
		// The SVG namespace names no resource.
		text := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "")
		for _, re := range forbidden {
			if loc := re.FindStringIndex(text); loc != nil {
				t.Errorf("%s: %q matches %s", path, text[loc[0]:min(loc[1]+30, len(text))], re)
			}
		}
		return nil
	})
	if err != nil || n < 5 {
		t.Fatalf("walked %d files: %v", n, err)
	}
}
