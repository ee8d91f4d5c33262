package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"github.com/proofmesh/proofmesh/protocol"
)

// The probe protocol is SWIM's indirect probe (ping-req): a node whose
// ping of p timed out over a live connection asks a few of its other
// peers to probe p too. If one of them reaches p, the timeout says
// something about this node or its path to p, not about p, and is no
// evidence (protocol.Detector.ProbeTimedOut). Without it, the pings that a
// busy machine answers late had each become a strike, two strikes a false
// claim, and every false claim a network-wide claim and refutation.
//
// The request is the target's peer id in its binary form, after one byte
// giving its length (1 to maxPeerIDBytes); the answer is one status byte.
// A helper serves only peers it lists about peers it lists, at
// vouchRate per requester and vouchServers at once, and pings the target
// only over a connection it already holds: it never dials for others. A
// first version dialed, and on 1,000 simulated nodes the dials (each a
// full connection set-up: identify, gossip subscriptions) loaded the
// machine until more pings timed out, which asked for more dials.
const (
	vouchReached    = 0 // the helper's ping of the target was answered
	vouchNotReached = 1 // it was not (no answer in time, the stream failed)
	vouchNoConn     = 2 // the helper holds no connection to the target
	vouchRefused    = 5 // requester or target not listed here, or over its rate
	// statusBadRequest (3) and statusBusy (4) as the blob protocol's.

	// maxPeerIDBytes bounds a peer id in a request: an identity
	// multihash of an Ed25519 key is 38 bytes, a SHA-256 one 34.
	maxPeerIDBytes = 64

	// vouchHelpers is how many peers an indirect probe asks (SWIM's k).
	vouchHelpers = 3
	// vouchServers bounds the indirect probes a node runs for others at
	// once; vouchRate and vouchBurst those one requester may ask for.
	vouchServers = 8
	vouchRate    = 2
	vouchBurst   = 6
	// vouchRequestTimeout bounds the reading of a request.
	vouchRequestTimeout = time.Second
)

// ErrBadProbeRequest is a probe request that is not a length byte and a
// peer id of that length.
var ErrBadProbeRequest = errors.New("bad probe request")

func probeProtocolID(networkID string) libp2pproto.ID {
	return libp2pproto.ID("/proofmesh/" + networkID + "/probe/" + strconv.Itoa(protocol.ProtocolMajor))
}

func (m *Mesh) probeProtocol() libp2pproto.ID { return probeProtocolID(m.cfg.NetworkID) }

// EncodeProbeRequest is the request naming target.
func EncodeProbeRequest(target peer.ID) ([]byte, error) {
	id := []byte(target)
	if len(id) == 0 || len(id) > maxPeerIDBytes {
		return nil, fmt.Errorf("%w: peer id of %d bytes, want 1 to %d", ErrBadProbeRequest, len(id), maxPeerIDBytes)
	}
	return append([]byte{byte(len(id))}, id...), nil
}

// DecodeProbeRequest reads a request from outside bytes: the length byte,
// then a peer id of that length that parses as one.
func DecodeProbeRequest(r io.Reader) (peer.ID, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", fmt.Errorf("%w: length: %w", ErrBadProbeRequest, err)
	}
	if n[0] == 0 || n[0] > maxPeerIDBytes {
		return "", fmt.Errorf("%w: peer id of %d bytes, want 1 to %d", ErrBadProbeRequest, n[0], maxPeerIDBytes)
	}
	buf := make([]byte, n[0])
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", fmt.Errorf("%w: peer id: %w", ErrBadProbeRequest, err)
	}
	id, err := peer.IDFromBytes(buf)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadProbeRequest, err)
	}
	return id, nil
}

