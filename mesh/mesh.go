package mesh

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/proofmesh/proofmesh/protocol"
)

// ErrClosed is returned by operations on a closed Mesh.
var ErrClosed = errors.New("mesh closed")

// Validator judges a gossip message before it is delivered or forwarded.
// from is the message's signed origin. Errors map to verdicts in one place
// (verdict): protocol.Ignorable errors IGNORE, every other error REJECTs.
type Validator func(ctx context.Context, from peer.ID, data []byte) error

// Decoder is a Validator that also returns the decoded message, which the
// topic's handler gets as Message.Value: a message is decoded and its
// signatures checked once.
type Decoder func(ctx context.Context, from peer.ID, data []byte) (any, error)

// Message is a validated gossip message handed to a topic's handler.
type Message struct {
	From  peer.ID // signed origin
	Data  []byte
	Local bool // published by this node
	Value any  // what the topic's Decoder returned, if it has one
}

// JoinOptions tune a topic's validation.
type JoinOptions struct {
	// Concurrency bounds the validators running at once for the topic
	// (expensive checks such as proof verification). 0: pubsub's default.
	Concurrency int
	// Timeout bounds one validation. 0: no timeout.
	Timeout time.Duration
	// Inline runs the validator on gossipsub's validation worker itself
	// instead of a goroutine of its own per message: for checks that are
	// cheap and never block (no I/O, no waiting on another message).
	// Concurrency and Timeout do not apply to an inline validator.
	Inline bool
	// PastRate picks out messages the validator judges although their
	// origin is over its topic rate (they still count as its flood): the
	// liveness topic's claims that this node is dead, which a liar could
	// otherwise have it drop by spending its own bucket first.
	PastRate func(data []byte) bool
}

// Mesh is a running libp2p node of one proofmesh network.
type Mesh struct {
	cfg     Config
	log     *slog.Logger
	h       host.Host
	ownHost bool
	ps      *pubsub.PubSub
	kad     *dht.IpfsDHT
	table   *table
	met     *metrics

	mu      sync.Mutex
	topics  map[string]*pubsub.Topic
	seq     uint64
	refutes uint64 // the highest suspicion seq answered (Heartbeat.Refutes)

	interval atomic.Int64 // current own heartbeat interval, ns
	// events queues OnPeer's calls. By pointer: a buffer of 256 rows
	// held 74 KB per node whether or not an event ever came, and the
	// collector scanned it (bench/README.md, "The collector").
	events  chan *PeerInfo
	blobSem chan struct{}
	// resultsSem bounds the results requests served at once.
	resultsSem chan struct{}
	// vouchSem and vouchRates bound the indirect probes run for others
	// (vouch.go): at once, and per requester.
	vouchSem   chan struct{}
	vouchRates *protocol.Limiter
	// heard is when each peer last sent this node a gossip RPC: a ping
	// timeout while it still sends is no evidence (heard.go).
	heard   *heardFrom
	fetches fetchSlots

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	deny    map[peer.ID]bool
	rates   *originLimiter
	floods  *floodScore
	compat  *compatState // peers' protocols (identify) and clock offsets
	closed  atomic.Bool
	leaving atomic.Bool  // no heartbeats after our own Leave
	reach   atomic.Int32 // AutoNAT's verdict, a network.Reachability

	live      *liveness     // failure detection (liveness.go)
	refuteNow chan struct{} // a suspicion of this node: heartbeat now
}

