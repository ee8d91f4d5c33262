package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/proofmesh/proofmesh/protocol"
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

// Every outside JSON is read strictly (docs/SECURITY.md), the API's bodies
// too: a duplicate or case-variant key is refused, naming it (a new
// user's walkthrough of 2026-12-07 had {"TYPE": …} create a task and a
// duplicate "type" read as its last value), and a body over the limit is
// refused naming the limit.
func TestAPIRefusesDuplicateAndCaseVariantKeys(t *testing.T) {
	tok := strings.Repeat("t", 64)
	h := Handler(nopBackend{}, Options{Token: tok})
	post := func(path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, c := range []struct{ path, body, want string }{
		{"/api/v1/tasks", `{"type":"mimc.chain.v1","type":"mlp.infer.v1","input":{"x":"1"}}`, `duplicate key \"type\"`},
		{"/api/v1/tasks", `{"TYPE":"mimc.chain.v1","Input":{"x":"5"}}`, `matches field \"type\" only case-insensitively`},
		{"/api/v1/tasks", `{"type":"mimc.chain.v1","input":{"x":"1","x":"2"}}`, `duplicate key \"x\"`},
		{"/api/v1/apikeys", `{"scope":"read","Scope":"admin"}`, `only case-insensitively`},
	} {
		if rec := post(c.path, c.body); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s %s: %d %s, want 400 naming %s", c.path, c.body, rec.Code, rec.Body.String(), c.want)
		}
	}
	big := `{"type":"mimc.chain.v1","input":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	if rec := post("/api/v1/tasks", big); rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), fmt.Sprintf("over %d bytes", MaxBodyBytes)) {
		t.Errorf("a body over the limit: %d %.200s", rec.Code, rec.Body.String())
	}
}

// An unknown state filter lists the states there are.
func TestUnknownStateListsTheStates(t *testing.T) {
	tok := strings.Repeat("t", 64)
	h := Handler(nopBackend{}, Options{Token: tok})
	req := httptest.NewRequest(http.MethodGet, "/api/v1/tasks?state=bogus", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, st := range []protocol.TaskState{protocol.StatePending, protocol.StateAssigned, protocol.StateRunning, protocol.StateProving,
		protocol.StateVerifying, protocol.StateAccepted, protocol.StateFailed, protocol.StateCanceled} {
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), string(st)) {
			t.Fatalf("state=bogus: %d %s, want 400 listing %s", rec.Code, rec.Body.String(), st)
		}
	}
}
