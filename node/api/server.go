// Package api is a node's HTTP API: JSON over HTTP on loopback by default,
// bearer-token authentication compared in constant time, per-client rate
// limits, bounded request bodies, and errors as {"error", "message"} with
// the status codes of DESIGN.md.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/proofmesh/proofmesh/node/ui"
	"github.com/proofmesh/proofmesh/protocol"
)

// MaxBodyBytes bounds a request body: a wasm.exec.v1 module of 8 MiB and
// an input of 1 MiB, base64-encoded, fit.
const MaxBodyBytes = 16 << 20

// Options configure the handler.
type Options struct {
	// Token is the bearer token every route but /api/v1/health requires.
	Token string
	// Metrics is served on /metrics and receives the API's own counters.
	Metrics *prometheus.Registry
	Logger  *slog.Logger
	// Audit is told of every authentication failure (remote address and
	// path); optional.
	Audit func(remote, path string)
	// AuditSuccess is told of a successful authentication: the remote
	// address and the credential as a fingerprint ("token 1a2b3c4d") or
	// an API key prefix; optional.
	AuditSuccess func(remote, credential string)
	// Config holds the API's rate limits and stream caps (its timeouts and
	// connection cap apply through NewServer and Listen). Zero:
	// DefaultConfig().
	Config Config
	// CORSOrigins are the browser origins allowed to call the API
	// (exact matches, e.g. "https://dashboard.example"). Empty: none; no
	// CORS header is ever sent.
	CORSOrigins []string
}

type server struct {
	b     Backend
	opt   Options
	cfg   Config
	log   *slog.Logger
	tiers map[string]*protocol.Limiter // keyed by credential
	anon  *protocol.Limiter            // unauthenticated requests, keyed by address
	fails *protocol.Limiter            // failed authentications, keyed by address
	// tokenID is the node token's name in limits and audit entries.
	tokenID string
	streams *streamSlots
	codes   *prometheus.CounterVec
}

// Rate-limit tiers, each a token bucket per credential (the node's token
// or an API key): general requests; submissions and proof verifications,
// which cost the node work. Requests without a valid credential are
// limited per client address in buckets of their own (anon, fails), so
// the holder of a valid credential never pays for others' failures.
const (
	tierGeneral = "general"
	tierSubmit  = "submit"
	tierVerify  = "verify"
)

func newServer(b Backend, opt Options) *server {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := opt.Config
	if cfg == (Config{}) {
		cfg = DefaultConfig()
	}
	s := &server{b: b, opt: opt, cfg: cfg, log: opt.Logger.With("subsys", "api"), tiers: map[string]*protocol.Limiter{
		tierGeneral: protocol.NewLimiter(cfg.RatePerSecond, float64(cfg.Burst)),
		tierSubmit:  protocol.NewLimiter(10, 20),
		tierVerify:  protocol.NewLimiter(10, 20),
	},
		anon:    protocol.NewLimiter(cfg.AnonRatePerSecond, float64(cfg.AnonBurst)),
		fails:   protocol.NewLimiter(cfg.AuthFailureRate, float64(cfg.AuthFailureBurst)),
		tokenID: "token " + Fingerprint(opt.Token),
		streams: newStreamSlots(cfg.MaxStreamsPerClient, cfg.MaxStreams),
	}
	s.codes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "proofmesh_api_requests_total", Help: "API requests, by route and status code.",
	}, []string{"route", "code"})
	return s
}

