package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/protocol"
)

const testToken = "tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt"

// Issue 12, attack 1 (lockout): twelve bad tokens from 127.0.0.1, then the
// admin with the right token got 429 200 200 200 429 429 …, and a flood of
// unauthenticated /api/v1/health calls throttled the admin too: every
// local client shared one bucket. A flood of bad tokens and of health
// calls from the admin's own address must leave the admin served.
func TestLockoutBadTokensAndHealthFloodDoNotThrottleAdmin(t *testing.T) {
	h := Handler(nopBackend{}, Options{Token: testToken})
	get := func(path, tok string) int {
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr = "127.0.0.1:40000"
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	codes := map[int]int{}
	for i := range 300 {
		codes[get("/api/v1/node", fmt.Sprintf("guess-%d", i))]++
		codes[get("/api/v1/health", "")]++
		codes[get("/api/v1/health", "wrong")]++
	}
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusUnauthorized] == 0 || codes[http.StatusUnauthorized] > DefaultConfig().AuthFailureBurst+1 {
		t.Fatalf("the flood was not limited: %v", codes)
	}
	for i := range 50 {
		if code := get("/api/v1/node", testToken); code != http.StatusOK {
			t.Fatalf("admin request %d after the flood: %d", i, code)
		}
		if code := get("/api/v1/health", testToken); code != http.StatusOK {
			t.Fatalf("admin health check %d after the flood: %d", i, code)
		}
	}
}

// A credential is limited as itself: the admin's own excess is refused,
// with a message that names the credential by fingerprint only.
func TestCredentialLimitedAsItself(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RatePerSecond, cfg.Burst = 1, 3
	h := Handler(nopBackend{}, Options{Token: testToken, Config: cfg})
	var last *httptest.ResponseRecorder
	for range 4 {
		req := httptest.NewRequest("GET", "/api/v1/node", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		last = httptest.NewRecorder()
		h.ServeHTTP(last, req)
	}
	if last.Code != http.StatusTooManyRequests || !strings.Contains(last.Body.String(), Fingerprint(testToken)) || strings.Contains(last.Body.String(), testToken) {
		t.Fatalf("fourth request: %d %s", last.Code, last.Body)
	}
}

// serve runs the API as a node does (Listen, NewServer) on loopback.
func serve(t *testing.T, b Backend, cfg Config) (addr string, ln *Listener) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = Listen(raw, cfg.MaxConnsPerClient)
	srv := NewServer(Handler(b, Options{Token: testToken, Config: cfg}), cfg, ln)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return raw.Addr().String(), ln
}

// dialRequest opens a connection and sends one keep-alive request on it;
// with read set, it reads the response head.
func dialRequest(t *testing.T, addr, path string, read bool) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", path, testToken)
	br := bufio.NewReader(c)
	if read {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return c, br
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// idleConns counts the connections of addr the server holds idle.
func idleConns(l *Listener, addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for c := range l.conns[addr] {
		if c.idle {
			n++
		}
	}
	return n
}

// closedWithin reports whether the server closes c within d.
func closedWithin(c net.Conn, br *bufio.Reader, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := br.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// Issue 12, attack 2 (idle connections): 1,500 idle keep-alive
// connections were all still open 40 s later. Idle connections now close
// after IdleTimeout.
func TestIdleConnectionsClosedAfterIdleTimeout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IdleTimeout = 300 * time.Millisecond
	addr, ln := serve(t, nopBackend{}, cfg)
	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	var conns []conn
	for range 40 {
		c, br := dialRequest(t, addr, "/api/v1/node", true)
		conns = append(conns, conn{c, br})
	}
	for i, c := range conns {
		if !closedWithin(c.c, c.br, 5*time.Second) {
			t.Fatalf("idle connection %d still open", i)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for ln.Open("127.0.0.1") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still counted", ln.Open("127.0.0.1"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A client that sends its body slowly is cut off after ReadTimeout; headers
// beyond MaxHeaderBytes are refused.
func TestSlowBodyAndHugeHeadersRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReadHeaderTimeout, cfg.ReadTimeout = 200*time.Millisecond, 400*time.Millisecond
	cfg.MaxHeaderBytes = 4 << 10
	addr, _ := serve(t, nopBackend{}, cfg)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /api/v1/proofs/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n", testToken)
	start := time.Now()
	for time.Since(start) < time.Second {
		if _, err := c.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Whatever the server answered, it closes the connection.
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a slow body was read for more than ReadTimeout")
		}
	}

	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintf(c2, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 16<<10))
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("16 KiB of headers: %d", resp.StatusCode)
	}
}

