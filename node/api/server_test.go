package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func tokenRequest(tok string) *http.Request {
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// BenchmarkTokenCheck compares a token that differs in its first byte with
// one that differs in its last: the check hashes both sides before a
// constant-time comparison, so the two times match (the ratio is printed).
func BenchmarkTokenCheck(b *testing.B) {
	tok := strings.Repeat("a", 64)
	s := &server{opt: Options{Token: tok}}
	early, late := tokenRequest("b"+tok[1:]), tokenRequest(tok[:63]+"b")
	measure := func(r *http.Request) time.Duration {
		start := time.Now()
		for range 20000 {
			if _, _, err := s.authenticate(r); err == nil {
				b.Fatal("wrong token accepted")
			}
		}
		return time.Since(start)
	}
	var e, l time.Duration
	for range b.N {
		// Interleaved so drift in machine load hits both alike.
		for range 5 {
			e += measure(early)
			l += measure(late)
		}
	}
	b.ReportMetric(float64(e.Nanoseconds())/float64(b.N*100000), "early-mismatch-ns")
	b.ReportMetric(float64(l.Nanoseconds())/float64(b.N*100000), "late-mismatch-ns")
	b.ReportMetric(float64(l)/float64(e), "late/early")
}

type nopBackend struct{ Backend }

func (nopBackend) Info() NodeInfo { return NodeInfo{ID: "x"} }

// Only configured origins get CORS headers; others get none, preflight
// included.
func TestCORSOnlyForConfiguredOrigins(t *testing.T) {
	h := Handler(nopBackend{}, Options{Token: strings.Repeat("t", 64), CORSOrigins: []string{"https://dash.example"}})
	for origin, allowed := range map[string]bool{"https://dash.example": true, "https://evil.example": false} {
		for _, method := range []string{"OPTIONS", "GET"} {
			req := httptest.NewRequest(method, "/api/v1/node", nil)
			req.Header.Set("Origin", origin)
			req.Header.Set("Authorization", "Bearer "+strings.Repeat("t", 64))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Header().Get("Access-Control-Allow-Origin")
			if (got == origin) != allowed || (!allowed && got != "") {
				t.Errorf("%s from %s: Allow-Origin %q", method, origin, got)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s from %s: no security headers", method, origin)
			}
		}
	}
}

func (nopBackend) AuthenticateKey(string) (string, error) { return ScopeRead, nil }

// An API key is rate limited as itself, whichever address it comes from.
func TestAPIKeyLimitedAcrossAddresses(t *testing.T) {
	h := Handler(nopBackend{}, Options{Token: strings.Repeat("t", 64), Config: func() Config { c := DefaultConfig(); c.RatePerSecond, c.Burst = 1, 5; return c }()})
	key := "pmk_abcd0123_" + strings.Repeat("0", 64)
	get := func(addr string) int {
		req := httptest.NewRequest("GET", "/api/v1/node", nil)
		req.RemoteAddr = addr + ":1234"
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range 5 {
		if code := get(fmt.Sprintf("10.0.0.%d", i)); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if code := get("10.0.0.99"); code != http.StatusTooManyRequests {
		t.Fatalf("the key's sixth request from a fresh address: %d", code)
	}
}

// A method a route does not serve is 405 with Allow, not 404.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	h := Handler(nopBackend{}, Options{Token: strings.Repeat("t", 64)})
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodPut, "/api/v1/tasks", "GET, POST"},
		{http.MethodPatch, "/api/v1/tasks/abc", "GET, DELETE"},
		{http.MethodPost, "/api/v1/health", "GET"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: %d, Allow %q, want 405 and %q", c.method, c.path, rec.Code, rec.Header().Get("Allow"), c.allow)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/nothing", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("unknown path: %d, want 404", rec.Code)
	}
}
