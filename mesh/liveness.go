package mesh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-yamux/v5"
	"github.com/quic-go/quic-go"

	"github.com/proofmesh/proofmesh/protocol"
)

// Failure detection (DESIGN.md "Liveness"): the driver of
// protocol.Detector. It feeds the detector what this node sees (every
// connection to a peer closed, its probes' outcomes, suspicions gossiped by
// others, heartbeats) and carries out what the detector asks: probe a peer
// (libp2p ping, dialling first if asked), gossip a suspicion, mark a peer
// down or up in the peer table. A node that hears a suspicion of itself
// refutes it with a heartbeat at once.
//
// Costs are bounded: one random probe per ProbeInterval, probes of
// suspects through probeWorkers workers and a queue of MaxSuspects,
// suspicions gossiped at the liveness topic's rate per origin.

// probeWorkers bounds the probes running at once.
const probeWorkers = 4

// refuteGap is the least time between two refutations: however many
// claims arrive, one fresh heartbeat answers them all.
const refuteGap = 500 * time.Millisecond

type liveness struct {
	mu  sync.Mutex
	det *protocol.Detector

	// lost carries the peers whose last connection closed, from the
	// network's Disconnected notification (notifiee) to livenessLoop.
	lost     chan peer.ID
	notifiee network.Notifiee

	probes  chan *protocol.LivenessAction // by pointer: the buffer is MaxSuspects long
	pending map[peer.ID]bool              // probes queued or running, under mu
}

func newLiveness(cfg protocol.DetectorConfig) *liveness {
	return &liveness{
		det:     protocol.NewDetector(cfg),
		probes:  make(chan *protocol.LivenessAction, cfg.MaxSuspects),
		pending: map[peer.ID]bool{},
		lost:    make(chan peer.ID, lostQueue),
	}
}

// lostQueue bounds the lost connections waiting for livenessLoop; beyond
// it one is dropped and counted (its peer's other neighbours see it too).
const lostQueue = 256

// disconnected is the network's Disconnected notification: when the last
// connection to a listed peer closes, other than by a trim, it hands the
// peer to livenessLoop without blocking the swarm. A trim (this node's
// connection manager's or the peer's) is a live peer's: only counted.
func (m *Mesh) disconnected(n network.Network, c network.Conn) {
	p := c.RemotePeer()
	switch {
	case reachable(n.Connectedness(p)):
		return // another connection remains
	case closedByConnManager(c):
		m.met.liveness.WithLabelValues("trimmed").Inc()
		return
	case !m.tracked(p):
		return
	}
	select {
	case m.live.lost <- p:
	default:
		m.met.liveness.WithLabelValues("lost_dropped").Inc()
	}
}

// trimmedAll reports whether every one of conns is closed and one of them
// by a connection manager.
func trimmedAll(conns []network.Conn) bool {
	trimmed := false
	for _, c := range conns {
		if !c.IsClosed() {
			return false
		}
		trimmed = trimmed || closedByConnManager(c)
	}
	return trimmed
}

// trimError reports whether err is a stream's error on a connection a
// connection manager closed (a QUIC stream can fail with it before its
// connection reports itself closed).
func trimError(err error) bool {
	var ce *network.ConnError
	return errors.As(err, &ce) && ce.ErrorCode == network.ConnGarbageCollected
}

// closedByConnManager reports whether c was closed by a connection
// manager trimming (libp2p's ConnGarbageCollected, which the closing side
// sends the other over yamux or QUIC): the peer is alive and chose, or
// was chosen, not to keep the connection. Any other close (a reset, an
// EOF, a timeout, a shutdown) may be a death.
func closedByConnManager(c network.Conn) bool {
	var ys *yamux.Session
	if c.As(&ys) && ys.IsClosed() {
		_, err := ys.OpenStream(context.Background()) // a closed session returns why it closed, opening nothing
		var ge *yamux.GoAwayError
		return errors.As(err, &ge) && network.ConnErrorCode(ge.ErrorCode) == network.ConnGarbageCollected
	}
	var qc *quic.Conn
	if c.As(&qc) {
		var ae *quic.ApplicationError
		return errors.As(context.Cause(qc.Context()), &ae) && network.ConnErrorCode(ae.ErrorCode) == network.ConnGarbageCollected
	}
	return false
}