// serveProbe probes a peer for a peer that asks and answers whether it
// was reached. The request is read, and the requester and target
// checked, before a slot is taken: peers nobody lists, sending a length
// byte and stalling, had held every slot.
func (m *Mesh) serveProbe(s network.Stream) {
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(vouchRequestTimeout))
	target, err := DecodeProbeRequest(io.LimitReader(s, 1+maxPeerIDBytes))
	if err != nil {
		_, _ = s.Write([]byte{statusBadRequest})
		m.met.liveness.WithLabelValues("indirect_bad_request").Inc()
		return
	}
	from := s.Conn().RemotePeer()
	if target == from || target == m.h.ID() || !m.tracked(from) || !m.tracked(target) || !m.vouchRates.Allow(string(from), time.Now()) {
		_, _ = s.Write([]byte{vouchRefused})
		m.met.liveness.WithLabelValues("indirect_refused").Inc()
		return
	}
	select {
	case m.vouchSem <- struct{}{}:
	default:
		_, _ = s.Write([]byte{statusBusy})
		m.met.liveness.WithLabelValues("indirect_busy").Inc()
		return
	}
	defer func() { <-m.vouchSem }()
	m.live.mu.Lock()
	timeout := m.live.det.Scale(m.cfg.ProbeTimeout)
	m.live.mu.Unlock()
	_ = s.SetDeadline(time.Now().Add(timeout + 2*time.Second))
	status := byte(vouchReached)
	switch err := m.probe(target, false, timeout); {
	case errors.Is(err, errNoConnection):
		status = vouchNoConn
	case err != nil:
		status = vouchNotReached
	}
	m.met.liveness.WithLabelValues("indirect_served").Inc()
	_, _ = s.Write([]byte{status})
}

// vouched asks up to vouchHelpers random connected peers listed online,
// other than p, to probe p, and reports whether one reached it within
// twice timeout (the helper's own probe, and the round trips). The caller
// passes the unscaled ProbeTimeout: a probe worker waits at most that
// long here, whatever its local health score.
func (m *Mesh) vouched(p peer.ID, timeout time.Duration) bool {
	helpers := m.vouchHelpersFor(p)
	if len(helpers) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(m.ctx, 2*timeout) // mocknet streams ignore deadlines
	defer cancel()
	reached := make(chan bool, len(helpers))
	for _, h := range helpers {
		go func() { reached <- m.askProbe(ctx, h, p, 2*timeout) == nil }()
	}
	for range helpers {
		if <-reached {
			return true
		}
	}
	return false
}

// errNotReached: the helper's probe did not reach the target.
var errNotReached = errors.New("helper did not reach the peer")

// askProbe asks helper to probe target, over a connection already open to
// the helper, and waits at most wait for its answer.
func (m *Mesh) askProbe(ctx context.Context, helper, target peer.ID, wait time.Duration) error {
	req, err := EncodeProbeRequest(target)
	if err != nil {
		return err
	}
	ctx = network.WithNoDial(network.WithAllowLimitedConn(ctx, "probe"), "indirect probe")
	s, done, err := m.request(ctx, helper, m.probeProtocol(), req, wait)
	if err != nil {
		return fmt.Errorf("ask %s: %w", helper, err)
	}
	defer done()
	var st [1]byte
	if _, err := io.ReadFull(s, st[:]); err != nil {
		return fmt.Errorf("ask %s: answer: %w", helper, err)
	}
	if st[0] != vouchReached {
		return fmt.Errorf("ask %s: %w (status %d)", helper, errNotReached, st[0])
	}
	return nil
}

// vouchHelpersFor picks up to vouchHelpers distinct connected peers listed
// online, other than p.
func (m *Mesh) vouchHelpersFor(p peer.ID) []peer.ID {
	conns := m.h.Network().Peers()
	rand.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	var out []peer.ID
	now := time.Now()
	for _, c := range conns {
		if len(out) == vouchHelpers {
			break
		}
		if c == p {
			continue
		}
		if info, ok := m.table.get(c, now); ok && info.Status == protocol.StatusOnline {
			out = append(out, c)
		}
	}
	return out
}