// New starts a mesh node: the host, gossipsub, the heartbeat and leave
// topics with their validators, the DHT and discovery, and the node's own
// heartbeats. ctx bounds the setup only; Close stops what New started.
func New(ctx context.Context, cfg Config) (*Mesh, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Mesh{
		cfg:        cfg,
		log:        log.With("subsys", "mesh"),
		topics:     make(map[string]*pubsub.Topic),
		events:     make(chan *PeerInfo, 256),
		blobSem:    make(chan struct{}, blobServers),
		resultsSem: make(chan struct{}, resultsServers),
		vouchSem:   make(chan struct{}, vouchServers),
		heard:      newHeardFrom(),
		vouchRates: protocol.NewLimiter(vouchRate, vouchBurst),

		live:      newLiveness(cfg.Detector), // before any validator runs
		refuteNow: make(chan struct{}, 1),
	}
	m.table = newBoundedTable(cfg.MaxPeers, cfg.NewPeerRate, float64(cfg.NewPeerBurst), func(p peer.ID) bool {
		return m.h != nil && m.h.Network().Connectedness(p) == network.Connected
	})
	m.table.track = cfg.TrackChanges
	m.table.restore(cfg.Restore)
	m.table.sourceIP = func(p peer.ID) string {
		if m.h == nil {
			return ""
		}
		ap, ok := m.DirectAddr(p)
		if !ok {
			return ""
		}
		return ap.Addr().String()
	}
	m.met = newMetrics(reg, m.table, func() int {
		if m.h == nil {
			return 0
		}
		return m.ConnectedPeers()
	})
	m.table.met = m.met
	m.deny = denySet(cfg.Deny)
	m.rates = newOriginLimiter()
	m.floods = newFloodScore()
	m.compat = newCompatState()
	m.interval.Store(int64(cfg.HeartbeatInterval))
	m.met.interval.Set(cfg.HeartbeatInterval.Seconds())

	if cfg.Host != nil {
		m.h = cfg.Host
	} else {
		h, err := newHost(&cfg, &hostRef{})
		if err != nil {
			return nil, err
		}
		m.h, m.ownHost = h, true
	}
	m.rememberRestoredAddrs(cfg.Restore)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	fail := func(err error) (*Mesh, error) {
		m.cancel()
		if m.live.notifiee != nil {
			m.h.Network().StopNotify(m.live.notifiee)
		}
		if m.kad != nil {
			_ = m.kad.Close()
		}
		if m.ownHost {
			_ = m.h.Close()
		}
		return nil, err
	}

	if cfg.DHT {
		mode := dht.ModeServer // a simulation's host: no AutoNAT
		if m.ownHost {
			mode = dhtMode(&cfg, listenAddrs(m.h))
		}
		m.log.Debug("dht mode", "mode", mode)
		kad, err := dht.New(m.ctx, m.h,
			dht.Mode(mode),
			dht.ProtocolPrefix(libp2pproto.ID("/proofmesh/"+cfg.NetworkID)),
		)
		if err != nil {
			return fail(fmt.Errorf("dht: %w", err))
		}
		m.kad = kad
	}

	psOpts := []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		// A node sends its own messages to every topic peer above the
		// publish threshold, not only its mesh: nothing is lost while
		// the mesh forms, and first hops are direct.
		pubsub.WithFloodPublish(true),
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithSeenMessagesTTL(seenTTL(cfg.ClockSkew)),
		pubsub.WithGossipSubParams(gossipParams()),
		pubsub.WithPeerScore(m.scoreParams(), scoreThresholds()),
		pubsub.WithValidateQueueSize(512),
		pubsub.WithPeerOutboundQueueSize(512),
		pubsub.WithMaxMessageSize(1 << 20),
		pubsub.WithAppSpecificRpcInspector(m.heard.inspect),
	}
	if cfg.Tracer != nil {
		psOpts = append(psOpts, pubsub.WithRawTracer(cfg.Tracer))
	}
	ps, err := pubsub.NewGossipSub(m.ctx, m.h, psOpts...)
	if err != nil {
		return fail(fmt.Errorf("gossipsub: %w", err))
	}
	m.ps = ps

	if err := m.Join(KindHeartbeat, m.validateHeartbeat, nil, JoinOptions{Inline: true}); err != nil {
		return fail(err)
	}
	if err := m.Join(KindLeave, m.validateLeave, nil, JoinOptions{Inline: true}); err != nil {
		return fail(err)
	}
	if !cfg.deferLiveness {
		if err := m.startLiveness(); err != nil {
			return fail(err)
		}
	}
	m.h.SetStreamHandler(m.blobProtocol(), m.serveBlob)
	m.h.SetStreamHandler(m.resultsProtocol(), m.serveResults)
	if err := m.watchIdentify(); err != nil {
		return fail(fmt.Errorf("identify events: %w", err))
	}
	if err := m.watchReachability(); err != nil {
		return fail(fmt.Errorf("reachability events: %w", err))
	}

	m.wg.Add(2)
	go m.eventLoop()
	go m.maintenanceLoop()
	if cfg.Self != nil {
		m.wg.Add(1)
		go m.heartbeatLoop()
	}
	if m.kad != nil {
		m.wg.Add(1)
		go m.discoveryLoop()
	}
	_ = ctx // setup is synchronous; kept for the contract
	return m, nil
}

