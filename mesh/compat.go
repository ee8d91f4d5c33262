package mesh

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"

	"github.com/proofmesh/proofmesh/protocol"
)

// Bounds of what the mesh remembers about peers' protocols and clocks.
const (
	maxProtoRows = 1024 // peers whose identify protocol list is kept
	maxWarned    = 4096 // peers already warned about (then forgotten all at once)
	// incompatibleMemory is how long an incompatible peer that is no
	// longer connected still counts as met.
	incompatibleMemory = 2 * time.Minute
	maxClockVoters     = 64
	clockSampleMaxAge  = 5 * time.Minute
)

// compatState is what the mesh learnt from identify (which networks and
// protocol majors each peer serves) and from heartbeat times (how far our
// clock is from our peers').
type compatState struct {
	mu     sync.Mutex
	peers  map[peer.ID]peerProto
	warned map[peer.ID]bool
	// warnRate bounds the warn-level lines about incompatible peers: each
	// peer is warned about once, and a flood of made-up identities falls
	// back to debug level.
	warnRate *protocol.Limiter
	clock    *protocol.ClockOffsets
}

type peerProto struct {
	pp       protocol.PeerProtocols
	release  string // from identify's agent version, "" if not a proofmesh one
	kind     protocol.Compatibility
	seen     time.Time
	outbound bool // we dialed it (it is part of our own join)
}

func newCompatState() *compatState {
	return &compatState{
		peers: map[peer.ID]peerProto{}, warned: map[peer.ID]bool{},
		warnRate: protocol.NewLimiter(10.0/60, 10), // 10 warnings a minute after a burst of 10
		clock:    protocol.NewClockOffsets(maxClockVoters, clockSampleMaxAge),
	}
}

// IncompatiblePeer is a peer that speaks proofmesh, but not our network at
// our protocol major.
type IncompatiblePeer struct {
	ID        peer.ID
	Kind      protocol.Compatibility // OtherMajor or OtherNetwork
	Protocols protocol.PeerProtocols
	Seen      time.Time // last identified
	Release   string    // the release it runs, from identify ("" unknown)
	Connected bool
	// Outbound: this node dialed the peer (a bootstrap or discovered
	// peer of its own join), not the other way round.
	Outbound bool
}

// Describe says in words what the peer speaks and what we speak.
func (p IncompatiblePeer) Describe(ourNet string) string {
	if p.Kind == protocol.OtherMajor {
		return fmt.Sprintf("peer %s runs proofmesh protocol %s and we run v%d", p.ID, majors(p.Protocols.Majors[ourNet]), protocol.ProtocolMajor)
	}
	return fmt.Sprintf("peer %s is on proofmesh network %s and this node on %s", p.ID, strings.Join(p.Protocols.Networks(), ", "), ourNet)
}

func majors(ms []int) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("v%d", m)
	}
	return strings.Join(parts, ",")
}

// watchIdentify reads identify's results and protocol updates from the
// host's event bus.
func (m *Mesh) watchIdentify() error {
	types := []any{new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerProtocolsUpdated)}
	return m.follow("proofmesh identify", types, func(ev any) {
		switch e := ev.(type) {
		case event.EvtPeerIdentificationCompleted:
			ids := make([]string, len(e.Protocols))
			for i, p := range e.Protocols {
				ids[i] = string(p)
			}
			outbound := e.Conn != nil && e.Conn.Stat().Direction == network.DirOutbound
			m.observeProtocols(e.Peer, ids, outbound, releaseOf(e.AgentVersion), time.Now())
		case event.EvtPeerProtocolsUpdated:
			ps, err := m.h.Peerstore().GetProtocols(e.Peer)
			if err != nil {
				return
			}
			ids := make([]string, len(ps))
			for i, p := range ps {
				ids[i] = string(p)
			}
			m.observeProtocols(e.Peer, ids, false, "", time.Now())
		}
	})
}

