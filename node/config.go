package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/internal/buildinfo"
	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
)

// Config configures a Node. Start from DefaultConfig.
type Config struct {
	// DataDir holds identity.key, api.token and the store. An empty dir is
	// initialised.
	DataDir string
	// ListenAddrs are libp2p multiaddrs to listen on.
	ListenAddrs []string
	// Bootstrap are extra bootstrap multiaddrs (with /p2p/<id>), added to
	// the network's own list.
	Bootstrap []string
	// APIAddr is the HTTP API's host:port; empty disables the API.
	APIAddr string
	// APIToken overrides the token in DataDir (tests, testnets).
	APIToken string
	// API holds the HTTP API's limits: rates per credential and per
	// address, timeouts, connections per client, event streams.
	API api.Config
	// Network is the network to join; nil means the built-in default.
	Network *bootstrap.Network
	// HeartbeatInterval is the base heartbeat interval.
	HeartbeatInterval time.Duration
	// Declared are the operator's declared capabilities.
	Declared Declared
	// BootstrapOnly runs a node that only helps others meet: DHT and
	// gossip relay, no heartbeats of its own, no task execution.
	BootstrapOnly bool
	// Colocation lets many nodes share one IP in peer scoring (testnets).
	Colocation bool
	// DHT enables Kademlia and rendezvous discovery.
	DHT bool
	// SandboxWorkers bounds concurrent WASM runs.
	SandboxWorkers int
	// ProverConcurrency bounds concurrent Groth16 proofs.
	ProverConcurrency int
	// KeysDir loads the ceremony keys from a directory instead of the
	// shipped default keys.
	KeysDir string
	// WasmCacheDir holds compiled WASM modules across restarts; empty
	// means <data-dir>/wasm-cache.
	WasmCacheDir string
	// CORSOrigins are browser origins allowed to call the API (none by
	// default).
	CORSOrigins []string
	// DenyPeers are peer ids this node never talks to (operator deny list).
	DenyPeers []string
	// KeepConns is the connection manager's high water mark: above it, it
	// trims the least useful connections to a quarter of it, besides the
	// heartbeat topic's gossip mesh (at most 8 peers), the bootstrap peers
	// and relays, which it never trims.
	KeepConns int
	// MaxConns sizes the resource manager's connection limits (1.25 times
	// inbound, 1.5 times in all): a burst beyond KeepConns is accepted
	// and trimmed later, one beyond these refused.
	MaxConns int
	// P2PMemoryMB is the memory libp2p's resource manager lets connections
	// and streams hold together.
	P2PMemoryMB int
	// TaskRetention is how long a finished task (with its results) stays
	// in the store before it is pruned; 0 keeps them forever.
	TaskRetention time.Duration
	// ObservedTaskRetention is the same for the tasks this node neither
	// submitted nor was a candidate of (capped by TaskRetention): anyone
	// can sign tasks that every node stores, so they are kept a shorter
	// time (docs/SECURITY.md).
	ObservedTaskRetention time.Duration
	// Announce replaces the addresses the node advertises (multiaddrs,
	// --announce); NoAnnounce removes matching ones (--no-announce). See
	// mesh.AddrPolicy.
	Announce, NoAnnounce []string
	// RelayService relays for nodes behind NATs once this node is
	// publicly reachable (--relay-service).
	RelayService bool
	// NATPortMap asks the router for a port mapping (--nat-portmap).
	NATPortMap bool
	// Reachability overrides AutoNAT: auto, public or private
	// (--reachability).
	Reachability string
	// Version is reported in heartbeats and the API.
	Version string
	// NoPeersAfter is how long after start a node that has found no peer
	// reports the no_peers problem.
	NoPeersAfter time.Duration
	// ProblemInterval is how often the node looks for problems (another
	// network or major, unreachable bootstrap peers, no peers, clock).
	ProblemInterval time.Duration
	// SyncWrites commits every store write with fsync; off only in tests.
	SyncWrites bool
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Cores, if set, is told when the node starts work that wants every
	// core (a guest run and its proof, a bundle's batch verification),
	// and when it ends: `proofmesh
	// node` keeps one P while it only gossips and takes every core back
	// for that (internal/residency.Procs). Nil: nothing to tell.
	Cores CoreClaimer
}

// CoreClaimer is told of work that wants every core. Claim is called
// when it starts; the release it returns when it ends.
type CoreClaimer interface {
	Claim() (release func())
}