// gossipParams shape the topic meshes. Every message a node receives
// arrives from about each of its mesh peers (gossipsub forwards a message
// to every mesh peer but the one it came from), so the mesh degree D sets
// how many copies of each heartbeat every node reads, writes and wakes up
// for: the cost of a heartbeat to a real process is mostly that
// per-copy work (bench/README.md, "where a real node's CPU goes"), not
// its validation. D = 4 instead of gossipsub's 6 keeps a mesh of this
// degree connected and cuts the copies by a third; the price is a hop more
// across a large network. Gossip (IHAVE) goes to as many peers outside the
// mesh, which repairs what a thinner mesh misses.
func gossipParams() pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.D, p.Dlo, p.Dhi = gossipD, 3, 8
	p.Dscore, p.Dout = 2, 1 // Dout < Dlo and Dout < D/2
	p.Dlazy = gossipD
	return p
}

// gossipD is the target mesh degree of every topic.
const gossipD = 4

// seenTTL is how long gossipsub remembers a message id (at least: it
// drops expired ids at its sweep, once a minute), dropping every copy
// that arrives meanwhile unvalidated; the peer score keeps each message's
// delivery record exactly as long (scoreParams). Every message of this
// network is refused once its time is more than the clock skew from the
// receiver's clock on arrival (heartbeat, leave, suspicion, task,
// progress, cancel, result: IGNORE, so an honest relay with a lagging
// clock pays nothing), so a node's clock is past the skew of a message it
// accepted 2 × skew later, and a copy replayed once the id is forgotten is
// refused by its time, without spending its origin's rate (the validator
// gives the token back). The gossip history (IHAVE and IWANT, 5
// heartbeats of 1 s) is added, so that an honest late copy still finds its
// id seen.
//
// Gossipsub's default is 2 minutes. At 200 simulated nodes in one process
// its ids and the score's records were half the heap, whose marking by
// the collector sets the tail of heartbeat delivery there (bench/README.md,
// "The collector of one shared heap sets the tail"); in a real node they
// are one message rate × this time.
func seenTTL(skew time.Duration) time.Duration {
	p := gossipParams() // how long a message is gossiped and served to IWANT
	return 2*skew + time.Duration(p.HistoryLength)*p.HeartbeatInterval
}

// seenSweep is how often gossipsub's seen cache drops expired ids
// (timecache's backgroundSweepInterval, not exported).
const seenSweep = time.Minute

// messageID is a content hash of origin and payload: duplicates are
// recognised whatever path they took, and a peer that copies another's
// payload under its own signature cannot shadow the original.
func messageID(msg *pb.Message) string {
	h := sha256.New()
	h.Write(msg.GetFrom())
	h.Write([]byte{0})
	h.Write(msg.GetData())
	return string(h.Sum(nil))
}

// Host returns the libp2p host.
func (m *Mesh) Host() host.Host { return m.h }

// ID returns this node's peer id.
func (m *Mesh) ID() peer.ID { return m.h.ID() }

// NetworkID returns the network this mesh belongs to.
func (m *Mesh) NetworkID() string { return m.cfg.NetworkID }

// Addrs returns the addresses the node advertises (AddrPolicy: announced,
// or those of a class others can use, relay addresses while it is not
// publicly reachable), each ending in /p2p/<id> so that another node can
// use it as a bootstrap address.
func (m *Mesh) Addrs() []ma.Multiaddr {
	p2p, err := ma.NewComponent("p2p", m.h.ID().String())
	if err != nil {
		return nil
	}
	var out []ma.Multiaddr
	for _, a := range m.h.Addrs() {
		out = append(out, a.Encapsulate(p2p.Multiaddr()))
	}
	return out
}