// follow subscribes to events of the given type(s) (one or a slice, as
// the event bus takes them) on the host's event bus and hands each to
// handle on a goroutine of the mesh's, until the mesh stops.
func (m *Mesh) follow(name string, types any, handle func(ev any)) error {
	sub, err := m.h.EventBus().Subscribe(types, eventbus.Name(name))
	if err != nil {
		return err
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-m.ctx.Done():
				return
			case ev, ok := <-sub.Out():
				if !ok {
					return
				}
				handle(ev)
			}
		}
	}()
	return nil
}

// observeProtocols records which networks and majors a peer serves and
// warns, once per peer, about one that speaks proofmesh but not our
// network at our major: nodes of other majors or networks do not mix
// (their topics and protocols differ), and the operator should know why.
func (m *Mesh) observeProtocols(p peer.ID, ids []string, outbound bool, release string, now time.Time) {
	if p == m.h.ID() {
		return
	}
	pp := protocol.ParseProtocols(ids)
	kind := pp.Classify(m.cfg.NetworkID, protocol.ProtocolMajor)
	c := m.compat
	c.mu.Lock()
	if kind == protocol.NotProofmesh {
		delete(c.peers, p)
		c.mu.Unlock()
		return
	}
	prev, ok := c.peers[p]
	if !ok && len(c.peers) >= maxProtoRows {
		m.evictProtoLocked()
	}
	if release == "" {
		release = prev.release
	}
	c.peers[p] = peerProto{pp: pp, kind: kind, seen: now, outbound: outbound || prev.outbound, release: release}
	first := false
	if kind != protocol.Compatible && !c.warned[p] {
		if len(c.warned) >= maxWarned {
			clear(c.warned)
		}
		c.warned[p], first = true, true
	}
	c.mu.Unlock()
	if !first {
		return
	}
	ip := IncompatiblePeer{ID: p, Kind: kind, Protocols: pp, Release: release}
	var msg string
	if kind == protocol.OtherMajor {
		theirs := pp.Majors[m.cfg.NetworkID]
		fix := fmt.Sprintf("upgrade this node to a release of protocol v%d to talk to it", theirs[len(theirs)-1])
		if theirs[len(theirs)-1] < protocol.ProtocolMajor {
			fix = fmt.Sprintf("that peer must upgrade to a release of protocol v%d", protocol.ProtocolMajor)
		}
		msg = ip.Describe(m.cfg.NetworkID) + "; " + fix + " (nodes of different majors do not mix: docs/PROTOCOL.md)"
	} else {
		msg = ip.Describe(m.cfg.NetworkID) + fmt.Sprintf("; nodes of different networks never talk: join with that network's network.json (--network) or bootstrap from a node of %s", m.cfg.NetworkID)
	}
	if c.warnRate.Allow("", now) {
		m.log.Warn(msg, "peer", p, "peer_protocols", pp.Describe(), "peer_release", release, "network", m.cfg.NetworkID, "protocol", protocol.ProtocolMajor, "release", m.cfg.Version)
	} else {
		m.log.Debug(msg, "peer", p, "peer_protocols", pp.Describe())
	}
}

// evictProtoLocked drops the longest unseen row of a peer we are not
// connected to (or, failing that, the longest unseen).
func (m *Mesh) evictProtoLocked() {
	var victim peer.ID
	var at time.Time
	for id, e := range m.compat.peers {
		conn := m.h.Network().Connectedness(id) == network.Connected
		if victim == "" || (!conn && e.seen.Before(at)) {
			victim, at = id, e.seen
		}
	}
	delete(m.compat.peers, victim)
}

// PeerProtocols returns what identify said about a peer's proofmesh
// networks and majors.
func (m *Mesh) PeerProtocols(p peer.ID) (protocol.PeerProtocols, bool) {
	m.compat.mu.Lock()
	defer m.compat.mu.Unlock()
	e, ok := m.compat.peers[p]
	return e.pp, ok
}