// DefaultConfig returns a complete configuration; set DataDir.
func DefaultConfig() Config {
	mc := mesh.DefaultConfig() // the network side's defaults live there
	return Config{
		ListenAddrs:           mc.ListenAddrs,
		APIAddr:               "127.0.0.1:8080",
		API:                   api.DefaultConfig(),
		HeartbeatInterval:     mc.HeartbeatInterval,
		DHT:                   mc.DHT,
		SandboxWorkers:        2, // WASM runs at once; more queue
		KeepConns:             mc.ConnHigh,
		MaxConns:              mc.ConnLimit,
		P2PMemoryMB:           int(mc.ResourceMemory >> 20),
		ProverConcurrency:     1,                  // gnark uses every core: one proof at a time
		TaskRetention:         7 * 24 * time.Hour, // finished tasks, their results and bundles, for a week
		ObservedTaskRetention: time.Hour,          // those of others' tasks this node only followed
		Version:               buildinfo.Version(),
		NoPeersAfter:          30 * time.Second, // then say that nobody was found
		ProblemInterval:       2 * time.Second,  // problems appear and clear within 2 s
		RelayService:          mc.RelayService,
		Reachability:          mc.Reachability,
		SyncWrites:            true,
	}
}

// ErrInvalidConfig is wrapped by every Config.Validate error.
var ErrInvalidConfig = errors.New("invalid node config")

// Validate refuses a configuration that cannot work.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if c.DataDir == "" {
		return bad("--data-dir is required")
	}
	if len(c.ListenAddrs) == 0 {
		return bad("at least one --listen address is required")
	}
	if c.HeartbeatInterval < 100*time.Millisecond || c.HeartbeatInterval > time.Hour {
		return bad("--heartbeat-interval %s not within 100ms..1h", c.HeartbeatInterval)
	}
	if c.MaxConns < 16 || c.MaxConns > 10000 {
		return bad("--max-conns %d not within 16..10000", c.MaxConns)
	}
	if c.KeepConns < 8 {
		return bad("--keep-conns %d: need at least 8", c.KeepConns)
	}
	if c.KeepConns > c.MaxConns {
		return bad("--keep-conns %d above --max-conns %d: lower --keep-conns or raise --max-conns", c.KeepConns, c.MaxConns)
	}
	if c.P2PMemoryMB < 64 || c.P2PMemoryMB > 1<<20 {
		return bad("--p2p-memory-mb %d not within 64..1048576", c.P2PMemoryMB)
	}
	if !protocol.ValidVersion(c.Version) {
		return bad("version %q must be 1-64 of [A-Za-z0-9._+/-] (peers refuse heartbeats carrying anything else)", c.Version)
	}
	if c.NoPeersAfter <= 0 || c.ProblemInterval <= 0 {
		return bad("no-peers delay %s and problem interval %s must be positive", c.NoPeersAfter, c.ProblemInterval)
	}
	if _, err := mesh.ParseAddrFlags("--announce", c.Announce); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if _, err := mesh.ParseAddrFlags("--no-announce", c.NoAnnounce); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	switch c.Reachability {
	case "", mesh.ReachabilityAuto, mesh.ReachabilityPublic, mesh.ReachabilityPrivate:
	default:
		return bad("--reachability %q: want auto, public or private", c.Reachability)
	}
	// A new user's walkthrough of 2026-12-07 had a node retry a denied
	// bootstrap peer forever ("gater disallows connection to peer").
	if boot, err := bootstrap.ParseAddrs(c.Bootstrap); err == nil {
		for _, d := range c.DenyPeers {
			id, err := peer.Decode(d) // a peer id in either of its forms (base58, CID)
			if err != nil {
				continue // New names it
			}
			if slices.ContainsFunc(boot, func(b peer.AddrInfo) bool { return b.ID == id }) {
				return bad("--bootstrap peer %s is also in --deny-peer (as %s)", id, d)
			}
		}
	}
	if c.TaskRetention < 0 || c.ObservedTaskRetention < 0 {
		return bad("--task-retention %s and the observed tasks' retention %s must not be negative", c.TaskRetention, c.ObservedTaskRetention)
	}
	if c.SandboxWorkers < 1 || c.ProverConcurrency < 1 {
		return bad("sandbox workers and prover concurrency must be at least 1")
	}
	if c.APIAddr != "" {
		host, _, err := net.SplitHostPort(c.APIAddr)
		if err != nil {
			return bad("--api %q: %v (want host:port)", c.APIAddr, err)
		}
		_ = host
		if err := c.API.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}

// loopbackOnly reports whether an API address only listens on loopback.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