// Interval returns the node's current heartbeat interval.
func (m *Mesh) Interval() time.Duration { return time.Duration(m.interval.Load()) }

// Connect dials a peer.
func (m *Mesh) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if err := m.h.Connect(ctx, ai); err != nil {
		return fmt.Errorf("connect %s: %w", ai.ID, err)
	}
	return nil
}

// ConnectedPeers is the number of peers the node holds a connection to.
func (m *Mesh) ConnectedPeers() int { return len(m.h.Network().Peers()) }

// JoinedPeers is the number of peers the node holds a connection to that
// are nodes of its network listed online (by their heartbeats): a bare
// libp2p identity, a node of another network or one that stopped
// heartbeating does not count.
func (m *Mesh) JoinedPeers() int {
	now, n := time.Now(), 0
	for _, p := range m.h.Network().Peers() {
		if info, ok := m.table.get(p, now); ok && info.Status == protocol.StatusOnline {
			n++
		}
	}
	return n
}

// Connected reports whether the node has a live connection to p.
func (m *Mesh) Connected(p peer.ID) bool {
	return m.h.Network().Connectedness(p) == network.Connected
}

// DirectAddr returns the remote address of an open direct connection to p:
// one authenticated with p's key end to end, not through a relay. This is
// how the node knows a peer is really there (heartbeats relayed by others
// prove nothing: any peer can sign them for keys it made up).
func (m *Mesh) DirectAddr(p peer.ID) (netip.AddrPort, bool) {
	for _, c := range m.h.Network().ConnsToPeer(p) {
		if c.Stat().Limited {
			continue
		}
		if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err == nil {
			continue
		}
		if ap, ok := addrPort(c.RemoteMultiaddr()); ok {
			return ap, true
		}
	}
	return netip.AddrPort{}, false
}

// addrPort is the IP address and TCP or UDP port of a multiaddr (QUIC
// addresses included, which manet.ToNetAddr does not convert).
func addrPort(a ma.Multiaddr) (netip.AddrPort, bool) {
	ip, err := manet.ToIP(a)
	if err != nil {
		return netip.AddrPort{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := a.ValueForProtocol(ma.P_TCP)
	if err != nil {
		if port, err = a.ValueForProtocol(ma.P_UDP); err != nil {
			return netip.AddrPort{}, false
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(n)), true
}

// Peers returns the peer table, sorted by id, statuses computed now.
func (m *Mesh) Peers() []PeerInfo { return m.withProtocols(m.table.list(time.Now())...) }

// Peer returns one row of the peer table.
func (m *Mesh) Peer(id peer.ID) (PeerInfo, bool) {
	p, ok := m.table.get(id, time.Now())
	if ok {
		p = m.withProtocols(p)[0]
	}
	return p, ok
}

// Join subscribes to a topic of the network with a validator and a
// handler for the messages that pass it (nil: validate and forward only,
// as a relay of the topic). Handlers run on one goroutine per topic, in
// arrival order.
func (m *Mesh) Join(kind string, v Validator, handle func(Message), opt JoinOptions) error {
	return m.JoinDecoded(kind, func(ctx context.Context, from peer.ID, data []byte) (any, error) {
		return nil, v(ctx, from, data)
	}, handle, opt)
}

// JoinDecoded is Join with a Decoder: the handler gets the decoded value.
func (m *Mesh) JoinDecoded(kind string, v Decoder, handle func(Message), opt JoinOptions) error {
	name := TopicName(m.cfg.NetworkID, kind)
	vopts := []pubsub.ValidatorOpt{}
	if opt.Concurrency > 0 {
		vopts = append(vopts, pubsub.WithValidatorConcurrency(opt.Concurrency))
	}
	if opt.Timeout > 0 {
		vopts = append(vopts, pubsub.WithValidatorTimeout(opt.Timeout))
	}
	if opt.Inline {
		vopts = append(vopts, pubsub.WithValidatorInline(true))
	}
	if err := m.ps.RegisterTopicValidator(name, m.validator(kind, v, opt.PastRate), vopts...); err != nil {
		return fmt.Errorf("validator for %s: %w", name, err)
	}
	t, err := m.ps.Join(name)
	if err != nil {
		return fmt.Errorf("join %s: %w", name, err)
	}
	if handle == nil {
		// Validate and forward only: relaying joins the topic's mesh and
		// announces it as a subscription does, without handing every
		// message to a subscription's goroutine to be dropped there.
		if _, err := t.Relay(); err != nil {
			return fmt.Errorf("relay %s: %w", name, err)
		}
		m.mu.Lock()
		m.topics[kind] = t
		m.mu.Unlock()
		return nil
	}
	sub, err := t.Subscribe()
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", name, err)
	}
	m.mu.Lock()
	m.topics[kind] = t
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer sub.Cancel()
		for {
			msg, err := sub.Next(m.ctx)
			if err != nil {
				return
			}
			handle(Message{From: msg.GetFrom(), Data: msg.Data, Local: msg.GetFrom() == m.h.ID(), Value: msg.ValidatorData})
		}
	}()
	return nil
}

// Publish sends a message on a joined topic.
func (m *Mesh) Publish(ctx context.Context, kind string, data []byte) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.mu.Lock()
	t := m.topics[kind]
	m.mu.Unlock()
	if t == nil {
		return fmt.Errorf("publish on %s: topic not joined", kind)
	}
	if err := t.Publish(ctx, data); err != nil {
		return fmt.Errorf("publish on %s: %w", kind, err)
	}
	return nil
}