// Handler returns the API's HTTP handler.
func Handler(b Backend, opt Options) http.Handler {
	s := newServer(b, opt)
	opt = s.opt
	mux := http.NewServeMux()
	// Each route names the scope it needs ("" for none): the node's own
	// token is admin; API keys carry their scope.
	route := func(pattern, scope string, h http.HandlerFunc) {
		mux.Handle(pattern, s.wrap(pattern, scope, h))
	}
	route("GET /api/v1/health", "", s.health)
	route("GET /api/v1/node", ScopeRead, s.node)
	route("GET /api/v1/peers", ScopeRead, s.peers)
	route("GET /api/v1/peers/{id}", ScopeRead, s.peer)
	route("GET /api/v1/policy", ScopeRead, s.policy)
	route("GET /api/v1/task-types", ScopeRead, s.taskTypes)
	route("POST /api/v1/tasks", ScopeSubmit, s.submit)
	route("GET /api/v1/tasks", ScopeRead, s.tasks)
	route("GET /api/v1/tasks/{id}", ScopeRead, s.task)
	route("DELETE /api/v1/tasks/{id}", ScopeSubmit, s.cancel)
	route("GET /api/v1/tasks/{id}/events", ScopeRead, s.events)
	route("GET /api/v1/tasks/{id}/bundle", ScopeRead, s.bundle)
	route("GET /api/v1/tasks/{id}/files/{path...}", ScopeRead, s.taskFile)
	route("POST /api/v1/proofs/verify", ScopeSubmit, s.verify)
	route("GET /api/v1/audit", ScopeAdmin, s.audit)
	route("GET /api/v1/audit/verify", ScopeAdmin, s.auditVerify)
	route("GET /api/v1/audit/checkpoint", ScopeAdmin, s.auditCheckpoint)
	route("POST /api/v1/apikeys", ScopeAdmin, s.createKey)
	route("GET /api/v1/apikeys", ScopeAdmin, s.listKeys)
	route("DELETE /api/v1/apikeys/{prefix}", ScopeAdmin, s.revokeKey)
	// The dashboard: its static files load without a token (they hold no
	// secret; the page's API calls carry the token in their Authorization
	// header) and with a CSP of their own; / sends a browser there, the
	// URL's fragment (#token=…) kept by the browser.
	route("GET /ui/", "", ui.Handler().ServeHTTP)
	route("GET /{$}", "", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, ui.Prefix, http.StatusFound)
	})
	if opt.Metrics != nil {
		opt.Metrics.MustRegister(s.codes)
		route("GET /metrics", ScopeRead, promhttp.HandlerFor(opt.Metrics, promhttp.HandlerOpts{}).ServeHTTP)
	}
	// Preflight requests of allowed origins.
	mux.HandleFunc("OPTIONS /", func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		origin := r.Header.Get("Origin")
		if !slices.Contains(opt.CORSOrigins, origin) {
			writeError(w, http.StatusNotFound, "not_found", "cross-origin requests from "+origin+" are not allowed")
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Vary", "Origin")
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		w.Header().Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s does not serve %s; it serves %s", r.URL.Path, r.Method, strings.Join(allow, ", ")))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// allowedMethods lists the methods some route of mux serves at r's path.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "OPTIONS /" && pattern != "" {
			allow = append(allow, m)
		}
	}
	return allow
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int) { w.code = c; w.ResponseWriter.WriteHeader(c) }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *server) wrap(route string, scope string, h http.HandlerFunc) http.Handler {
	auth := scope != ""
	stream := strings.HasSuffix(route, "/events")
	tier := ""
	switch route {
	case "POST /api/v1/tasks":
		tier = tierSubmit
	case "POST /api/v1/proofs/verify":
		tier = tierVerify
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() { s.codes.WithLabelValues(route, strconv.Itoa(sw.code)).Inc() }()
		securityHeaders(sw.Header())
		if origin := r.Header.Get("Origin"); origin != "" && slices.Contains(s.opt.CORSOrigins, origin) {
			sw.Header().Set("Access-Control-Allow-Origin", origin)
			sw.Header().Set("Vary", "Origin")
			sw.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			sw.Header().Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		now := time.Now()
		tooMany := func(msg string) {
			sw.Header().Set("Retry-After", "1")
			writeError(sw, http.StatusTooManyRequests, "rate_limited", msg)
		}
		// Authenticate first (constant time), so that what limits a
		// request depends on who it is: a valid credential has buckets
		// of its own, which nobody else's requests spend.
		cred := ""
		if auth || r.Header.Get("Authorization") != "" {
			have, id, err := s.authenticate(r)
			if err == nil && auth && !ScopeAllows(have, scope) {
				err = fmt.Errorf("insufficient scope: this key is %q, %s needs %q", have, route, scope)
				cred = id // a valid credential: its own buckets pay
			}
			switch {
			case err == nil:
				cred = id
			case !auth:
				// A bad credential on an open route is served as
				// anonymous.
			case cred == "" && !s.fails.Allow(host, now):
				tooMany(fmt.Sprintf("too many failed authentications from %s (at most %g a second after %d); retry in a second", host, s.cfg.AuthFailureRate, s.cfg.AuthFailureBurst))
				return
			default:
				if cred != "" && !s.tiers[tierGeneral].Allow(cred, now) {
					tooMany(fmt.Sprintf("too many requests by %s (at most %g a second after %d); retry in a second", cred, s.cfg.RatePerSecond, s.cfg.Burst))
					return
				}
				s.log.Debug("unauthorized request", "remote", host, "path", r.URL.Path, "reason", err)
				if s.opt.Audit != nil {
					s.opt.Audit(host, r.URL.Path+": "+err.Error())
				}
				if cred != "" { // a valid credential without the scope
					writeError(sw, http.StatusForbidden, "forbidden", err.Error())
					return
				}
				sw.Header().Set("WWW-Authenticate", `Bearer realm="proofmesh"`)
				writeError(sw, http.StatusUnauthorized, "unauthorized", err.Error())
				return
			}
		}
		if cred == "" {
			if !s.anon.Allow(host, now) {
				tooMany(fmt.Sprintf("too many unauthenticated requests from %s (at most %g a second after %d); retry in a second", host, s.cfg.AnonRatePerSecond, s.cfg.AnonBurst))
				return
			}
		} else {
			for _, t := range []string{tierGeneral, tier} {
				if t != "" && !s.tiers[t].Allow(cred, now) {
					tooMany(fmt.Sprintf("too many %s requests by %s; retry in a second", t, cred))
					return
				}
			}
			if auth && s.opt.AuditSuccess != nil {
				s.opt.AuditSuccess(host, cred)
			}
		}
		if stream {
			who := cred
			if who == "" {
				who = host
			}
			release, err := s.streams.acquire(who)
			if err != nil {
				tooMany(err.Error())
				return
			}
			defer release()
			// An event stream outlives ReadTimeout and WriteTimeout: lift
			// the read deadline (the request is read) and bound each
			// write instead, so a client that stops reading is dropped.
			rc := http.NewResponseController(sw)
			_ = rc.SetReadDeadline(time.Time{})
			h(&streamWriter{statusWriter: sw, rc: rc, timeout: s.cfg.StreamWriteTimeout}, r)
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, MaxBodyBytes)
		h(sw, r)
	})
}

