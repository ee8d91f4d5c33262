package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/proofmesh/proofmesh/protocol"
)

// fuzzBackend implements every Backend method without failing, and keeps
// what the server handed it, so the fuzz target can check what got
// through the server's decoding.
type fuzzBackend struct {
	submitted *SubmitRequest
	query     *TaskQuery
	auditLim  int
	status    *protocol.PeerStatus
	keyReq    *APIKeyRequest
	verified  []byte
}

func (*fuzzBackend) Info() NodeInfo { return NodeInfo{ID: "x"} }
func (b *fuzzBackend) Peers(st protocol.PeerStatus) []PeerView {
	b.status = &st
	return []PeerView{}
}
func (*fuzzBackend) Peer(string) (PeerView, error)  { return PeerView{}, ErrNotFound }
func (*fuzzBackend) Policy() protocol.Policy        { return protocol.DefaultPolicy() }
func (*fuzzBackend) TaskTypes() []protocol.TaskType { return nil }
func (b *fuzzBackend) Submit(_ context.Context, req SubmitRequest) (string, error) {
	b.submitted = &req
	return "id", nil
}
func (*fuzzBackend) TaskFile(context.Context, string, string) ([]byte, error) {
	return []byte("f"), nil
}
func (*fuzzBackend) Cancel(context.Context, string, string, string) error { return nil }
func (b *fuzzBackend) Tasks(q TaskQuery) ([]TaskView, error) {
	b.query = &q
	return nil, nil
}
func (*fuzzBackend) Task(string) (TaskView, error)                 { return TaskView{}, ErrNotFound }
func (*fuzzBackend) Watch(string) (<-chan struct{}, func(), error) { return nil, nil, ErrNotFound }
func (*fuzzBackend) Bundle(string) ([]byte, error)                 { return []byte(`{}`), nil }
func (b *fuzzBackend) VerifyBundle(data []byte) (VerifyReport, error) {
	b.verified = data
	return VerifyReport{}, nil
}
func (b *fuzzBackend) Audit(_ uint64, limit int) ([]AuditEntry, error) {
	b.auditLim = limit
	return nil, nil
}
func (*fuzzBackend) VerifyAudit() (int, error)                  { return 0, nil }
func (*fuzzBackend) AuditCheckpoint() (AuditCheckpoint, error)  { return AuditCheckpoint{}, nil }
func (*fuzzBackend) AuthenticateKey(key string) (string, error) { return fuzzKeyScope(key) }
func (b *fuzzBackend) CreateAPIKey(req APIKeyRequest) (APIKeyCreated, error) {
	b.keyReq = &req
	return APIKeyCreated{}, nil
}
func (*fuzzBackend) APIKeys() ([]APIKeyView, error)          { return nil, nil }
func (*fuzzBackend) RevokeAPIKey(string) (APIKeyView, error) { return APIKeyView{}, ErrNotFound }
func fuzzKeyScope(key string) (string, error) {
	if strings.HasPrefix(key, "pmk_") && strings.HasSuffix(key, "_admin") {
		return ScopeAdmin, nil
	}
	return "", fmt.Errorf("%w: unknown key", ErrUnauthorized)
}

// fuzzRoutes are the routes the fuzz target picks from: method and path,
// "{}" standing for the fuzzed path segment.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/api/v1/tasks"}, {"GET", "/api/v1/tasks"}, {"GET", "/api/v1/tasks/{}"},
	{"DELETE", "/api/v1/tasks/{}"}, {"GET", "/api/v1/tasks/{}/bundle"}, {"GET", "/api/v1/tasks/{}/files/{}"},
	{"GET", "/api/v1/tasks/{}/events"}, {"POST", "/api/v1/proofs/verify"}, {"GET", "/api/v1/peers"},
	{"GET", "/api/v1/peers/{}"}, {"GET", "/api/v1/audit"}, {"POST", "/api/v1/apikeys"},
	{"DELETE", "/api/v1/apikeys/{}"}, {"GET", "/api/v1/health"}, {"PUT", "/api/v1/{}"},
}

