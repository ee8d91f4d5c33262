package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Wire messages skip fields they do not know (issue 13); the HTTP API does
// not: a request with an unknown field is refused, naming it, so a typo
// never goes unnoticed.
func TestAPIRefusesUnknownFieldsNamingThem(t *testing.T) {
	tok := strings.Repeat("t", 64)
	h := Handler(nopBackend{}, Options{Token: tok})
	for path, body := range map[string]string{
		"/api/v1/tasks":   `{"type":"mimc.chain.v1","input":{"x":"1"},"replicaz":2}`,
		"/api/v1/apikeys": `{"scope":"read","labl":"x"}`,
	} {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		field := map[string]string{"/api/v1/tasks": `\"replicaz\"`, "/api/v1/apikeys": `\"labl\"`}[path]
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "unknown field "+field) {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body.String())
		}
	}
}