// securityHeaders are set on every response: the API serves JSON to
// programs, never pages to browsers, and no origin may script it (no CORS
// headers are ever sent).
func securityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
}

// authenticate returns the scope of the request's bearer credential and
// the name it is limited and audited under: the node's token (compared
// in constant time over hashes, so not even the length leaks) is admin,
// named by its fingerprint; an API key has its own scope and is named by
// its public prefix.
func (s *server) authenticate(r *http.Request) (scope, id string, err error) {
	if s.opt.Token == "" {
		// A loopback-only node without a token (the node refuses this
		// beyond loopback): every local client is the same admin.
		return ScopeAdmin, "tokenless", nil
	}
	given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", "", errors.New("a bearer token is required (Authorization: Bearer <api.token or an API key>)")
	}
	if s.authorized(given) {
		return ScopeAdmin, s.tokenID, nil
	}
	if strings.HasPrefix(given, "pmk_") && s.b != nil {
		scope, err := s.b.AuthenticateKey(given)
		if err != nil {
			return "", "", err
		}
		key, _ := apiKeyPrefix(r) // the backend checked the key's form
		return scope, key, nil
	}
	return "", "", errors.New("the bearer token is not valid")
}

// apiKeyPrefix returns the public prefix of the request's API key.
func apiKeyPrefix(r *http.Request) (string, bool) {
	given, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	parts := strings.SplitN(given, "_", 3)
	if len(parts) != 3 || parts[0] != "pmk" {
		return "", false
	}
	return "key " + parts[0] + "_" + parts[1], true
}

// principal names the authenticated credential of a request: ScopeAdmin
// for the node's token or an admin key, else the key's name.
func (s *server) principal(r *http.Request) string {
	key, isKey := apiKeyPrefix(r)
	if !isKey {
		return ScopeAdmin
	}
	given, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if scope, err := s.b.AuthenticateKey(given); err == nil && scope == ScopeAdmin {
		return ScopeAdmin
	}
	return key
}

// taskFile is GET /api/v1/tasks/{id}/files/{path}: an output file of an
// accepted wasm.exec.v1 task, as bytes.
func (s *server) taskFile(w http.ResponseWriter, r *http.Request) {
	b, err := s.b.TaskFile(r.Context(), r.PathValue("id"), "/"+r.PathValue("path"))
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// cancel is DELETE /api/v1/tasks/{id}: the admin, or the key that
// submitted the task, asks its submitting node to sign a cancel.
func (s *server) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.b.Cancel(r.Context(), id, s.principal(r), r.URL.Query().Get("reason")); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"task_id": id, "state": "canceling"})
}