// Issue 12, attack 2: no per-client connection cap. Connections of one
// address beyond MaxConnsPerClient are closed at accept while the first
// ones stay open; an idle connection makes room for one that talks.
func TestConnectionsPerClientCapped(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxConnsPerClient = 4
	addr, ln := serve(t, nopBackend{}, cfg)
	var held []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ln.Open("127.0.0.1") != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections accepted, want 4", ln.Open("127.0.0.1"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 10 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if !closedWithin(c, bufio.NewReader(c), 3*time.Second) {
			t.Fatalf("connection %d over the cap left open", 5+i)
		}
		c.Close()
	}
	for i, c := range held {
		if closedWithin(c, bufio.NewReader(c), 50*time.Millisecond) {
			t.Fatalf("connection %d within the cap closed", i)
		}
	}
	if n := ln.Open("127.0.0.1"); n != 4 {
		t.Fatalf("%d connections open, want 4", n)
	}
	// Make the held connections idle keep-alives: a new client evicts one.
	for _, c := range held {
		c.Close()
	}
	waitFor(t, "the held connections closed by the server", func() bool { return ln.Open("127.0.0.1") == 0 })
	for range 4 {
		dialRequest(t, addr, "/api/v1/node", true)
	}
	// The server marks a connection idle just after it writes the
	// response, so a client can read it first: wait for the mark.
	waitFor(t, "four idle keep-alives", func() bool { return idleConns(ln, "127.0.0.1") == 4 })
	_, br := dialRequest(t, addr, "/api/v1/node", false)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("a talking client behind four idle connections: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || ln.Open("127.0.0.1") > 4 {
		t.Fatalf("status %d, %d open", resp.StatusCode, ln.Open("127.0.0.1"))
	}
}

// streamBackend serves one task that never ends.
type streamBackend struct{ nopBackend }

func (streamBackend) Task(id string) (TaskView, error) {
	return TaskView{TaskID: id, State: protocol.StateRunning}, nil
}

func (streamBackend) Watch(string) (<-chan struct{}, func(), error) {
	return make(chan struct{}), func() {}, nil
}

func (streamBackend) AuthenticateKey(key string) (string, error) { return ScopeRead, nil }

// Issue 12, attack 2: 400 SSE subscribers to one task were all served.
// Streams are capped per client (credential) and in total, each refusal
// a 429 naming its limit; a stream outlives ReadTimeout.
func TestEventStreamsCappedPerClientAndInTotal(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxStreamsPerClient, cfg.MaxStreams = 3, 5
	cfg.ReadHeaderTimeout, cfg.ReadTimeout = 100*time.Millisecond, 200*time.Millisecond
	addr, _ := serve(t, streamBackend{}, cfg)
	type stream struct {
		c    net.Conn
		body io.Reader
	}
	open := func(tok string) (int, string, stream) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		fmt.Fprintf(c, "GET /api/v1/tasks/t1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b), stream{c, resp.Body}
		}
		return resp.StatusCode, "", stream{c, resp.Body}
	}
	var admin []stream
	for i := range 3 {
		code, _, c := open(testToken)
		if code != http.StatusOK {
			t.Fatalf("stream %d: %d", i, code)
		}
		admin = append(admin, c)
	}
	if code, body, _ := open(testToken); code != http.StatusTooManyRequests || !strings.Contains(body, "max_streams_per_client") {
		t.Fatalf("fourth stream of one client: %d %s", code, body)
	}
	key := "pmk_other_" + strings.Repeat("0", 64)
	for range 2 {
		if code, body, _ := open(key); code != http.StatusOK {
			t.Fatalf("another client's stream: %d %s", code, body)
		}
	}
	if code, body, _ := open("pmk_third_" + strings.Repeat("0", 64)); code != http.StatusTooManyRequests || !strings.Contains(body, "max_streams)") {
		t.Fatalf("stream beyond the total: %d %s", code, body)
	}
	// Streams outlive ReadTimeout.
	time.Sleep(3 * cfg.ReadTimeout)
	for i, st := range admin {
		_ = st.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err := io.ReadAll(st.body)
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Fatalf("stream %d ended by ReadTimeout: %v", i, err)
		}
	}
	// A closed stream frees its slot.
	admin[0].c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, _ := open(testToken)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed: %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An event stream is bounded per write, not by WriteTimeout: a stream that
// writes every 100 ms outlives a 300 ms WriteTimeout.
func TestEventStreamOutlivesWriteTimeout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WriteTimeout, cfg.StreamWriteTimeout = 300*time.Millisecond, time.Second
	s := newServer(nopBackend{}, Options{Token: testToken, Config: cfg})
	h := s.wrap("GET /test/events", ScopeRead, func(w http.ResponseWriter, r *http.Request) {
		for i := range 12 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listen(raw, cfg.MaxConnsPerClient)
	srv := NewServer(h, cfg, ln)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	req, _ := http.NewRequest("GET", "http://"+raw.Addr().String()+"/test/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(b), "data: 11") {
		t.Fatalf("stream cut short after %d bytes: %v", len(b), err)
	}
}