// validator turns a Validator's error into a gossip verdict, counts it,
// and logs it at debug level (a remote peer can trigger it).
//
// The origin's token for the topic (topicRates) is spent before
// validating, so that concurrent validations cannot overrun its bucket,
// and given back when the message is refused as old news
// (protocol.Replayed: stale, a duplicate, outside the clock skew) and
// another peer sent it: anyone who kept an origin's old messages can send
// them again once this node has forgotten their ids, and such copies had
// spent the origin's bucket, so that its fresh messages were IGNOREd here
// and counted as its flood (a review of this round). A budget of old news
// per origin and forwarder, tried next to bound what a relay colluding
// with an origin has this node validate uncharged, was withdrawn: gossipsub
// marks an id seen before validating it, so a copy refused unlooked-at
// through a spent budget hid the same fresh message arriving next from
// honest relays (a third review), and honest relays could spend it
// (replica races, a clock ahead within the skew). The checks that refuse
// old news are kept cheap instead (docs/SECURITY.md).
func (m *Mesh) validator(kind string, v Decoder, pastRate func([]byte) bool) pubsub.ValidatorEx {
	return func(ctx context.Context, via peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		from := msg.GetFrom()
		if m.deny[from] {
			m.met.gossip.WithLabelValues(kind, "denied").Inc()
			return pubsub.ValidationIgnore
		}
		spent := false
		if now := time.Now(); from != m.h.ID() {
			spent = m.rates.allow(kind, from, now)
			if !spent && via == from {
				m.floods.add(from, now) // it flooded us itself
			}
			if !spent && (pastRate == nil || !pastRate(msg.Data)) {
				m.met.gossip.WithLabelValues(kind, "rate_limited").Inc()
				return pubsub.ValidationIgnore
			}
		}
		val, err := v(context.WithValue(ctx, viaKey{}, via), from, msg.Data)
		if err == nil {
			msg.ValidatorData = val
		}
		res, word := verdict(err)
		if spent && via != from && protocol.Replayed(err) {
			// Old news another peer sent: not the origin's doing.
			m.rates.refund(kind, from)
			word = "ignore_replay"
		}
		m.met.gossip.WithLabelValues(kind, word).Inc()
		if err != nil {
			m.log.Debug("gossip message refused", "topic", kind, "peer", from, "verdict", word, "reason", protocol.Reason(err), "err", err)
		}
		return res
	}
}

// viaKey carries, in a validator's context, the peer that forwarded the
// message (the origin itself on a direct first hop).
type viaKey struct{}

