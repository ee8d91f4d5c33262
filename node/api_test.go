package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
)

func call(t *testing.T, n *Node, method, path, token, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+n.APIAddr()+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPIAuthStatusCodesAndMetrics(t *testing.T) {
	tn := startTestnet(t, 2, nil)
	n, other := tn.Nodes[0], tn.Nodes[1]
	tok := n.Token()

	if code, _ := call(t, n, "GET", "/api/v1/health", "", ""); code != 200 {
		t.Fatalf("health = %d", code)
	}
	if code, body := call(t, n, "GET", "/api/v1/health", "", ""); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("health = %d", code)
	}
	for _, bad := range []string{"", "wrong", tok + "x", strings.ToUpper(tok)} {
		if code, body := call(t, n, "GET", "/api/v1/node", bad, ""); code != 401 || !strings.Contains(body, `"error": "unauthorized"`) {
			t.Fatalf("token %q: %d %s", bad, code, body)
		}
	}
	code, body := call(t, n, "GET", "/api/v1/node", tok, "")
	if code != 200 || !strings.Contains(body, n.ID().String()) {
		t.Fatalf("node: %d %s", code, body)
	}
	if code, body := call(t, n, "GET", "/api/v1/peers/"+other.ID().String(), tok, ""); code != 200 || !strings.Contains(body, `"status": "online"`) {
		t.Fatalf("peer: %d %s", code, body)
	}
	for path, want := range map[string]int{
		"/api/v1/peers/12D3KooWNotAPeer":   404,
		"/api/v1/peers?status=sleeping":    400,
		"/api/v1/tasks/deadbeef":           404,
		"/api/v1/tasks/deadbeef/bundle":    404,
		"/api/v1/nothing":                  404,
		"/api/v1/tasks?state=dreaming":     400,
		"/api/v1/policy":                   200,
		"/api/v1/task-types":               200,
		"/api/v1/peers?status=online":      200,
		"/api/v1/tasks?limit=5":            200,
		"/api/v1/tasks?limit=0":            400,
		"/api/v1/tasks/deadbeef/events":    404,
		"/api/v1/peers/" + n.ID().String(): 404, // itself is not a peer
		"/api/v1/audit?limit=10":           200,
		"/api/v1/audit?from=x":             400,
	} {
		if code, body := call(t, n, "GET", path, tok, ""); code != want {
			t.Errorf("GET %s = %d, want %d: %s", path, code, want, body)
		}
	}
	for _, tc := range []struct {
		body string
		code int
		word string
	}{
		{`{"type":"nope.v1","input":{}}`, 400, "unknown_task_type"},
		{`{"type":"mimc.chain.v1","input":{"x":"` + strings.Repeat("9", 400) + `"}}`, 413, "input_too_large"},
		{`{"type":"mimc.chain.v1","input":{"x":"1"},"replicas":99}`, 400, "bad_replicas"},
		{`{"type":"mimc.chain.v1","input":{"x":"1"},"colour":"red"}`, 400, "bad_request"},
		{`not json`, 400, "bad_request"},
		{`{"type":"mlp.infer.v1","input":{"x":[1]}}`, 400, "bad_input"},
	} {
		code, body := call(t, n, "POST", "/api/v1/tasks", tok, tc.body)
		if code != tc.code || !strings.Contains(body, tc.word) {
			t.Errorf("POST %.40s = %d %s, want %d %s", tc.body, code, body, tc.code, tc.word)
		}
	}
	// Every failed authentication above is in the audit chain, which is
	// intact.
	code, body = call(t, n, "GET", "/api/v1/audit", tok, "")
	if code != 200 || !strings.Contains(body, "api.auth_failed") || !strings.Contains(body, "node.start") ||
		!strings.Contains(body, "api.auth_ok") || !strings.Contains(body, "token "+TokenFingerprint(tok)) || strings.Contains(body, tok) ||
		!strings.Contains(body, "peer.joined") {
		t.Errorf("audit: %d %.300s", code, body)
	}
	if code, body := call(t, n, "GET", "/api/v1/audit/verify", tok, ""); code != 200 || !strings.Contains(body, `"intact": true`) {
		t.Errorf("audit verify: %d %s", code, body)
	}
	code, body = call(t, n, "GET", "/api/v1/audit/checkpoint", tok, "")
	var cp api.AuditCheckpoint
	if code != 200 || json.Unmarshal([]byte(body), &cp) != nil {
		t.Fatalf("audit checkpoint: %d %s", code, body)
	}
	if opened, err := protocol.OpenAuditCheckpoint(cp.Envelope); err != nil || opened.NodeID != n.ID().String() || opened.Seq != cp.Seq || opened.Hash != cp.Hash {
		t.Errorf("checkpoint envelope: %+v, %v", opened, err)
	}
	code, body = call(t, n, "GET", "/metrics", tok, "")
	for _, m := range []string{"proofmesh_peers{status=\"online\"} 1", "proofmesh_heartbeats_received_total", "proofmesh_gossip_messages_total", "proofmesh_api_requests_total"} {
		if code != 200 || !strings.Contains(body, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	if code, _ := call(t, n, "GET", "/metrics", "", ""); code != 401 {
		t.Errorf("metrics without token = %d", code)
	}
}

// A token guesser is stopped after a few failures (429 with Retry-After),
// while the holder of the right token, from the same address, is served
// (issue 12: the guesser's failures used to lock the admin out), and every
// response carries the security headers.
func TestAPIAuthFailuresLimited(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	n := tn.Nodes[0]
	codes := map[int]int{}
	for range 20 {
		code, _ := call(t, n, "GET", "/api/v1/node", "guess", "")
		codes[code]++
	}
	if codes[401] == 0 || codes[429] == 0 || codes[401] > 11 {
		t.Fatalf("20 wrong tokens gave %v", codes)
	}
	req, _ := http.NewRequest("GET", "http://"+n.APIAddr()+"/api/v1/node", nil)
	req.Header.Set("Authorization", "Bearer "+n.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("right token right after a guessing spree: %d", resp.StatusCode)
	}
	for _, h := range []string{"X-Content-Type-Options", "Content-Security-Policy", "Cache-Control"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("response lacks %s", h)
		}
	}
}

func TestAPIRateLimit(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	n := tn.Nodes[0]
	limited := 0
	for range 300 {
		if code, _ := call(t, n, "GET", "/api/v1/health", "", ""); code == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("300 requests in a burst were never rate limited")
	}
}

// A graceful exit makes the node deleted on its peers: 404 on the API,
// listed under status=deleted.
func TestLeaveMakesPeerDeletedAndNotFound(t *testing.T) {
	tn := startTestnet(t, 3, nil)
	n, leaver := tn.Nodes[0], tn.Nodes[2]
	if err := leaver.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := call(t, n, "GET", "/api/v1/peers/"+leaver.ID().String(), n.Token(), "")
		if code == 404 {
			// The 404 says why: it left, and where it is listed.
			if !strings.Contains(body, "left the network at") || !strings.Contains(body, "(shutdown)") || !strings.Contains(body, "status=deleted") {
				t.Fatalf("404 of a peer that left: %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted peer still %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, body := call(t, n, "GET", "/api/v1/peers?status=deleted", n.Token(), "")
	var peers []struct {
		ID          string              `json:"id"`
		Status      protocol.PeerStatus `json:"status"`
		LeaveReason string              `json:"leave_reason"`
	}
	if err := json.Unmarshal([]byte(body), &peers); err != nil || len(peers) != 1 || peers[0].ID != leaver.ID().String() || peers[0].LeaveReason != "shutdown" {
		t.Fatalf("deleted peers = %s (%v)", body, err)
	}
}

func TestAPIKeysScopesExpiryRevocation(t *testing.T) {
	tn := startTestnet(t, 1, nil)
	n := tn.Nodes[0]
	admin := n.Token()
	create := func(scope, expires string) (string, string) {
		t.Helper()
		code, body := call(t, n, "POST", "/api/v1/apikeys", admin, `{"scope":"`+scope+`","expires_in":"`+expires+`","label":"test"}`)
		var k struct {
			Key    string `json:"key"`
			Prefix string `json:"prefix"`
		}
		if code != 201 || json.Unmarshal([]byte(body), &k) != nil || !strings.HasPrefix(k.Key, k.Prefix+"_") {
			t.Fatalf("create %s: %d %s", scope, code, body)
		}
		return k.Key, k.Prefix
	}
	reader, _ := create("read", "")
	submitter, subPrefix := create("submit", "1h")
	shortLived, _ := create("read", "1ms")

	for _, tc := range []struct {
		name, method, path, key, body string
		code                          int
		says                          string
	}{
		{"read key reads", "GET", "/api/v1/node", reader, "", 200, ""},
		{"read key cannot submit", "POST", "/api/v1/tasks", reader, `{"type":"mimc.chain.v1","input":{"x":"1"}}`, 403, "insufficient scope"},
		{"submit key submits (checked input)", "POST", "/api/v1/tasks", submitter, `{"type":"nope.v1","input":{}}`, 400, "unknown_task_type"},
		{"submit key is not admin", "GET", "/api/v1/apikeys", submitter, "", 403, "insufficient scope"},
		{"read key cannot sign checkpoints", "GET", "/api/v1/audit/checkpoint", reader, "", 403, "insufficient scope"},
		{"expired key", "GET", "/api/v1/node", shortLived, "", 401, "expired"},
		{"malformed key", "GET", "/api/v1/node", "pmk_../etc", "", 401, "not an API key"},
		{"unknown key", "GET", "/api/v1/node", "pmk_00000000_" + strings.Repeat("0", 64), "", 401, "unknown"},
		{"bad scope", "POST", "/api/v1/apikeys", admin, `{"scope":"root"}`, 400, "scope"},
		{"revoking unknown prefix", "DELETE", "/api/v1/apikeys/pmk_ffffffff", admin, "", 404, "not_found"},
	} {
		code, body := call(t, n, tc.method, tc.path, tc.key, tc.body)
		if code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %s, want %d mentioning %q", tc.name, code, body, tc.code, tc.says)
		}
	}
	if code, body := call(t, n, "DELETE", "/api/v1/apikeys/"+subPrefix, admin, ""); code != 200 || !strings.Contains(body, "revoked") {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, body := call(t, n, "GET", "/api/v1/node", submitter, ""); code != 401 || !strings.Contains(body, "revoked") {
		t.Fatalf("revoked key: %d %s", code, body)
	}
	_, list := call(t, n, "GET", "/api/v1/apikeys", admin, "")
	if strings.Contains(list, submitter) || strings.Contains(list, reader) || !strings.Contains(list, subPrefix) {
		t.Fatalf("key list leaks keys or misses one: %s", list)
	}
	_, audit := call(t, n, "GET", "/api/v1/audit?limit=1000", admin, "")
	if !strings.Contains(audit, "apikey.created") || !strings.Contains(audit, "apikey.revoked") {
		t.Fatalf("audit lacks key events: %.400s", audit)
	}
}
