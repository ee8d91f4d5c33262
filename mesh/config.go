package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/proofmesh/proofmesh/protocol"
)

// Config configures a Mesh. Start from DefaultConfig.
type Config struct {
	// NetworkID names the network. It is part of every topic name and of
	// the DHT protocol prefix, so nodes of different networks never talk.
	NetworkID string
	// Key is the node's identity. Required unless Host is set.
	Key crypto.PrivKey
	// ListenAddrs are the multiaddrs to listen on.
	ListenAddrs []string
	// Host, when set, is used instead of building one (mocknet
	// simulations); Key, ListenAddrs and the connection limits are unused.
	Host host.Host

	// Policy judges the capabilities that peers announce.
	Policy protocol.Policy
	// Self describes this node for its heartbeats; mesh fills in node_id,
	// seq, time and interval. Nil: the node sends no heartbeats (a
	// bootstrap-only node).
	Self func() protocol.Heartbeat
	// HeartbeatInterval is the base interval between own heartbeats.
	HeartbeatInterval time.Duration
	// HeartbeatBudget is the network-wide heartbeat rate (messages per
	// second) a node aims to stay within by stretching its interval as the
	// number of live peers grows. 0 disables stretching.
	HeartbeatBudget float64
	// ClockSkew is how far a peer's timestamps may be from ours.
	ClockSkew time.Duration
	// Detector tunes failure detection (mesh/liveness.go): how long a
	// suspicion waits for the suspect's refutation, how many are held.
	// A dead peer is off the online lists about a suspicion's wait
	// (SuspicionTimeout, down to MinSuspicionTimeout as other nodes
	// confirm it) plus a probe after its connections close, whatever the
	// heartbeat interval.
	Detector protocol.DetectorConfig
	// ProbeInterval is the period of the random probe (SWIM): each
	// interval the node pings one peer it is connected to, so the probe
	// load per node does not grow with the network.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe: a dial and a ping.
	ProbeTimeout time.Duration
	// TombstoneRetention is how long a peer that left is kept as deleted.
	TombstoneRetention time.Duration
	// OfflineRetention is how long an offline peer (no heartbeat for 10
	// of its intervals, no connection) is kept before its row is purged.
	OfflineRetention time.Duration
	// MaxPeers bounds the live peer table's rows. A new identity in a
	// full table evicts a deleted, offline or stale row (the longest
	// unseen first, never a directly connected peer's) or is refused;
	// directly connected peers are always listed.
	MaxPeers int
	// NewPeerRate and NewPeerBurst bound, per forwarding peer and per
	// forwarding IP address, how many
	// identities never seen before it may bring into the table a second:
	// one connection cannot publish heartbeats for thousands of forged
	// identities and have them listed and persisted.
	NewPeerRate  float64
	NewPeerBurst int

	// ConnLow and ConnHigh are the connection manager's water marks: above
	// ConnHigh connections it closes the least useful ones older than a
	// minute until ConnLow remain besides those it never closes (the
	// heartbeat topic's gossip mesh, at most Dhi peers; the other topics'
	// mesh peers and the DHT's routing table are kept first, not always:
	// conns), so what a node holds per peer stays bounded however large
	// the network. Rendezvous discovery stops dialling at ConnHigh/2.
	ConnLow, ConnHigh int
	// ConnLimit sizes the resource manager's connection limits
	// (ConnLimit·1.25 inbound, ConnLimit·1.5 in all): a burst above
	// ConnHigh, as a bootstrap node meets when many nodes join at once, is
	// accepted and trimmed later, and only one beyond ConnLimit refused.
	ConnLimit int
	// ResourceMemory is the memory (bytes) libp2p's resource manager lets
	// all connections and streams hold together; ResourceFDs the file
	// descriptors. One peer may hold at most 1/8 of the memory.
	ResourceMemory int64
	ResourceFDs    int
	// DHT enables Kademlia and rendezvous discovery.
	DHT bool
	// DiscoveryInterval is the period of rendezvous lookups once the node
	// has peers (it looks more often until it has).
	DiscoveryInterval time.Duration
	// Colocation allows many peers behind one IP address in peer scoring
	// (local testnets). Off in production: a Sybil on one machine is
	// penalised.
	Colocation bool
	// AppScore adds the application's opinion of a peer (verified and
	// rejected results) to its gossip score. Optional.
	AppScore func(peer.ID) float64
	// Blob serves content-addressed blobs to peers. Optional.
	Blob func(hash string) ([]byte, bool)
	// Results serves the signed result envelopes this node holds for a
	// task (the results protocol, see FetchResults). Optional.
	Results func(taskID string) [][]byte
	// MaxBlobBytes bounds a blob served or fetched.
	MaxBlobBytes int64
	// LeaveFlush is how long Close waits after publishing the Leave so that
	// it reaches the mesh before the host goes down.
	LeaveFlush time.Duration
	// OnPeer is called (from mesh goroutines, never under a lock) when a
	// peer joins, leaves or returns: the moments worth persisting at once.
	OnPeer func(PeerInfo)
	// TrackChanges records the peer-table rows that change and leave, for
	// an owner that persists the table behind it by calling Changes
	// regularly (the sets are bounded only by what each call drains).
	// False: nothing is recorded.
	TrackChanges bool
	// Restore is the peer table an earlier run saved (last heartbeats and
	// sequence numbers, tombstones; statuses follow from the saved times),
	// loaded before the first heartbeat: a restarted node's first
	// heartbeat then announces the interval its restored table gives (in a
	// large network, far above HeartbeatInterval), and its peers expect
	// the next one then. Loaded later, the first heartbeat announced the
	// base interval, and a peer that missed the second marked the node
	// stale after three base intervals.
	Restore []PeerInfo
	// Tracer receives gossipsub's raw events (RPCs written, messages
	// delivered after validation) for measurement, such as the heartbeat
	// delivery benchmark. Optional. Its methods run on gossipsub's
	// goroutines, some on its event loop, and must return quickly.
	Tracer pubsub.RawTracer
	// deferLiveness leaves failure detection off until the package's
	// benchmarks call startLiveness: a 1,000-node network simulated in one
	// process is starved while it starts (every node's first heartbeat
	// reaches every other), and detection is measured on a settled one.
	deferLiveness bool

	// Reaching nodes behind NATs (DESIGN.md "Reaching nodes"). Unused
	// when Host is set.
	//
	// Announce, NoAnnounce and NetworkAddrs decide the addresses the node
	// advertises (AddrPolicy): Announce replaces them, NoAnnounce removes
	// matching ones, and the bootstrap peers' and relays' addresses in
	// NetworkAddrs tell whether private or loopback addresses are useful.
	Announce, NoAnnounce, NetworkAddrs []ma.Multiaddr
	// StaticRelays are circuit relays to reserve a slot with while the
	// node is not publicly reachable; peers offering relay service are
	// used as well.
	StaticRelays []peer.AddrInfo
	// RelayService offers circuit relay v2 (bounded by relayResources)
	// once AutoNAT finds the node publicly reachable.
	RelayService bool
	// NATPortMap asks the router for a port mapping (UPnP, NAT-PMP).
	NATPortMap bool
	// Reachability overrides AutoNAT's verdict: ReachabilityAuto,
	// ReachabilityPublic (a relay or bootstrap node on a network where
	// AutoNAT cannot confirm addresses, e.g. a private testnet) or
	// ReachabilityPrivate (always use relays). Empty means auto.
	Reachability string
	// BlobDirectWait is how long a blob fetch from a peer reached only
	// through a relay waits for a direct connection (hole punching, a
	// direct dial) before it sends the blob through the relay.
	BlobDirectWait time.Duration

	// Deny lists peers this node never connects to and whose gossip it
	// drops, set by the operator.
	Deny []peer.ID

	// Version is the release this node runs, sent to peers in identify's
	// agent version ("proofmesh/<version>") so that a peer of another
	// protocol major can name it. Optional.
	Version string

	// Registerer receives the mesh's Prometheus metrics. Nil: a private
	// registry.
	Registerer prometheus.Registerer
	// Logger is the mesh's logger. Nil: discard.
	Logger *slog.Logger

	// hostOptions are appended to the options newHost gives libp2p.New,
	// after proofmesh's own. Set only by tests in this package (the
	// hole-punching test swaps in a simulated QUIC network); nil in
	// production, so every NAT option above stays the production path.
	hostOptions []libp2p.Option
	// connGrace replaces the connection manager's grace period of a
	// minute (a connection younger than it is never trimmed). Set only by
	// tests in this package, which trim at once.
	connGrace time.Duration
}