// Forwarder returns, in a Validator or Decoder, the peer that forwarded
// the message being validated (the origin itself on a direct first hop);
// from if unknown. What a peer makes this node keep is bounded per
// forwarder: made-up origins all come through some real connection.
func Forwarder(ctx context.Context, from peer.ID) peer.ID { return forwarder(ctx, from) }

// WithForwarder returns ctx naming via as the forwarder of the message
// being validated (a message looked at again later keeps its forwarder).
func WithForwarder(ctx context.Context, via peer.ID) context.Context {
	return context.WithValue(ctx, viaKey{}, via)
}

// forwarder returns the peer that forwarded the message being validated;
// from if unknown.
func forwarder(ctx context.Context, from peer.ID) peer.ID {
	if via, ok := ctx.Value(viaKey{}).(peer.ID); ok && via != "" {
		return via
	}
	return from
}

// contest hands the detector a contested return (observation.contested)
// unless a heartbeat above bar was accepted meanwhile: validators run on
// several workers, and the peer's refutation, validated on another one
// between observeFrom and here, already went to the detector (Heartbeat)
// before there was a suspicion to clear. The table is read under the
// detector's lock (live.mu, then table.mu: no path takes them the other
// way round), so a refutation accepted after this is seen by Heartbeat.
func (m *Mesh) contest(from peer.ID, bar uint64, now time.Time) {
	m.met.liveness.WithLabelValues("up_contested").Inc()
	connected := reachable(m.h.Network().Connectedness(from))
	m.step(func(d *protocol.Detector) []protocol.LivenessAction {
		if m.table.lastSeq(from) > bar {
			return nil // refuted meanwhile
		}
		acts, err := d.Contested(from, bar, connected, now)
		if err != nil {
			m.met.liveness.WithLabelValues("contest_not_held").Inc()
		}
		return acts
	})
}

// verdict is the one place where errors become gossip verdicts.
func verdict(err error) (pubsub.ValidationResult, string) {
	switch {
	case err == nil:
		return pubsub.ValidationAccept, "accept"
	case protocol.Ignorable(err):
		return pubsub.ValidationIgnore, "ignore"
	default:
		return pubsub.ValidationReject, "reject"
	}
}

func (m *Mesh) validateHeartbeat(ctx context.Context, from peer.ID, data []byte) error {
	if from == m.h.ID() {
		return nil
	}
	err := m.acceptHeartbeat(from, forwarder(ctx, from), data)
	if err != nil {
		_, word := verdict(err)
		m.met.hbRefused.WithLabelValues(protocol.Reason(err), word).Inc()
		return err
	}
	m.met.hbAccepted.Inc()
	return nil
}

func (m *Mesh) acceptHeartbeat(from, via peer.ID, data []byte) error {
	now := time.Now()
	lastSeq, prev, prevCaps := m.table.prior(from)
	hb, caps, err := protocol.DecodeAndValidateHeartbeat(data, protocol.HeartbeatCheck{
		From: from, Now: now, Skew: m.cfg.ClockSkew, LastSeq: lastSeq, Policy: m.cfg.Policy,
		Prev: prev, PrevCaps: prevCaps,
	})
	if hb == nil {
		return err
	}
	if err == nil || errors.Is(err, protocol.ErrClockSkew) {
		// Signed by its origin and well formed: its time is a vote on
		// our clock, also (above all) when it is outside the skew.
		m.sampleClock(from, hb, now)
	}
	if err != nil {
		return err
	}
	o, err := m.table.observeFrom(from, hb, caps, via, now)
	if err != nil {
		return err
	}
	m.heartbeatSeen(from, hb.Seq)
	if o.contested > 0 {
		m.contest(from, o.contested, now)
	}
	if o.notable {
		m.log.Debug("peer online", "peer", from)
		m.notify(o.info)
	}
	return nil
}