// Incompatible lists the peers met that speak proofmesh but not our
// network at our major: connected now, or identified within the last
// incompatibleMemory. Sorted by id.
func (m *Mesh) Incompatible() []IncompatiblePeer {
	now := time.Now()
	m.compat.mu.Lock()
	var out []IncompatiblePeer
	for id, e := range m.compat.peers {
		if e.kind == protocol.Compatible {
			continue
		}
		out = append(out, IncompatiblePeer{ID: id, Kind: e.kind, Protocols: e.pp, Seen: e.seen, Outbound: e.outbound, Release: e.release})
	}
	m.compat.mu.Unlock()
	for i := range out {
		out[i].Connected = m.Connected(out[i].ID)
	}
	out = slices.DeleteFunc(out, func(p IncompatiblePeer) bool {
		return !p.Connected && now.Sub(p.Seen) > incompatibleMemory
	})
	slices.SortFunc(out, func(a, b IncompatiblePeer) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// sampleClock records how far a peer's heartbeat time is from ours, as a
// vote of the peer's network origin: only over a direct connection (a
// relayed heartbeat may come from identities one machine made up), and
// one vote per network origin (clockVoter) unless colocation is allowed
// (testnets).
func (m *Mesh) sampleClock(from peer.ID, hb *protocol.Heartbeat, now time.Time) {
	ap, ok := m.DirectAddr(from)
	if !ok {
		return
	}
	voter := clockVoter(ap)
	if m.cfg.Colocation {
		voter = from.String()
	}
	m.compat.mu.Lock()
	m.compat.clock.Add(voter, time.UnixMilli(hb.Time).Sub(now), now)
	m.compat.mu.Unlock()
}

// clockVoter is the network origin a clock vote counts for: a public
// address's prefix as replica diversity draws it (IPv4 /24, IPv6 /48),
// since one host is commonly given a whole IPv6 /64 and could vote once
// per address; a private IPv6 address by its /64, as Origin; a private
// IPv4 or loopback address by itself (hosts of one site, a testnet on one
// machine).
func clockVoter(ap netip.AddrPort) string {
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() || ip.Is4() && (ip.IsPrivate() || ip.IsLinkLocalUnicast()) {
		return ip.String()
	}
	// Private IPv6 by /64, public by prefix: the replica rule's origins
	// (one host holds a whole /64; a second review of 2026-12-07 had one
	// cast a vote per address).
	return protocol.DefaultDiversity().Origin(ap)
}

// ClockOffset estimates how far our clock is behind our peers' (negative:
// ahead): the median over distinct network origins of their heartbeat
// times minus ours, and how many origins it rests on.
func (m *Mesh) ClockOffset() (time.Duration, int) {
	m.compat.mu.Lock()
	defer m.compat.mu.Unlock()
	return m.compat.clock.Estimate(time.Now())
}

// ClockSkew is the clock skew the mesh allows.
func (m *Mesh) ClockSkew() time.Duration { return m.cfg.ClockSkew }

// withProtocols fills in each row's identified protocols.
func (m *Mesh) withProtocols(rows ...PeerInfo) []PeerInfo {
	m.compat.mu.Lock()
	defer m.compat.mu.Unlock()
	for i := range rows {
		rows[i].Protocols = m.compat.peers[rows[i].ID].pp
	}
	return rows
}

// agentPrefix starts the identify agent version of proofmesh nodes.
const agentPrefix = "proofmesh/"

// userAgent is what this node sends as identify's agent version.
func userAgent(version string) string {
	if !protocol.ValidVersion(version) {
		return "proofmesh"
	}
	return agentPrefix + version
}

// releaseOf reads a peer's release out of its agent version: only a
// proofmesh agent with a well-formed release (it is shown in logs and the
// API), else "".
func releaseOf(agent string) string {
	v, ok := strings.CutPrefix(agent, agentPrefix)
	if !ok || !protocol.ValidVersion(v) {
		return ""
	}
	return v
}