// DefaultConfig returns a complete configuration; callers set NetworkID,
// Key and Self.
func DefaultConfig() Config {
	return Config{
		ListenAddrs: []string{
			"/ip4/0.0.0.0/tcp/4001",
			"/ip4/0.0.0.0/udp/4001/quic-v1",
		},
		Policy:             protocol.DefaultPolicy(),
		HeartbeatInterval:  10 * time.Second, // DESIGN.md's default
		HeartbeatBudget:    10,               // network-wide heartbeats per second (a 200-node mocknet holds 10/s: NOTES.md)
		ClockSkew:          protocol.DefaultClockSkew,
		Detector:           protocol.DefaultDetectorConfig(),
		ProbeInterval:      time.Second,     // one random peer pinged a second (memberlist's LAN default)
		ProbeTimeout:       2 * time.Second, // a dial and a ping round trip
		TombstoneRetention: 24 * time.Hour,  // deleted peers kept a day
		OfflineRetention:   24 * time.Hour,  // offline peers kept a day
		MaxPeers:           1000,            // rows of the peer table (≈ 10 KiB each with the last heartbeat)
		NewPeerRate:        5,               // new identities a second per forwarding peer
		NewPeerBurst:       100,             // after a burst of 100: a joining node meets a 100-node network at once through one peer
		ConnLow:            8,               // trim to 8 connections besides the heartbeat mesh's peers (never trimmed)
		ConnHigh:           32,              // when above 32
		ConnLimit:          192,             // refuse beyond 240 inbound, 288 in all
		ResourceMemory:     256 << 20,       // a small node: 256 MiB for libp2p
		ResourceFDs:        512,             // enough for ConnLimit·1.5 TCP connections and the listeners
		DHT:                true,
		DiscoveryInterval:  30 * time.Second,
		MaxBlobBytes:       64 << 20, // proving keys are the largest blobs
		LeaveFlush:         500 * time.Millisecond,
		RelayService:       true,             // relay for others once public (bounded by relayResources)
		Reachability:       ReachabilityAuto, // AutoNAT decides
		BlobDirectWait:     5 * time.Second,  // a hole punch takes a round trip or two
	}
}