// startLiveness serves ping if the host does not already, joins the
// liveness topic, and starts the detector's loop and probe workers.
func (m *Mesh) startLiveness() error {
	if !servesProtocol(m.h.Mux().Protocols(), ping.ID) {
		ping.NewPingService(m.h) // mocknet hosts have none
	}
	if err := m.JoinDecoded(KindLiveness, m.validateSuspicion, nil, JoinOptions{Inline: true, PastRate: m.aboutSelf}); err != nil {
		return err
	}
	m.h.SetStreamHandler(m.probeProtocol(), m.serveProbe)
	m.live.notifiee = &network.NotifyBundle{DisconnectedF: m.disconnected}
	m.h.Network().Notify(m.live.notifiee)
	m.wg.Add(1 + probeWorkers)
	go m.livenessLoop()
	for range probeWorkers {
		go m.probeWorker()
	}
	return nil
}

// reachable: a connection to ping over, direct or through a relay (a peer
// behind a NAT may have no other).
func reachable(c network.Connectedness) bool {
	return c == network.Connected || c == network.Limited
}

func servesProtocol(ps []libp2pproto.ID, id libp2pproto.ID) bool {
	for _, p := range ps {
		if p == id {
			return true
		}
	}
	return false
}

// livenessLoop ticks the detector four times per ProbeInterval while it
// holds a suspicion or a strike, and once per ProbeInterval otherwise (an
// idle node's ticks were a third of its CPU), probes one random connected
// peer per ProbeInterval, and turns lost connections (disconnected's,
// trims left out: dialling a trimmed peer back would undo the trim) into
// the detector's evidence. A claim taken or a probe failed between two
// slow ticks is looked at within a ProbeInterval: a suspicion's expiry
// then comes well inside its least wait (MinSuspicionTimeout), and a
// strike's second probe at most a ProbeInterval after RetryAfter (a
// quarter before).
func (m *Mesh) livenessLoop() {
	defer m.wg.Done()
	quarter := m.cfg.ProbeInterval / 4
	now := time.Now()
	ticked, nextProbe := now, now.Add(m.cfg.ProbeInterval)
	pinged := now // the last random probe queued, not spared (a full queue drops it: rare, and then suspects are being pinged)
	tick := time.NewTimer(quarter)
	defer tick.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case p := <-m.live.lost:
			if reachable(m.h.Network().Connectedness(p)) {
				continue // reconnected since
			}
			m.step(func(d *protocol.Detector) []protocol.LivenessAction { return d.ConnectionLost(p, time.Now()) })
		case now := <-tick.C:
			ticked = now
			m.step(func(d *protocol.Detector) []protocol.LivenessAction { return d.Tick(now) })
			if !now.Before(nextProbe) {
				nextProbe = now.Add(m.cfg.ProbeInterval)
				m.heard.prune(now.Add(-heardTTL))
				if p, ok := m.randomProbeTarget(); ok {
					if m.spareProbe(p, now, pinged) {
						m.met.liveness.WithLabelValues("probe_spared").Inc()
					} else {
						pinged = now
						m.enqueueProbe(protocol.LivenessAction{Kind: protocol.ActProbe, Peer: p})
					}
				}
			}
		}
		next := nextProbe
		m.live.mu.Lock()
		if soon := ticked.Add(quarter); !m.live.det.Idle() && soon.Before(next) {
			next = soon
		}
		m.live.mu.Unlock()
		tick.Reset(time.Until(next)) // at once if due; Go 1.23+ timers drop a stale fire
	}
}

// tracked reports whether the peer table holds a live row for p: the
// detector looks at listed peers only.
func (m *Mesh) tracked(p peer.ID) bool {
	info, ok := m.table.get(p, time.Now())
	return ok && info.Status != protocol.StatusDeleted
}

// randomProbeTarget picks a connected peer listed online or stale.
func (m *Mesh) randomProbeTarget() (peer.ID, bool) {
	conns := m.h.Network().Peers()
	for range 3 {
		if len(conns) == 0 {
			return "", false
		}
		p := conns[rand.IntN(len(conns))]
		if info, ok := m.table.get(p, time.Now()); ok && (info.Status == protocol.StatusOnline || info.Status == protocol.StatusStale) {
			return p, true
		}
	}
	return "", false
}

// pingEvery is how many ProbeIntervals may pass without a random probe
// sent, however many are spared.
const pingEvery = 4