// authorized compares a token with the node's in constant time.
func (s *server) authorized(given string) bool {
	a, b := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(s.opt.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (s *server) createKey(w http.ResponseWriter, r *http.Request) {
	var req APIKeyRequest
	if !s.readBody(w, r, &req, `{"scope", "label"?, "expires_in"?}`) {
		return
	}
	k, err := s.b.CreateAPIKey(req)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, k)
}

func (s *server) listKeys(w http.ResponseWriter, _ *http.Request) {
	ks, err := s.b.APIKeys()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ks)
}

func (s *server) revokeKey(w http.ResponseWriter, r *http.Request) {
	k, err := s.b.RevokeAPIKey(r.PathValue("prefix"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

// Fingerprint is how a token may appear in logs: 8 hex characters of its
// SHA-256.
func Fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:4])
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Error is the body of every error response.
type Error struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	TaskID  string `json:"task_id,omitempty"`
}

func writeError(w http.ResponseWriter, code int, word, msg string) {
	writeJSON(w, code, Error{Error: word, Message: msg})
}

// statusOf maps backend errors onto status codes and stable words.
func statusOf(err error) (int, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "body_too_large"
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, protocol.ErrInputTooLarge), errors.Is(err, protocol.ErrModuleTooLarge):
		return http.StatusRequestEntityTooLarge, protocol.Reason(err)
	case errors.Is(err, protocol.ErrUnknownTaskType), errors.Is(err, protocol.ErrBadInput),
		errors.Is(err, protocol.ErrBadReplicas), errors.Is(err, protocol.ErrMalformed):
		return http.StatusBadRequest, protocol.Reason(err)
	case errors.Is(err, protocol.ErrNoCapablePeer):
		return http.StatusUnprocessableEntity, "no_capable_peer"
	case errors.Is(err, protocol.ErrUnknownCapability), errors.Is(err, protocol.ErrCapabilityRange), errors.Is(err, protocol.ErrCapabilityType):
		return http.StatusUnprocessableEntity, protocol.Reason(err)
	}
	return http.StatusInternalServerError, "internal"
}

// readBody decodes a request's JSON body into v strictly, as every
// outside JSON is read (protocol.DecodeStrict): an unknown, duplicate or
// case-variant key is refused, naming it (a new user's walkthrough of
// 2026-12-07 had {"TYPE": …} create a task and a duplicate "type" read
// as its last value). form is what the body must look like, for the
// error. false: the response is written.
func (s *server) readBody(w http.ResponseWriter, r *http.Request, v any, form string) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body over %d bytes", mbe.Limit))
			return false
		}
		writeError(w, http.StatusBadRequest, "bad_request", "reading the body: "+err.Error())
		return false
	}
	if err := protocol.DecodeStrict(body, MaxBodyBytes, v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "body must be "+form+": "+err.Error())
		return false
	}
	return true
}

func (s *server) fail(w http.ResponseWriter, err error) {
	code, word := statusOf(err)
	if code == http.StatusInternalServerError {
		s.log.Error("api request failed", "err", err)
	}
	msg := err.Error()
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		msg = fmt.Sprintf("request body over %d bytes", mbe.Limit)
	}
	writeError(w, code, word, msg)
}

func (s *server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) node(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.b.Info())
}

func (s *server) peers(w http.ResponseWriter, r *http.Request) {
	var st protocol.PeerStatus
	if q := r.URL.Query().Get("status"); q != "" {
		var ok bool
		if st, ok = protocol.ParseStatus(q); !ok {
			writeError(w, http.StatusBadRequest, "bad_status", fmt.Sprintf("status %q: want online, stale, offline, deleted or incompatible", q))
			return
		}
	}
	writeJSON(w, http.StatusOK, s.b.Peers(st))
}

func (s *server) peer(w http.ResponseWriter, r *http.Request) {
	p, err := s.b.Peer(r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *server) policy(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.b.Policy())
}

func (s *server) taskTypes(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.b.TaskTypes())
}

func (s *server) submit(w http.ResponseWriter, r *http.Request) {
	var req SubmitRequest
	if !s.readBody(w, r, &req, `{"type", "input", "replicas"?, "module"? or "module_hash"?, "args"?, "env"?, "files"?, "outputs"?, "limits"?}`) {
		return
	}
	if req.Replicas < 0 {
		writeError(w, http.StatusBadRequest, "bad_replicas", "replicas must be positive")
		return
	}
	req.SubmittedBy = s.principal(r)
	id, err := s.b.Submit(r.Context(), req)
	if err != nil {
		code, word := statusOf(err)
		if code == http.StatusInternalServerError {
			s.log.Error("submit failed", "err", err)
		}
		writeJSON(w, code, Error{Error: word, Message: err.Error(), TaskID: id})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"task_id": id})
}