func (m *Mesh) validateLeave(_ context.Context, from peer.ID, data []byte) error {
	l, signer, err := protocol.OpenLeave(data)
	if err != nil {
		return err
	}
	if signer == m.h.ID() {
		return nil
	}
	now := time.Now()
	if err := protocol.CheckLeaveTime(l, now, m.cfg.ClockSkew); err != nil {
		return err
	}
	info, err := m.table.leave(signer, l, now)
	if err != nil {
		return err
	}
	m.log.Info("peer left", "peer", signer, "reason", l.Reason, "via", from)
	m.notify(info)
	return nil
}

func (m *Mesh) notify(info PeerInfo) {
	if m.cfg.OnPeer == nil {
		return
	}
	select {
	case m.events <- &info:
	default:
		m.log.Debug("peer event dropped: queue full", "peer", info.ID)
	}
}

func (m *Mesh) eventLoop() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case info := <-m.events:
			m.cfg.OnPeer(*info)
		}
	}
}

// jitter spreads d over [0.9d, 1.1d) for r in [0, 1).
func jitter(d time.Duration, r float64) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*r))
}

// nextSeq returns a sequence number above every earlier one, also across
// restarts: it never falls below the wall clock in microseconds.
func (m *Mesh) nextSeq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq = protocol.NextSeq(m.seq, time.Now())
	return m.seq
}

func (m *Mesh) heartbeatLoop() {
	defer m.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	var refuted time.Time
	var again <-chan time.Time
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.refuteNow:
			// A suspicion of this node: answer it with a heartbeat above
			// its seq (refute raised ours), at most once per refuteGap
			// (a claim within the gap is answered at its end), and keep
			// the regular schedule.
			if wait := refuteGap - time.Since(refuted); wait > 0 {
				if again == nil {
					again = time.After(wait)
				}
				continue
			}
			refuted = m.sendRefutation()
			continue
		case <-again:
			again, refuted = nil, m.sendRefutation()
			continue
		case <-t.C:
		}
		live := m.table.counts(time.Now())[protocol.StatusOnline]
		iv := protocol.AdaptiveInterval(m.cfg.HeartbeatInterval, live, m.cfg.HeartbeatBudget)
		m.interval.Store(int64(iv))
		m.met.interval.Set(iv.Seconds())
		if m.leaving.Load() {
			return
		}
		if err := m.sendHeartbeat(iv); err != nil && m.ctx.Err() == nil {
			m.log.Warn("heartbeat not sent", "err", err)
		}
		// ±10% jitter: nodes started together do not stay in step and
		// publish every round in one burst.
		t.Reset(jitter(iv, rand.Float64()))
	}
}

// sendRefutation sends a heartbeat out of schedule, the answer to a
// suspicion of this node, and returns when.
func (m *Mesh) sendRefutation() time.Time {
	if m.leaving.Load() {
		return time.Now()
	}
	if err := m.sendHeartbeat(m.Interval()); err != nil && m.ctx.Err() == nil {
		m.log.Warn("refutation not sent", "err", err)
	}
	return time.Now()
}

func (m *Mesh) sendHeartbeat(iv time.Duration) error {
	hb := m.cfg.Self()
	hb.NodeID = m.h.ID().String()
	hb.Seq = m.nextSeq()
	m.mu.Lock()
	hb.Refutes = m.refutes
	m.mu.Unlock()
	hb.Time = time.Now().UnixMilli()
	hb.IntervalMS = iv.Milliseconds()
	if len(hb.ListenAddrs) == 0 {
		for _, a := range m.Addrs() {
			if len(hb.ListenAddrs) == 16 {
				break
			}
			hb.ListenAddrs = append(hb.ListenAddrs, a.String())
		}
	}
	if hb.PolicyVersion == 0 {
		hb.PolicyVersion = m.cfg.Policy.Version
	}
	data, err := hb.Encode()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(m.ctx, iv)
	defer cancel()
	return m.Publish(ctx, KindHeartbeat, data)
}