// ErrInvalidConfig is wrapped by every Config.Validate error.
var ErrInvalidConfig = errors.New("invalid mesh config")

// Validate refuses a configuration that cannot work.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case !ValidNetworkID(c.NetworkID):
		return bad("network id %q must be 1-32 of [a-z0-9-]", c.NetworkID)
	case c.Host == nil && c.Key == nil:
		return bad("an identity key or a host is required")
	case c.Host == nil && len(c.ListenAddrs) == 0:
		return bad("at least one listen address is required")
	case c.HeartbeatInterval < 100*time.Millisecond || c.HeartbeatInterval > time.Hour:
		return bad("heartbeat interval %s not within 100ms..1h", c.HeartbeatInterval)
	case c.HeartbeatBudget < 0:
		return bad("heartbeat budget %g must not be negative", c.HeartbeatBudget)
	case c.ClockSkew <= 0:
		return bad("clock skew must be positive")
	case c.Detector.SuspicionTimeout <= 0 || c.Detector.ConfirmedFor < 0 || c.Detector.MaxSuspects < 1 || c.Detector.RetryAfter <= 0:
		return bad("detector: suspicion timeout %s and retry-after %s must be positive, confirmed-for %s not negative, max suspects %d at least 1",
			c.Detector.SuspicionTimeout, c.Detector.RetryAfter, c.Detector.ConfirmedFor, c.Detector.MaxSuspects)
	case c.Detector.MaxHealth < 0 || c.Detector.MaxHealth > 64:
		return bad("detector: max health %d must be within [0, 64]", c.Detector.MaxHealth)
	case c.Detector.MinSuspicionTimeout < 0 || c.Detector.MinSuspicionTimeout > c.Detector.SuspicionTimeout || c.Detector.Confirmations < 0:
		return bad("detector: min suspicion timeout %s must be within [0, %s], confirmations %d not negative",
			c.Detector.MinSuspicionTimeout, c.Detector.SuspicionTimeout, c.Detector.Confirmations)
	case c.ProbeInterval <= 0 || c.ProbeTimeout <= 0:
		return bad("probe interval %s and probe timeout %s must be positive", c.ProbeInterval, c.ProbeTimeout)
	case c.Host == nil && (c.ConnLow <= 0 || c.ConnHigh <= c.ConnLow || c.ConnLimit < c.ConnHigh):
		return bad("connection water marks low=%d high=%d limit=%d: need 0 < low < high <= limit", c.ConnLow, c.ConnHigh, c.ConnLimit)
	case c.Host == nil && c.ResourceMemory < 64<<20:
		return bad("resource memory %d bytes: need at least 64 MiB", c.ResourceMemory)
	case c.Host == nil && c.ResourceFDs < c.ConnLimit*3/2+32:
		return bad("resource fds %d: need at least %d for %d connections (1.5 x conn limit) and the listeners", c.ResourceFDs, c.ConnLimit*3/2+32, c.ConnLimit*3/2)
	case c.MaxPeers < 16:
		return bad("max peers %d: need at least 16", c.MaxPeers)
	case c.NewPeerRate <= 0 || c.NewPeerBurst < 1:
		return bad("new peer rate %g/s burst %d: both must be positive", c.NewPeerRate, c.NewPeerBurst)
	case c.TombstoneRetention <= 0 || c.OfflineRetention <= 0:
		return bad("tombstone and offline retentions must be positive")
	case c.DiscoveryInterval <= 0:
		return bad("discovery interval must be positive")
	case c.MaxBlobBytes <= 0:
		return bad("max blob bytes must be positive")
	case c.Reachability != "" && c.Reachability != ReachabilityAuto && c.Reachability != ReachabilityPublic && c.Reachability != ReachabilityPrivate:
		return bad("reachability %q: want %s, %s or %s", c.Reachability, ReachabilityAuto, ReachabilityPublic, ReachabilityPrivate)
	case c.BlobDirectWait < 0:
		return bad("blob direct wait must not be negative")
	}
	for _, ai := range c.StaticRelays {
		if len(ai.Addrs) == 0 {
			return bad("static relay %s has no address", ai.ID)
		}
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// Reachability settings (Config.Reachability).
const (
	ReachabilityAuto    = "auto"
	ReachabilityPublic  = "public"
	ReachabilityPrivate = "private"
)

// ValidNetworkID reports whether id can name a network: 1–32 characters of
// [a-z0-9-], so that it is safe inside topic names and protocol ids.
func ValidNetworkID(id string) bool {
	if len(id) == 0 || len(id) > 32 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Topic names of a network.
const (
	KindHeartbeat = "heartbeat"
	KindLeave     = "leave"
	KindLiveness  = "liveness"
	KindTasks     = "tasks"
	KindResults   = "results"
)

// TopicName returns the gossipsub topic of a message kind in a network:
// /proofmesh/<net>/<kind>/<protocol major>.
func TopicName(networkID, kind string) string {
	return "/proofmesh/" + networkID + "/" + kind + "/" + strconv.Itoa(protocol.ProtocolMajor)
}

// Rendezvous returns the discovery namespace of a network.
func Rendezvous(networkID string) string { return "proofmesh/" + networkID + "/nodes" }
