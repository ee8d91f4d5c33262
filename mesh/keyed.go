package mesh

import (
	"context"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
)

// The blob and results protocols share their request: a 64-character
// lower-case hex key (a blob's SHA-256, a task id) and a newline; and the
// status bytes of a refusal.
const (
	statusBadRequest = 3
	statusBusy       = 4
)

// acceptKeyed reads the request of one blob or results stream: it takes a
// slot of sem (answering busy when none is free), holds the stream to
// timeout, and reads the key, refusing anything but 65 bytes of a valid
// one. ok false: the stream was answered, counted under direction in the
// transfers metric, and is done. The caller calls release when ok.
func (m *Mesh) acceptKeyed(s network.Stream, sem chan struct{}, direction string, timeout time.Duration) (key string, release func(), ok bool) {
	select {
	case sem <- struct{}{}:
	default:
		_, _ = s.Write([]byte{statusBusy})
		m.met.blobs.WithLabelValues(direction, "busy").Inc()
		return "", nil, false
	}
	release = func() { <-sem }
	_ = s.SetDeadline(time.Now().Add(timeout))
	req := make([]byte, 65)
	if _, err := io.ReadFull(s, req); err != nil {
		_ = s.Reset()
		m.met.blobs.WithLabelValues(direction, "bad_request").Inc()
		release()
		return "", nil, false
	}
	key = string(req[:64])
	if req[64] != '\n' || !validHash(key) {
		_, _ = s.Write([]byte{statusBadRequest})
		m.met.blobs.WithLabelValues(direction, "bad_request").Inc()
		release()
		return "", nil, false
	}
	return key, release, true
}

// requestKeyed sends the key and a newline as a request of proto to p
// (request).
func (m *Mesh) requestKeyed(ctx context.Context, p peer.ID, proto libp2pproto.ID, key string, timeout time.Duration) (s network.Stream, done func(), err error) {
	return m.request(ctx, p, proto, []byte(key+"\n"), timeout)
}

// request opens a stream of proto to p with ctx (which may carry
// libp2p's dial and connection options), bounds it by ctx's deadline and
// at most timeout, resets it when ctx ends, sends req and closes its
// write side. The caller reads the answer, then calls done.
func (m *Mesh) request(ctx context.Context, p peer.ID, proto libp2pproto.ID, req []byte, timeout time.Duration) (s network.Stream, done func(), err error) {
	m.findAddrs(ctx, p)
	s, err = m.h.NewStream(ctx, p, proto)
	if err != nil {
		return nil, nil, err
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	done = func() { stop(); _ = s.Close() }
	if _, err := s.Write(req); err != nil {
		done()
		return nil, nil, err
	}
	_ = s.CloseWrite()
	return s, done, nil
}
