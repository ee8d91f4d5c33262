package mesh

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"github.com/proofmesh/proofmesh/protocol"
)

// The blob protocol fetches content-addressed bytes (WASM modules, large
// task inputs, proving keys) from a peer. The request is the lower-case hex
// SHA-256 of the blob and a newline; the answer is one status byte and, for
// blobStatusOK, an 8-byte big-endian length and the bytes. The fetcher
// checks the hash: a peer can refuse a blob but never substitute one.
const (
	blobStatusOK       = 0
	blobStatusNotFound = 1
	blobStatusTooLarge = 2
	blobStatusBusy     = statusBusy

	blobTimeout = time.Minute

	// blobServers bounds the blob requests served at once; blobPeerStreams
	// bounds those of one peer (by the resource manager), so that one peer
	// holding streams open cannot take every slot. A fetcher runs at most
	// blobPeerFetches at once per peer: half the limit, because a server
	// releases a stream a moment after the fetcher has read its last byte.
	blobServers     = 16
	blobPeerStreams = 4
	blobPeerFetches = blobPeerStreams / 2
)

// Blob errors callers branch on.
var (
	ErrBlobNotFound     = errors.New("blob not found on peer")
	ErrBlobTooLarge     = errors.New("blob too large")
	ErrBlobHashMismatch = errors.New("blob does not match its hash")
	ErrBlobBusy         = errors.New("peer too busy to serve blobs")
)

func (m *Mesh) blobProtocol() libp2pproto.ID { return blobProtocolID(m.cfg.NetworkID) }