// Leave publishes this node's signed Leave so that every peer marks it
// deleted, and waits LeaveFlush for it to spread. The node sends no more
// heartbeats.
func (m *Mesh) Leave(ctx context.Context, reason string) error {
	// Stop heartbeats first: one sent after the Leave would bring the
	// node back to life on its peers.
	m.leaving.Store(true)
	data, err := protocol.Seal(&protocol.Leave{
		NodeID: m.h.ID().String(), Time: time.Now().UnixMilli(), Reason: reason,
	}, m.h.Peerstore().PrivKey(m.h.ID()))
	if err != nil {
		return fmt.Errorf("seal leave: %w", err)
	}
	if err := m.Publish(ctx, KindLeave, data); err != nil {
		return err
	}
	select {
	case <-time.After(m.cfg.LeaveFlush):
	case <-ctx.Done():
	}
	return nil
}

func (m *Mesh) maintenanceLoop() {
	defer m.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case now := <-t.C:
			m.floods.sweep(now)
			for _, id := range m.table.purge(now, now.Add(-m.cfg.TombstoneRetention), now.Add(-m.cfg.OfflineRetention)) {
				m.log.Debug("peer purged", "peer", id)
			}
		}
	}
}

// Close stops the mesh: its goroutines, the DHT and (if it built it) the
// host. It does not publish a Leave; call Leave first for a graceful exit.
func (m *Mesh) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	m.cancel()
	m.h.RemoveStreamHandler(m.blobProtocol())
	m.h.RemoveStreamHandler(m.resultsProtocol())
	m.h.RemoveStreamHandler(m.probeProtocol())
	if m.live.notifiee != nil {
		m.h.Network().StopNotify(m.live.notifiee)
	}
	var errs []error
	if m.kad != nil {
		errs = append(errs, m.kad.Close())
	}
	m.wg.Wait()
	if m.ownHost {
		errs = append(errs, m.h.Close())
	}
	return errors.Join(errs...)
}

// findAddrs makes sure the peerstore holds addresses for p before a dial
// by its id, as a routed host would: a node keeps a bounded number of
// connections (ConnHigh), and libp2p forgets a peer's addresses 15
// minutes after its last connection closed (RecentlyConnectedAddrTTL), so
// a peer this node must reach (a blob's provider, a results request, a
// probe) may be one it holds no address of. The DHT is asked then.
//
// A caller that may not dial (network.WithNoDial: an observer's results
// sync, which must never have the network dial a submitter) gets no
// lookup: the DHT's own dials ignore that option, and would reach the
// target's neighbourhood and often the target itself. The lookup takes at
// most findPeerTimeout.
func (m *Mesh) findAddrs(ctx context.Context, p peer.ID) {
	if noDial, _ := network.GetNoDial(ctx); noDial {
		return
	}
	if m.kad == nil || reachable(m.h.Network().Connectedness(p)) || len(m.h.Peerstore().Addrs(p)) > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, findPeerTimeout)
	defer cancel()
	ai, err := m.kad.FindPeer(ctx, p)
	if err != nil {
		m.log.Debug("peer's addresses not found", "peer", p, "err", err)
		return
	}
	m.h.Peerstore().AddAddrs(p, ai.Addrs, peerstore.TempAddrTTL)
}

// rememberRestoredAddrs gives the peerstore, for a while, the listen
// addresses the restored peers last announced in their signed
// heartbeats: a restarted node can reach the peers it must (an executor
// whose result it missed while down) before the DHT or their dials find
// it again (a new user's walkthrough of 2026-12-07: "no addresses").
// What it dials is still the connection gater's to allow.
func (m *Mesh) rememberRestoredAddrs(rows []PeerInfo) {
	for _, r := range rows {
		if r.Heartbeat == nil || r.ID == m.h.ID() || r.Status == protocol.StatusDeleted {
			continue
		}
		var addrs []ma.Multiaddr
		for _, s := range r.Heartbeat.ListenAddrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				addrs = append(addrs, a)
			}
		}
		m.h.Peerstore().AddAddrs(r.ID, addrs, peerstore.TempAddrTTL)
	}
}

// findPeerTimeout bounds a DHT lookup of a peer's addresses.
const findPeerTimeout = 10 * time.Second

// routingDiscovery returns the rendezvous discovery over the DHT.
func (m *Mesh) routingDiscovery() *drouting.RoutingDiscovery {
	return drouting.NewRoutingDiscovery(m.kad)
}