// spareProbe reports whether the random probe of p, due at now, can be
// left out: p handed this node a gossip RPC within the last
// ProbeInterval, over its own authenticated connection, so its process was
// running then, which is what an answered ping would show (gRPC's
// keepalive likewise pings only idle connections). At 20 nodes on one
// machine three probes in four pinged a peer heard from in the same
// second. The peer is still chosen uniformly, so a hung peer is probed
// about as often as before: its last RPC ages out of the window a
// ProbeInterval (plus pubsub's loop lag, heard.go) after it hung. Probes
// for suspicions, lost connections and contests are never spared.
//
// The random ping is also this node's test of itself (Lifeguard): a
// timeout raises the local health score, an answer lowers it, and an RPC
// handled late says nothing of how slow this node is. So nothing is
// spared while the score is above 0, nor when the last random probe queued
// (pinged) is pingEvery intervals old, nor for a peer with a timeout
// excused since it last answered (heardFrom.spares). Nor is the probe of
// a peer this node holds suspected: its answer clears the suspicion,
// where a suspicion the detector holds without probing (a claim or a
// contest soon after an answered probe) would otherwise wait for a
// refutation the suspect may never be asked for.
func (m *Mesh) spareProbe(p peer.ID, now, pinged time.Time) bool {
	if now.Sub(pinged) >= pingEvery*m.cfg.ProbeInterval {
		return false
	}
	m.live.mu.Lock()
	_, suspected := m.live.det.Suspected(p)
	healthy := m.live.det.Health() == 0
	m.live.mu.Unlock()
	return healthy && !suspected && m.heard.spares(p, now.Add(-m.cfg.ProbeInterval))
}

// step runs one detector transition under its lock and carries out the
// actions outside it.
func (m *Mesh) step(f func(*protocol.Detector) []protocol.LivenessAction) {
	m.live.mu.Lock()
	acts := f(m.live.det)
	m.live.mu.Unlock()
	m.act(acts)
}

func (m *Mesh) act(acts []protocol.LivenessAction) {
	now := time.Now()
	for _, a := range acts {
		switch a.Kind {
		case protocol.ActProbe:
			m.enqueueProbe(a)
		case protocol.ActClaim:
			if err := m.publishSuspicion(a.Peer, a.Seq); err != nil && m.ctx.Err() == nil {
				m.log.Debug("suspicion not sent", "peer", a.Peer, "err", err)
			}
		case protocol.ActDown:
			if info, before, ok := m.table.markDown(a.Peer, a.Seq, now); ok && before != protocol.StatusOffline {
				m.met.liveness.WithLabelValues("down").Inc()
				m.log.Info("peer down", "peer", a.Peer, "reason", "suspicion not refuted")
				m.notify(info)
			}
		case protocol.ActUp:
			if info, ok := m.table.markUp(a.Peer, now); ok {
				m.met.liveness.WithLabelValues("up").Inc()
				m.log.Info("peer up", "peer", a.Peer, "reason", "probe answered")
				m.notify(info)
			}
		}
	}
}

// enqueueProbe queues a probe unless one of the same peer is queued or
// running; a full queue drops it (the suspicion then runs its course).
func (m *Mesh) enqueueProbe(a protocol.LivenessAction) {
	m.live.mu.Lock()
	defer m.live.mu.Unlock()
	if m.live.pending[a.Peer] {
		return
	}
	select {
	case m.live.probes <- &a:
		m.live.pending[a.Peer] = true
	default:
	}
}