// FuzzAPIRequest sends arbitrary bodies, query strings, path segments and
// credentials to the real API handler. No request panics it or makes it
// answer 500 (the backend never fails); every /api/ answer is JSON but a
// task file's; what reaches the backend is what the server's decoding
// promises: a submit body DecodeStrict accepts, with replicas >= 0; a
// state, status and limit that are valid; a body within MaxBodyBytes.
func FuzzAPIRequest(f *testing.F) {
	tok := strings.Repeat("t", 64)
	cfg := DefaultConfig()
	cfg.RatePerSecond, cfg.Burst = 1e9, 1<<30
	cfg.AnonRatePerSecond, cfg.AnonBurst = 1e9, 1<<30
	cfg.AuthFailureRate, cfg.AuthFailureBurst = 1e9, 1<<30
	b := &fuzzBackend{}
	h := Handler(b, Options{Token: tok, Config: cfg})
	var n atomic.Int64
	f.Add(uint8(0), "", "", []byte(`{"type":"mimc.chain.v1","input":{"x":"1"},"replicas":2}`), "")
	f.Add(uint8(0), "", "", []byte(`{"type":"wasm.exec.v1","input":"aGk=","module":"AGFzbQ==","env":{"PATH":"a","path":"b"},"limits":{"timeout_ms":5000}}`), "")
	f.Add(uint8(0), "", "", []byte(`{"type":"x","replicas":-1}`), "")
	f.Add(uint8(1), "", "state=running&limit=1000&type=x&after=abc", []byte(nil), "")
	f.Add(uint8(1), "", "limit=0", []byte(nil), "")
	f.Add(uint8(10), "", "from=18446744073709551616&limit=5", []byte(nil), "")
	f.Add(uint8(8), "", "status=online", []byte(nil), "")
	f.Add(uint8(11), "", "", []byte(`{"scope":"read","label":"x","expires_in":"720h"}`), "")
	f.Add(uint8(7), "", "", []byte(`{"format":"v1"}`), "")
	f.Add(uint8(5), "abc%2F..%2F", "", []byte(nil), "")
	f.Add(uint8(3), "id", "reason=because", []byte(nil), "")
	f.Add(uint8(0|0x80), "", "", []byte(`{}`), "Bearer pmk_ab_cd_admin")
	f.Fuzz(func(t *testing.T, which uint8, seg, query string, body []byte, auth string) {
		rt := fuzzRoutes[int(which&0x7f)%len(fuzzRoutes)]
		target := strings.ReplaceAll(rt.path, "{}", seg)
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(rt.method, target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		req.RemoteAddr = "192.0.2.1:1234"
		if which&0x80 == 0 {
			// The admin token, or an admin key of its own (the submit
			// and verify tiers are limited per credential).
			if n.Add(1)%2 == 0 {
				req.Header.Set("Authorization", "Bearer "+tok)
			} else {
				req.Header.Set("Authorization", fmt.Sprintf("Bearer pmk_k%d_s_admin", n.Load()))
			}
		} else {
			req.Header.Set("Authorization", auth)
		}
		*b = fuzzBackend{}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", rt.method, target, rec.Code, rec.Body.String())
		}
		isFile := strings.Contains(rt.path, "/files/") && rec.Code == http.StatusOK || rec.Code/100 == 3 // a task file; ServeMux redirecting an unclean path
		if strings.HasPrefix(req.URL.Path, "/api/") && !isFile && rec.Body.Len() > 0 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q: %d answer is not JSON: %q", rt.method, target, rec.Code, rec.Body.String())
		}
		if s := b.submitted; s != nil {
			var again SubmitRequest
			if err := protocol.DecodeStrict(body, MaxBodyBytes, &again); err != nil {
				t.Fatalf("submit body reached the backend, DecodeStrict refuses it: %v", err)
			}
			if s.Replicas < 0 || len(body) > MaxBodyBytes {
				t.Fatalf("submit with replicas %d, body of %d bytes reached the backend", s.Replicas, len(body))
			}
		}
		if q := b.query; q != nil && (q.Limit < 1 || q.Limit > 1000 || (q.State != "" && !q.State.Valid())) {
			t.Fatalf("task query %+v reached the backend", *q)
		}
		if b.auditLim != 0 && (b.auditLim < 1 || b.auditLim > 1000) {
			t.Fatalf("audit limit %d reached the backend", b.auditLim)
		}
		if st := b.status; st != nil && *st != "" {
			if _, ok := protocol.ParseStatus(string(*st)); !ok {
				t.Fatalf("peer status %q reached the backend", *st)
			}
		}
		if b.keyReq != nil {
			var again APIKeyRequest
			if err := protocol.DecodeStrict(body, MaxBodyBytes, &again); err != nil || again != *b.keyReq {
				t.Fatalf("key request %+v reached the backend; DecodeStrict: %+v, %v", *b.keyReq, again, err)
			}
		}
		if len(b.verified) > MaxBodyBytes {
			t.Fatalf("verify body of %d bytes reached the backend", len(b.verified))
		}
	})
}
