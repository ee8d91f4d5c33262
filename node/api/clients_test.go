package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type submitOKBackend struct{ nopBackend }

func (submitOKBackend) Submit(context.Context, SubmitRequest) (string, error) { return "id", nil }

// The strict body reader refuses case-variant keys of struct fields; a
// map's keys (environment variables, guest paths) are case-sensitive and
// must pass, as must what the CLI and the dashboard send.
func TestStrictBodiesAcceptWhatClientsSend(t *testing.T) {
	tok := strings.Repeat("t", 64)
	h := Handler(submitOKBackend{}, Options{Token: tok})
	cli, _ := json.Marshal(SubmitRequest{Type: "wasm.exec.v1", Input: json.RawMessage(`"aGk="`), Module: []byte{0, 'a', 's', 'm'},
		Replicas: 2, Args: []string{"-v"}, Env: map[string]string{"MODE": "fast"}, Outputs: []string{"/out/x"}})
	for name, body := range map[string]string{
		"env keys differing in case":    `{"type":"wasm.exec.v1","input":"aGk=","module":"AGFzbQ==","env":{"PATH":"a","path":"b"}}`,
		"guest paths differing in case": `{"type":"wasm.exec.v1","input":"aGk=","module":"AGFzbQ==","files":{"/in/A":"aGk=","/in/a":"aGk="}}`,
		"limits":                        `{"type":"wasm.exec.v1","input":"aGk=","module":"AGFzbQ==","limits":{"timeout_ms":5000,"fuel":1000}}`,
		"dashboard typed input":         `{"type":"mlp.infer.v1","input":{"x":[1,2,3]},"replicas":2}` + "\n",
		"cli body":                      string(cli),
	} {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/tasks", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 400 {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body.String())
		}
	}
}