func blobProtocolID(networkID string) libp2pproto.ID {
	// Every node serves it: peers recognise our network and protocol
	// major by it in identify's list.
	return libp2pproto.ID(protocol.MarkerProtocolID(networkID, protocol.ProtocolMajor))
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// serveBlob answers one blob request. Nothing a peer sends can make it read
// more than the request's 65 bytes or hold the stream past blobTimeout.
func (m *Mesh) serveBlob(s network.Stream) {
	defer s.Close()
	hash, release, ok := m.acceptKeyed(s, m.blobSem, "served", blobTimeout)
	if !ok {
		return
	}
	defer release()
	var data []byte
	found := false
	if m.cfg.Blob != nil {
		data, found = m.cfg.Blob(hash)
	}
	switch {
	case !found:
		_, _ = s.Write([]byte{blobStatusNotFound})
		m.met.blobs.WithLabelValues("served", "not_found").Inc()
		return
	case int64(len(data)) > m.cfg.MaxBlobBytes:
		_, _ = s.Write([]byte{blobStatusTooLarge})
		m.met.blobs.WithLabelValues("served", "too_large").Inc()
		return
	}
	hdr := make([]byte, 9)
	hdr[0] = blobStatusOK
	binary.BigEndian.PutUint64(hdr[1:], uint64(len(data)))
	if _, err := s.Write(hdr); err != nil {
		_ = s.Reset()
		return
	}
	if _, err := s.Write(data); err != nil {
		_ = s.Reset()
		m.met.blobs.WithLabelValues("served", "error").Inc()
		return
	}
	m.met.blobs.WithLabelValues("served", "ok").Inc()
}

// FetchBlob fetches the blob with the given hash from peer p, refusing one
// larger than maxBytes (0: the mesh's MaxBlobBytes), and checks its hash.
// At most blobPeerFetches fetches from one peer run at once (the peer's
// resource manager refuses a few more); the others wait for a slot or for
// ctx.
func (m *Mesh) FetchBlob(ctx context.Context, p peer.ID, hash string, maxBytes int64) ([]byte, error) {
	release, err := m.fetches.acquire(ctx, p)
	if err != nil {
		m.met.blobs.WithLabelValues("fetched", "error").Inc()
		return nil, fmt.Errorf("fetch blob %.12s from %s: waiting for a stream: %w", hash, p, err)
	}
	defer release()
	data, err := m.fetchBlob(ctx, p, hash, maxBytes)
	outcome := "ok"
	switch {
	case errors.Is(err, ErrBlobNotFound):
		outcome = "not_found"
	case errors.Is(err, ErrBlobHashMismatch):
		outcome = "hash_mismatch"
	case errors.Is(err, ErrBlobTooLarge):
		outcome = "too_large"
	case err != nil:
		outcome = "error"
	}
	m.met.blobs.WithLabelValues("fetched", outcome).Inc()
	return data, err
}

// fetchSlots bounds the concurrent blob fetches per peer.
type fetchSlots struct {
	mu    sync.Mutex
	slots map[peer.ID]*fetchSlot
}

type fetchSlot struct {
	ch    chan struct{}
	users int // holders and waiters; the slot is dropped at zero
}

func (f *fetchSlots) acquire(ctx context.Context, p peer.ID) (release func(), err error) {
	f.mu.Lock()
	if f.slots == nil {
		f.slots = make(map[peer.ID]*fetchSlot)
	}
	s := f.slots[p]
	if s == nil {
		s = &fetchSlot{ch: make(chan struct{}, blobPeerFetches)}
		f.slots[p] = s
	}
	s.users++
	f.mu.Unlock()
	done := func() {
		f.mu.Lock()
		if s.users--; s.users == 0 {
			delete(f.slots, p)
		}
		f.mu.Unlock()
	}
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

// blobStreamContext returns the context to open a blob stream to p with.
// Blobs go over a direct connection: when p is reached only through a
// relay, the fetch first dials p's direct addresses and waits up to
// BlobDirectWait for one to come up (hole punching works meanwhile), and
// only then allows the relayed connection, which the relay bounds (a
// limited connection in libp2p's terms).
func (m *Mesh) blobStreamContext(ctx context.Context, p peer.ID) context.Context {
	if m.directConn(p) {
		return ctx
	}
	if m.h.Network().Connectedness(p) == network.NotConnected {
		// Dial as libp2p ranks addresses: a direct one if any answers,
		// else a relay. What came up is looked at below.
		cctx, cancel := context.WithTimeout(ctx, m.cfg.BlobDirectWait+5*time.Second)
		m.findAddrs(cctx, p)
		err := m.h.Connect(cctx, peer.AddrInfo{ID: p})
		cancel()
		if err != nil || m.directConn(p) {
			return ctx
		}
	}
	var dialing sync.WaitGroup
	defer dialing.Wait()
	wait, cancel := context.WithTimeout(ctx, m.cfg.BlobDirectWait)
	defer cancel() // before dialing.Wait: ends the dial
	dialing.Add(1)
	go func() {
		defer dialing.Done()
		// A direct dial even though a relayed connection exists.
		_ = m.h.Connect(network.WithForceDirectDial(wait, "blob"), peer.AddrInfo{ID: p})
	}()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !m.directConn(p) {
		select {
		case <-wait.Done():
			m.log.Debug("blob fetched through a relay: no direct connection came up", "peer", p, "waited", m.cfg.BlobDirectWait)
			return network.WithAllowLimitedConn(ctx, "blob: no direct path")
		case <-t.C:
		}
	}
	return ctx
}

func (m *Mesh) fetchBlob(ctx context.Context, p peer.ID, hash string, maxBytes int64) ([]byte, error) {
	if !validHash(hash) {
		return nil, fmt.Errorf("fetch blob: hash %q is not a lower-case hex SHA-256", hash)
	}
	if maxBytes <= 0 || maxBytes > m.cfg.MaxBlobBytes {
		maxBytes = m.cfg.MaxBlobBytes
	}
	s, done, err := m.requestKeyed(m.blobStreamContext(ctx, p), p, m.blobProtocol(), hash, blobTimeout)
	if err != nil {
		return nil, fmt.Errorf("fetch blob %.12s from %s: %w", hash, p, err)
	}
	defer done()
	var status [1]byte
	if _, err := io.ReadFull(s, status[:]); err != nil {
		return nil, fmt.Errorf("fetch blob %.12s from %s: %w", hash, p, err)
	}
	switch status[0] {
	case blobStatusOK:
	case blobStatusNotFound:
		return nil, fmt.Errorf("fetch blob %.12s from %s: %w", hash, p, ErrBlobNotFound)
	case blobStatusTooLarge:
		return nil, fmt.Errorf("fetch blob %.12s from %s: %w (peer's limit)", hash, p, ErrBlobTooLarge)
	case blobStatusBusy:
		return nil, fmt.Errorf("fetch blob %.12s from %s: %w", hash, p, ErrBlobBusy)
	default:
		return nil, fmt.Errorf("fetch blob %.12s from %s: peer answered status %d", hash, p, status[0])
	}
	var lenb [8]byte
	if _, err := io.ReadFull(s, lenb[:]); err != nil {
		return nil, fmt.Errorf("fetch blob %.12s from %s: %w", hash, p, err)
	}
	n := binary.BigEndian.Uint64(lenb[:])
	if n > uint64(maxBytes) {
		_ = s.Reset()
		return nil, fmt.Errorf("fetch blob %.12s from %s: %w: %d bytes, limit %d", hash, p, ErrBlobTooLarge, n, maxBytes)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(s, data); err != nil {
		return nil, fmt.Errorf("fetch blob %.12s from %s: %w", hash, p, err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != hash {
		return nil, fmt.Errorf("fetch blob %.12s from %s: %w", hash, p, ErrBlobHashMismatch)
	}
	return data, nil
}