func (m *Mesh) probeWorker() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case a := <-m.live.probes:
			m.live.mu.Lock()
			timeout := m.live.det.Scale(m.cfg.ProbeTimeout)
			m.live.mu.Unlock()
			started := time.Now()
			err := m.probe(a.Peer, a.Dial, timeout)
			if err != nil {
				m.log.Debug("probe failed", "peer", a.Peer, "err", err)
			}
			m.met.liveness.WithLabelValues(map[bool]string{true: "probe_ok", false: "probe_failed"}[err == nil]).Inc()
			// Over a live connection, no answer in time: the peer or we
			// are slow, or the path is. If the peer's gossip kept
			// arriving meanwhile, it was running: the timeout was the
			// path's (a busy link queues the ping behind gossip), a
			// few times in a row (heard.go). Else others try it, and if
			// one reaches it, the timeout was ours.
			vouched := false
			if err == nil {
				m.heard.answered(a.Peer)
			}
			if errors.Is(err, errPingTimeout) {
				switch {
				case m.heard.excuse(a.Peer, started):
					vouched = true
					m.met.liveness.WithLabelValues("heard").Inc()
				case m.vouched(a.Peer, m.cfg.ProbeTimeout):
					vouched = true
					m.met.liveness.WithLabelValues("vouched").Inc()
				}
			}
			seq := m.table.lastSeq(a.Peer)
			m.live.mu.Lock()
			delete(m.live.pending, a.Peer)
			var acts []protocol.LivenessAction
			switch {
			case errors.Is(err, errNoConnection):
				// A probe that may not dial and found the connection
				// gone tried nothing: no evidence (a trimmed connection
				// is not a death; its loss is the detector's
				// ConnectionLost, which dials). Reported, it would
				// confirm a liar's claim queued before the trim.
			case errors.Is(err, errPingTimeout):
				acts = m.live.det.ProbeTimedOut(a.Peer, seq, vouched, time.Now())
			default:
				acts = m.live.det.ProbeResult(a.Peer, err == nil, seq, time.Now())
			}
			m.met.localHealth.Set(float64(m.live.det.Health()))
			m.live.mu.Unlock()
			if m.ctx.Err() == nil {
				m.act(acts)
			}
		}
	}
}

// errNoConnection: a probe that may not dial found no connection.
var errNoConnection = errors.New("no connection")

// errPingTimeout: a ping over a connection that was already open got no
// answer within the probe's timeout (not a failed dial, not our own stop).
var errPingTimeout = errors.New("ping timed out")

// probe pings p once within ProbeTimeout, dialling first if dial is set
// and no connection is open.
func (m *Mesh) probe(p peer.ID, dial bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(m.ctx, timeout)
	defer cancel()
	dialed := false
	if !reachable(m.h.Network().Connectedness(p)) {
		if !dial {
			return errNoConnection
		}
		m.findAddrs(ctx, p)
		if err := m.h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
			return fmt.Errorf("probe %s: dial: %w", p, err)
		}
		dialed = true
	}
	conns := m.h.Network().ConnsToPeer(p)
	select {
	case res := <-ping.Ping(ctx, m.h, p):
		if res.Error != nil {
			if trimmedAll(conns) || trimError(res.Error) {
				// Cut by a trim mid-ping: as if no connection had been
				// open, no evidence (it would confirm a liar's claim).
				return fmt.Errorf("probe %s: %w (trimmed during the ping)", p, errNoConnection)
			}
			if !dialed && m.ctx.Err() == nil && ctx.Err() != nil {
				return fmt.Errorf("probe %s: ping: %w (%w)", p, errPingTimeout, res.Error)
			}
			return fmt.Errorf("probe %s: ping: %w", p, res.Error)
		}
		return nil
	case <-ctx.Done():
		if trimmedAll(conns) {
			return fmt.Errorf("probe %s: %w (trimmed during the ping)", p, errNoConnection)
		}
		if !dialed && m.ctx.Err() == nil {
			return fmt.Errorf("probe %s: %w after %s", p, errPingTimeout, timeout)
		}
		return fmt.Errorf("probe %s: %w", p, ctx.Err())
	}
}

func (m *Mesh) publishSuspicion(p peer.ID, seq uint64) error {
	data, err := (&protocol.Suspicion{Suspect: p.String(), Seq: seq, Time: time.Now().UnixMilli()}).Encode()
	if err != nil {
		return err
	}
	m.met.liveness.WithLabelValues("claimed").Inc()
	m.log.Debug("peer suspected", "peer", p, "reason", "own probe failed")
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.ProbeTimeout)
	defer cancel()
	return m.Publish(ctx, KindLiveness, data)
}

// aboutSelf reports whether data is a well-formed suspicion of this node:
// such a claim passes the per-origin rate limit (JoinOptions.PastRate),
// since a liar could spend its own bucket at the suspect first, and the
// suspect would then drop the one claim it must refute. It is not
// forwarded, and refutations are bounded by refuteGap.
func (m *Mesh) aboutSelf(data []byte) bool {
	_, suspect, err := protocol.DecodeSuspicion(data)
	return err == nil && suspect == m.h.ID()
}