func (s *server) tasks(w http.ResponseWriter, r *http.Request) {
	var st protocol.TaskState
	if q := r.URL.Query().Get("state"); q != "" {
		st = protocol.TaskState(q)
		if !st.Valid() {
			writeError(w, http.StatusBadRequest, "bad_state", fmt.Sprintf("state %q is not a task state (pending, assigned, running, proving, verifying, accepted, failed, canceled)", q))
			return
		}
	}
	limit, ok := queryLimit(w, r)
	if !ok {
		return
	}
	q := TaskQuery{State: st, Type: r.URL.Query().Get("type"), Limit: limit, After: r.URL.Query().Get("after")}
	ts, err := s.b.Tasks(q)
	if err != nil {
		s.fail(w, err)
		return
	}
	if len(ts) == limit {
		// The cursor of the next page: pass it as ?after=.
		w.Header().Set("X-Next-After", ts[len(ts)-1].TaskID)
	}
	writeJSON(w, http.StatusOK, ts)
}

// queryLimit reads ?limit= (1..1000, default 100); on a bad value it
// answers 400 and returns false.
func queryLimit(w http.ResponseWriter, r *http.Request) (int, bool) {
	q := r.URL.Query().Get("limit")
	if q == "" {
		return 100, true
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > 1000 {
		writeError(w, http.StatusBadRequest, "bad_limit", "limit must be 1..1000")
		return 0, false
	}
	return n, true
}

func (s *server) task(w http.ResponseWriter, r *http.Request) {
	t, err := s.b.Task(r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// WaitingRefresh is how often a task's event stream recomputes the task's
// view for its "waiting" event, besides the task's own changes.
const WaitingRefresh = 2 * time.Second

// events streams a task's timeline as server-sent events: one "state"
// event per timeline entry (those already there first), a "waiting" event
// whenever TaskView.Waiting changes (its detail empty when the task no
// longer waits), and an "end" event when the task is accepted or failed.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ch, stop, err := s.b.Watch(id)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer stop()
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	sent, waiting := 0, ""
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	// The task's view also changes without an event of the task: its
	// Waiting note follows the peer table (a candidate gone offline by
	// its heartbeats' age wakes nothing). Recomputed every WaitingRefresh
	// (streams are capped: MaxStreams reads per WaitingRefresh at most).
	refresh := time.NewTicker(WaitingRefresh)
	defer refresh.Stop()
	for {
		t, err := s.b.Task(id)
		if err != nil {
			return
		}
		for ; sent < len(t.Timeline); sent++ {
			b, _ := json.Marshal(t.Timeline[sent])
			fmt.Fprintf(w, "event: state\ndata: %s\n\n", b)
		}
		if t.Waiting != waiting {
			waiting = t.Waiting
			b, _ := json.Marshal(Event{State: t.State, Time: time.Now().UTC(), Detail: t.Waiting})
			fmt.Fprintf(w, "event: waiting\ndata: %s\n\n", b)
		}
		if t.State.Terminal() {
			b, _ := json.Marshal(t)
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", b)
			if fl != nil {
				fl.Flush()
			}
			return
		}
		if fl != nil {
			fl.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-keepalive.C:
			_, _ = io.WriteString(w, ": keepalive\n\n")
		case <-refresh.C:
		}
	}
}

func (s *server) bundle(w http.ResponseWriter, r *http.Request) {
	b, err := s.b.Bundle(r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *server) verify(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		s.fail(w, err)
		return
	}
	rep, err := s.b.VerifyBundle(data)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, rep)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *server) audit(w http.ResponseWriter, r *http.Request) {
	var from uint64
	if q := r.URL.Query().Get("from"); q != "" {
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_from", "from must be a sequence number")
			return
		}
		from = n
	}
	limit, ok := queryLimit(w, r)
	if !ok {
		return
	}
	es, err := s.b.Audit(from, limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, es)
}

func (s *server) auditCheckpoint(w http.ResponseWriter, _ *http.Request) {
	cp, err := s.b.AuditCheckpoint()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

func (s *server) auditVerify(w http.ResponseWriter, _ *http.Request) {
	n, err := s.b.VerifyAudit()
	res := map[string]any{"intact": err == nil, "entries": n}
	if err != nil {
		res["error"] = err.Error()
	}
	writeJSON(w, http.StatusOK, res)
}
