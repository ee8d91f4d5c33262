package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Config holds the API's limits: what one client, and all clients
// together, may make the node hold or do. Start from DefaultConfig; each
// limit is a row of docs/SECURITY.md.
type Config struct {
	// RatePerSecond and Burst bound the requests of each credential (the
	// node's token, each API key), wherever they come from. Failures of
	// other clients never spend them.
	RatePerSecond float64
	Burst         int
	// AnonRatePerSecond and AnonBurst bound unauthenticated requests
	// (/api/v1/health without a credential) per client address. A valid
	// credential never draws on these buckets.
	AnonRatePerSecond float64
	AnonBurst         int
	// AuthFailureRate and AuthFailureBurst bound failed authentications
	// per client address that are answered 401 and audited; beyond them
	// the address gets 429 (unaudited), while a valid credential from the
	// same address is still served.
	AuthFailureRate  float64
	AuthFailureBurst int

	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (event
	// streams lift it once their request is read).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response (event streams instead bound
	// each write by StreamWriteTimeout).
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that waits this long for
	// its next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
	// MaxConnsPerClient bounds the open connections of one client address.
	// A connection beyond it first evicts an idle one of the same address;
	// if none is idle it is closed at accept.
	MaxConnsPerClient int
	// MaxStreamsPerClient bounds the event streams (SSE) one credential
	// holds open; MaxStreams bounds them for all clients together. Beyond
	// either the answer is 429.
	MaxStreamsPerClient int
	MaxStreams          int
	// StreamWriteTimeout bounds each write to an event stream: a client
	// that stops reading is dropped.
	StreamWriteTimeout time.Duration
}

// DefaultConfig returns the limits of a node's API.
func DefaultConfig() Config {
	return Config{
		RatePerSecond:       50,               // 50 requests a second per credential
		Burst:               100,              // after a burst of 100
		AnonRatePerSecond:   20,               // health checks per address: 20 a second
		AnonBurst:           40,               // after a burst of 40
		AuthFailureRate:     1,                // one more failed authentication per address each second
		AuthFailureBurst:    10,               // after 10
		ReadHeaderTimeout:   10 * time.Second, // headers within 10 s
		ReadTimeout:         60 * time.Second, // a 16 MiB body at ≈ 2 Mbit/s
		WriteTimeout:        60 * time.Second, // the largest bundle at the same rate
		IdleTimeout:         60 * time.Second, // keep-alive connections close after a minute idle
		MaxHeaderBytes:      64 << 10,         // 64 KiB of headers
		MaxConnsPerClient:   64,               // 64 open connections per address
		MaxStreamsPerClient: 16,               // 16 event streams per credential
		MaxStreams:          256,              // 256 event streams in all
		StreamWriteTimeout:  30 * time.Second, // twice the 15 s keepalive of a stream
	}
}

// ErrInvalidConfig is wrapped by every Config.Validate error.
var ErrInvalidConfig = errors.New("invalid api config")

// Validate refuses limits that cannot work.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.RatePerSecond <= 0 || c.Burst < 1:
		return bad("rate %g/s burst %d: both must be positive", c.RatePerSecond, c.Burst)
	case c.AnonRatePerSecond <= 0 || c.AnonBurst < 1:
		return bad("anonymous rate %g/s burst %d: both must be positive", c.AnonRatePerSecond, c.AnonBurst)
	case c.AuthFailureRate <= 0 || c.AuthFailureBurst < 1:
		return bad("auth failure rate %g/s burst %d: both must be positive", c.AuthFailureRate, c.AuthFailureBurst)
	case c.ReadHeaderTimeout <= 0 || c.ReadTimeout < c.ReadHeaderTimeout:
		return bad("read header timeout %s, read timeout %s: need 0 < header <= read", c.ReadHeaderTimeout, c.ReadTimeout)
	case c.WriteTimeout <= 0 || c.IdleTimeout <= 0 || c.StreamWriteTimeout <= 0:
		return bad("write, idle and stream write timeouts must be positive")
	case c.MaxHeaderBytes < 4<<10:
		return bad("max header bytes %d: need at least 4096", c.MaxHeaderBytes)
	case c.MaxConnsPerClient < 2:
		return bad("max conns per client %d: need at least 2", c.MaxConnsPerClient)
	case c.MaxStreamsPerClient < 1 || c.MaxStreams < c.MaxStreamsPerClient:
		return bad("max streams %d per client, %d in all: need 1 <= per client <= all", c.MaxStreamsPerClient, c.MaxStreams)
	}
	return nil
}

// NewServer returns the HTTP server of the API with the config's timeouts.
// Serve it on Listen's listener so the per-client connection cap holds.
func NewServer(h http.Handler, cfg Config, ln *Listener) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
	}
	if ln != nil {
		srv.ConnState = ln.ConnState
	}
	return srv
}