// validateSuspicion judges a suspicion gossiped by from and, if it is new,
// hands it to the detector. Claims already refuted (a heartbeat of the
// suspect above their seq is here), about peers not listed live, from
// unlisted claimants, and those that add nothing to a suspicion held here
// (Detector.Claim's ErrDuplicate: no new claimant within the bound, no
// higher seq; one this node forwarded already covers it) are IGNOREd (not
// forwarded); every other claim is forwarded, so that it reaches the
// suspect; a claim about this node is answered with a refutation (and not
// forwarded).
func (m *Mesh) validateSuspicion(_ context.Context, from peer.ID, data []byte) (any, error) {
	if from == m.h.ID() {
		return nil, nil
	}
	s, suspect, err := protocol.DecodeSuspicion(data)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if suspect == m.h.ID() {
		// Answered whatever its age (CheckSuspicionOfSelf), and not
		// forwarded: the others have it from the claimant's side, and
		// claims about us pass the per-origin rate limit (the validator),
		// which must not make us a liar's relay.
		if err := protocol.CheckSuspicionOfSelf(s, suspect, from, now, m.cfg.ClockSkew); err != nil {
			return nil, err
		}
		m.refute(s.Seq)
		return nil, fmt.Errorf("%w: suspicion of this node, refuted", protocol.ErrDuplicate)
	}
	if err := protocol.CheckSuspicion(s, suspect, from, now, m.cfg.ClockSkew); err != nil {
		return nil, err
	}
	if !m.tracked(from) {
		return nil, fmt.Errorf("%w: suspicion from unlisted claimant %s", protocol.ErrNotYet, from)
	}
	info, ok := m.table.get(suspect, now)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: suspicion of unlisted peer %s", protocol.ErrNotYet, suspect)
	case info.Status == protocol.StatusOffline:
		// Remembered: a late heartbeat at or below its seq that lists
		// the suspect online again leaves it suspected at that seq
		// (Detector.Contested).
		m.table.claimDropped(suspect, s.Seq, now)
		return nil, fmt.Errorf("%w: suspicion of peer %s already %s", protocol.ErrStale, suspect, info.Status)
	case info.Status == protocol.StatusDeleted:
		return nil, fmt.Errorf("%w: suspicion of peer %s already %s", protocol.ErrStale, suspect, info.Status)
	}
	m.live.mu.Lock()
	var refuted uint64
	if info.Heartbeat != nil {
		refuted = info.Heartbeat.Refutes
	}
	acts, err := m.live.det.Claim(suspect, from, s, info.Seq, refuted, reachable(m.h.Network().Connectedness(suspect)), now)
	m.live.mu.Unlock()
	switch {
	case errors.Is(err, protocol.ErrStale):
		return nil, err // refuted already: the suspect need not hear it
	case errors.Is(err, protocol.ErrDuplicate):
		// A claim this node forwarded covers it: the suspect hears that
		// one, and its refutation refutes both.
		m.met.liveness.WithLabelValues("claim_not_taken").Inc()
		return nil, err
	case err != nil:
		// Not taken here (no room for another suspicion), but
		// forwarded: the suspect must hear every claim not yet refuted,
		// and the peers that forward to it may be exactly those that
		// know it alive.
		m.met.liveness.WithLabelValues("claim_not_taken").Inc()
		return s, nil
	}
	m.met.liveness.WithLabelValues("claim_taken").Inc()
	m.act(acts)
	return s, nil
}

// heartbeatSeen tells the detector of an accepted heartbeat: a suspect's
// refutation if its seq is above the suspicion's.
func (m *Mesh) heartbeatSeen(p peer.ID, seq uint64) {
	m.live.mu.Lock()
	m.live.det.Heartbeat(p, seq)
	m.live.mu.Unlock()
}

// refute raises this node's sequence number above a suspicion's, names the
// suspicion's seq in its heartbeats' Refutes, and asks the heartbeat loop
// for a heartbeat now.
func (m *Mesh) refute(seq uint64) {
	m.mu.Lock()
	m.seq = max(m.seq, seq)
	m.refutes = max(m.refutes, seq)
	m.mu.Unlock()
	m.met.liveness.WithLabelValues("refuted").Inc()
	select {
	case m.refuteNow <- struct{}{}:
	default:
	}
}
