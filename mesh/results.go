package mesh

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"github.com/proofmesh/proofmesh/protocol"
)

// The results protocol hands a node the signed results a peer holds for a
// task, so that a result gossip lost (a validator throttled by a flood, a
// message published before the mesh formed) is recovered before anybody
// acts on its absence. The request is the task id (lower-case hex, 64
// characters) and a newline, as the blob protocol's; the answer is one
// status byte and, for resultsStatusOK, a count byte and that many
// envelopes, each a 4-byte big-endian length and its bytes. The fetcher
// opens and checks each envelope as if it came by gossip: a peer can
// withhold a result but never forge one.
const (
	resultsStatusOK       = 0
	resultsStatusNotFound = 1
	resultsStatusBusy     = statusBusy

	// MaxSyncResults bounds the envelopes of one answer: a task collects
	// at most its candidates' results (and an equivocator's second).
	MaxSyncResults = 16
	// MaxSyncEnvelope bounds one envelope: a result's own limit.
	MaxSyncEnvelope = protocol.MaxResultBytes
	// MaxSyncBytes bounds one answer's envelopes together.
	MaxSyncBytes = 4 << 20

	resultsTimeout = 10 * time.Second

	// resultsServers bounds the results requests served at once (apart
	// from blob requests, so that neither starves the other); the
	// resource manager bounds those of one peer to blobPeerStreams.
	resultsServers = 16
)

// ErrResultsNotFound is a peer that holds no result of the task.
var ErrResultsNotFound = errors.New("peer holds no result of the task")

func resultsProtocolID(networkID string) libp2pproto.ID {
	return libp2pproto.ID("/proofmesh/" + networkID + "/results/" + strconv.Itoa(protocol.ProtocolMajor))
}

func (m *Mesh) resultsProtocol() libp2pproto.ID { return resultsProtocolID(m.cfg.NetworkID) }

// serveResults answers one results request from what cfg.Results holds,
// within MaxSyncResults and MaxSyncBytes, at most resultsServers at once.
func (m *Mesh) serveResults(s network.Stream) {
	defer s.Close()
	id, release, ok := m.acceptKeyed(s, m.resultsSem, "results_served", resultsTimeout)
	if !ok {
		return
	}
	defer release()
	var envs [][]byte
	if m.cfg.Results != nil {
		envs = m.cfg.Results(id)
	}
	if len(envs) == 0 {
		_, _ = s.Write([]byte{resultsStatusNotFound})
		m.met.blobs.WithLabelValues("results_served", "not_found").Inc()
		return
	}
	if _, err := s.Write(EncodeResults(envs)); err != nil {
		_ = s.Reset()
		m.met.blobs.WithLabelValues("results_served", "error").Inc()
		return
	}
	m.met.blobs.WithLabelValues("results_served", "ok").Inc()
}

// EncodeResults is an OK answer of the results protocol: the status byte,
// the count and the envelopes, leaving out what exceeds MaxSyncEnvelope,
// MaxSyncResults or MaxSyncBytes.
func EncodeResults(envs [][]byte) []byte {
	var buf bytes.Buffer
	buf.WriteByte(resultsStatusOK)
	buf.WriteByte(0) // the count, set below
	n, total := 0, 0
	for _, e := range envs {
		if n == MaxSyncResults || len(e) == 0 || len(e) > MaxSyncEnvelope || total+len(e) > MaxSyncBytes {
			continue
		}
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(e)))
		buf.Write(l[:])
		buf.Write(e)
		n, total = n+1, total+len(e)
	}
	out := buf.Bytes()
	out[1] = byte(n)
	return out
}

// DecodeResults reads an answer of the results protocol: the status byte,
// then for OK the envelopes, refusing more than MaxSyncResults, an
// envelope empty or over MaxSyncEnvelope, more than MaxSyncBytes in all,
// and bytes after the last envelope.
func DecodeResults(r io.Reader) ([][]byte, error) {
	var hdr [1]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	switch hdr[0] {
	case resultsStatusOK:
	case resultsStatusNotFound:
		return nil, ErrResultsNotFound
	case resultsStatusBusy:
		return nil, ErrBlobBusy
	default:
		return nil, fmt.Errorf("peer answered status %d", hdr[0])
	}
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("count: %w", err)
	}
	count := int(hdr[0])
	if count == 0 || count > MaxSyncResults {
		return nil, fmt.Errorf("%d results in an answer, want 1 to %d", count, MaxSyncResults)
	}
	envs := make([][]byte, 0, count)
	total := 0
	for i := range count {
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, fmt.Errorf("result %d: length: %w", i, err)
		}
		n := int(binary.BigEndian.Uint32(l[:]))
		if n == 0 || n > MaxSyncEnvelope || total+n > MaxSyncBytes {
			return nil, fmt.Errorf("result %d: %d bytes (at most %d, %d in all)", i, n, MaxSyncEnvelope, MaxSyncBytes)
		}
		total += n
		e := make([]byte, n)
		if _, err := io.ReadFull(r, e); err != nil {
			return nil, fmt.Errorf("result %d: %w", i, err)
		}
		envs = append(envs, e)
	}
	var extra [1]byte
	if n, _ := r.Read(extra[:]); n > 0 {
		return nil, fmt.Errorf("bytes after the %d results", count)
	}
	return envs, nil
}

// Denied reports whether the operator shut peer p out (--deny-peer):
// nothing it signed is taken, however it arrives.
func (m *Mesh) Denied(p peer.ID) bool { return m.deny[p] }

// FetchResults asks peer p for the signed results it holds of task id.
// The envelopes are not opened here: the caller checks each as a result
// that came by gossip. A relayed connection is good enough (results are
// small).
func (m *Mesh) FetchResults(ctx context.Context, p peer.ID, id string) ([][]byte, error) {
	if !validHash(id) {
		return nil, fmt.Errorf("fetch results: task id %q is not 64 lower-case hex", id)
	}
	release, err := m.fetches.acquire(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("fetch results of %.12s from %s: waiting for a stream: %w", id, p, err)
	}
	defer release()
	envs, err := m.fetchResults(ctx, p, id)
	outcome := "ok"
	switch {
	case errors.Is(err, ErrResultsNotFound):
		outcome = "not_found"
	case err != nil:
		outcome = "error"
	}
	m.met.blobs.WithLabelValues("results_fetched", outcome).Inc()
	if err != nil {
		return nil, fmt.Errorf("fetch results of %.12s from %s: %w", id, p, err)
	}
	return envs, nil
}

func (m *Mesh) fetchResults(ctx context.Context, p peer.ID, id string) ([][]byte, error) {
	s, done, err := m.requestKeyed(network.WithAllowLimitedConn(ctx, "results"), p, m.resultsProtocol(), id, resultsTimeout)
	if err != nil {
		return nil, err
	}
	defer done()
	envs, err := DecodeResults(io.LimitReader(s, 2+MaxSyncResults*4+MaxSyncBytes+1))
	if err != nil {
		_ = s.Reset()
	}
	return envs, err
}
