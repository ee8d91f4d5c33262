package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/sandbox"
	"github.com/proofmesh/proofmesh/store"
	"github.com/proofmesh/proofmesh/zk"
)

// Node is a running proofmesh node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	key     crypto.PrivKey
	id      peer.ID
	network *bootstrap.Network
	reg     protocol.Registry
	caps    protocol.Capabilities
	token   string
	started time.Time

	db      *store.DB
	mesh    *mesh.Mesh
	runs    *runGate // this node's task runs, in turn across submitters
	keeper  *bootstrap.Keeper
	sb      *sandbox.Sandbox
	keys    *zk.KeySet
	prover  *zk.Prover
	promReg *prometheus.Registry
	met     *nodeMetrics

	rep *reputation
	lc  *driver // the task lifecycle
	// lastCreated is the Created of the last task submitted here (unix
	// ms): each new one is above it (created).
	lastCreated atomic.Int64
	// problems are what keeps the node from joining or working well;
	// bootPeers its bootstrap peers (self excluded).
	problems  problems
	bootPeers []peer.AddrInfo
	// tamper, set only by tests, alters a result before it is sealed: a
	// misbehaving executor.
	tamper func(*protocol.Result)
	// rankHook, set only by tests, reorders the ranked candidates of a
	// submission (to choose which node a fault hits).
	rankHook func([]string) []string
	// blobHook, set only by tests, answers blob requests instead of the
	// store: a peer that serves other bytes under a hash.
	blobHook func(hash string) ([]byte, bool)
	// dropResult, set only by tests, makes the results validator ignore
	// a gossiped result it returns true for, as gossipsub drops a message
	// whose validation is throttled.
	dropResult func(*protocol.Result) bool
	// skipSelfCheck, set only by tests, makes the node publish its results
	// without validating them first, as a malicious node would.
	skipSelfCheck bool

	authSeenMu sync.Mutex
	authSeen   map[string]time.Time // credential@address -> last audited success

	apiSrv *http.Server
	apiLn  net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New starts a node: it initialises the data dir if needed, checks the
// node's own capabilities against the network's policy, opens the store,
// joins the mesh, and serves the API.
func New(ctx context.Context, cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: log, started: time.Now(), rep: newReputation()}
	n.lc = newDriver(n)
	n.network = cfg.Network
	if n.network == nil {
		n.network = bootstrap.DefaultNetwork()
	}
	n.reg = n.network.Registry()

	if _, err := Init(cfg.DataDir); err != nil {
		return nil, err
	}
	if n.key, err = LoadIdentity(cfg.DataDir); err != nil {
		return nil, err
	}
	n.id, _ = peer.IDFromPrivateKey(n.key)
	n.log = log.With("node", shortID(n.id))
	n.token = cfg.APIToken
	if n.token == "" {
		if n.token, err = LoadToken(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	if cfg.APIAddr != "" && !loopbackOnly(cfg.APIAddr) && n.token == "" {
		return nil, fmt.Errorf("%w: refusing to serve the API on %s beyond loopback without a token", ErrInvalidConfig, cfg.APIAddr)
	}
	if n.caps, err = n.network.Policy.Check(cfg.Declared.Capabilities()); err != nil {
		return nil, fmt.Errorf("this node's capabilities: %w", err)
	}

	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	if n.db, err = store.Open(filepath.Join(cfg.DataDir, StoreFile), store.Options{NoSync: !cfg.SyncWrites}); err != nil {
		return nil, err
	}
	closers = append(closers, func() { _ = n.db.Close() })

	if cfg.KeysDir != "" {
		n.keys, err = zk.LoadKeys(cfg.KeysDir)
	} else {
		n.keys, err = zk.DefaultKeys()
	}
	if err != nil {
		return nil, fmt.Errorf("groth16 keys: %w", err)
	}
	if err := n.checkPins(); err != nil {
		return nil, err
	}
	n.prover = zk.NewProver(n.keys, cfg.ProverConcurrency)

	sbc := sandbox.DefaultConfig()
	sbc.CacheDir = cfg.WasmCacheDir
	if sbc.CacheDir == "" {
		sbc.CacheDir = filepath.Join(cfg.DataDir, "wasm-cache")
	}
	sbc.Workers = cfg.SandboxWorkers
	if n.sb, err = sandbox.New(ctx, sbc); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	n.runs = newRunGate(cfg.SandboxWorkers)
	closers = append(closers, func() { _ = n.sb.Close(context.Background()) })

	n.promReg = prometheus.NewRegistry()
	n.promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.met = newNodeMetrics(n.promReg)

	infos, err := bootstrap.ParseAddrs(n.network.WithBootstrap(cfg.Bootstrap).Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("bootstrap addresses: %w", err)
	}
	infos = slices.DeleteFunc(infos, func(ai peer.AddrInfo) bool { return ai.ID == n.id })
	relays, err := bootstrap.ParseAddrs(n.network.Relays)
	if err != nil {
		return nil, fmt.Errorf("relay addresses: %w", err)
	}
	relays = slices.DeleteFunc(relays, func(ai peer.AddrInfo) bool { return ai.ID == n.id })

	mc := mesh.DefaultConfig()
	if err := reachConfig(&mc, &cfg, infos, relays); err != nil {
		return nil, err
	}
	mc.NetworkID = n.network.NetworkID
	mc.Key = n.key
	mc.ListenAddrs = cfg.ListenAddrs
	mc.Policy = n.network.Policy
	mc.HeartbeatInterval = cfg.HeartbeatInterval
	mc.DHT = cfg.DHT
	mc.Colocation = cfg.Colocation
	mc.ConnHigh, mc.ConnLow, mc.ConnLimit = cfg.KeepConns, cfg.KeepConns/4, cfg.MaxConns
	mc.ResourceMemory = int64(cfg.P2PMemoryMB) << 20
	mc.ResourceFDs = max(mc.ResourceFDs, cfg.MaxConns*3/2+64)
	mc.AppScore = n.rep.appScore
	mc.Blob = n.serveBlob
	mc.Results = n.serveResults
	mc.OnPeer = n.persistPeer
	mc.TrackChanges = true // flushLoop writes the table behind it
	for _, d := range cfg.DenyPeers {
		id, err := peer.Decode(d)
		if err != nil {
			return nil, fmt.Errorf("%w: deny list entry %q is not a peer id: %v", ErrInvalidConfig, d, err)
		}
		mc.Deny = append(mc.Deny, id)
	}
	// One of the network's own bootstrap peers on the deny list is left
	// out, with a warning (one given by --bootstrap is refused by
	// Validate).
	flagBoot, _ := bootstrap.ParseAddrs(cfg.Bootstrap)
	infos = slices.DeleteFunc(infos, func(ai peer.AddrInfo) bool {
		if !slices.Contains(mc.Deny, ai.ID) {
			return false
		}
		if !slices.ContainsFunc(flagBoot, func(b peer.AddrInfo) bool { return b.ID == ai.ID }) {
			log.Warn("a bootstrap peer of the network is on the deny list: not dialled", "peer", ai.ID)
		}
		return true
	})
	mc.Registerer = n.promReg
	mc.Logger = log
	mc.Version = cfg.Version
	if !cfg.BootstrapOnly {
		mc.Self = n.heartbeat
	}
	if mc.Restore, err = n.loadPeers(); err != nil {
		return nil, err
	}
	if n.mesh, err = mesh.New(ctx, mc); err != nil {
		return nil, err
	}
	n.rep.setKeep(func(p peer.ID) bool {
		_, listed := n.mesh.Peer(p)
		return listed || n.mesh.Connected(p)
	})
	closers = append(closers, func() { _ = n.mesh.Close() })
	n.ctx, n.cancel = context.WithCancel(context.Background())
	closers = append(closers, func() { n.cancel(); n.wg.Wait() })
	// The lifecycle's owner goroutine restores unfinished tasks before it
	// serves anything the topics deliver.
	n.wg.Add(1)
	go n.lc.loop()
	if err := n.joinTaskTopics(); err != nil {
		return nil, err
	}

	for _, ai := range infos {
		n.mesh.Host().ConnManager().Protect(ai.ID, "bootstrap")
	}
	n.bootPeers = infos
	n.keeper = bootstrap.Start(n.mesh, infos, bootstrap.DefaultBackoff(), log)
	closers = append(closers, n.keeper.Stop)

	n.wg.Add(2)
	go n.flushLoop()
	go n.problemLoop()

	if cfg.APIAddr != "" {
		if err := n.serveAPI(); err != nil {
			return nil, err
		}
	}
	n.audit(store.AuditEntry{Kind: "node.start", Actor: n.id.String(), Detail: fmt.Sprintf("network %s, version %s", n.network.NetworkID, cfg.Version)})
	n.log.Info("node started", "peer", n.id, "network", n.network.NetworkID, "api", n.APIAddr(), "token", TokenFingerprint(n.token))
	return n, nil
}

// reachConfig sets the mesh's NAT and address settings (DESIGN.md
// "Reaching nodes") from the node's flags, its bootstrap peers and the
// network's relays.
func reachConfig(mc *mesh.Config, cfg *Config, boot, relays []peer.AddrInfo) error {
	var err error
	if mc.Announce, err = mesh.ParseAddrFlags("--announce", cfg.Announce); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if mc.NoAnnounce, err = mesh.ParseAddrFlags("--no-announce", cfg.NoAnnounce); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	for _, ai := range slices.Concat(boot, relays) {
		mc.NetworkAddrs = append(mc.NetworkAddrs, ai.Addrs...)
	}
	mc.StaticRelays = relays
	mc.RelayService = cfg.RelayService
	mc.NATPortMap = cfg.NATPortMap
	if cfg.Reachability != "" {
		mc.Reachability = cfg.Reachability
	}
	return nil
}

// checkPins refuses keys whose verifying-key hashes differ from what the
// network pins: such a node would accept proofs nobody else accepts.
func (n *Node) checkPins() error { return CheckPinnedKeys(n.reg, n.keys) }

// ErrKeysNotPinned is a key set whose verifying keys are not the ones the
// network pins.
var ErrKeysNotPinned = errors.New("keys not pinned by the network")

// CheckPinnedKeys refuses a key set whose verifying keys differ from the
// hashes the registry pins for its groth16 types.
func CheckPinnedKeys(reg protocol.Registry, keys *zk.KeySet) error {
	for _, id := range reg.IDs() {
		tt := reg[id]
		if tt.Verification.Kind != protocol.VerifyGroth16 {
			continue
		}
		got, err := keys.VerifyingKeyHash(tt.Verification.Circuit)
		if err != nil {
			return fmt.Errorf("task type %s: %w", id, err)
		}
		if got != tt.Verification.VKHash {
			return fmt.Errorf("%w: task type %s: the network pins verifying key %s but these keys have %s", ErrKeysNotPinned, id, tt.Verification.VKHash, got)
		}
	}
	return nil
}

// ID returns the node's peer id.
func (n *Node) ID() peer.ID { return n.id }

// Mesh returns the node's mesh (tests and the testnet).
func (n *Node) Mesh() *mesh.Mesh { return n.mesh }

// Token returns the API token.
func (n *Node) Token() string { return n.token }

// APIAddr returns the API's listening address ("" when disabled).
func (n *Node) APIAddr() string {
	if n.apiLn == nil {
		return ""
	}
	return n.apiLn.Addr().String()
}

// Addrs returns the node's libp2p addresses with /p2p/<id>.
func (n *Node) Addrs() []string {
	var out []string
	for _, a := range n.mesh.Addrs() {
		out = append(out, a.String())
	}
	return out
}

func (n *Node) serveAPI() error {
	ln, err := net.Listen("tcp", n.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listen on %s: %w", n.cfg.APIAddr, err)
	}
	capped := api.Listen(ln, n.cfg.API.MaxConnsPerClient)
	n.apiLn = capped
	n.authSeen = map[string]time.Time{}
	h := api.Handler(n, api.Options{Token: n.token, Metrics: n.promReg, Logger: n.log, Audit: n.auditAuthFailure, AuditSuccess: n.auditAuthSuccess, CORSOrigins: n.cfg.CORSOrigins, Config: n.cfg.API})
	n.apiSrv = api.NewServer(h, n.cfg.API, capped)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.apiSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("api stopped", "err", err)
		}
	}()
	return nil
}

func (n *Node) auditAuthFailure(remote, path string) {
	n.audit(store.AuditEntry{Kind: "api.auth_failed", Actor: remote, Subject: path})
}

// maxAuthSeen bounds the credential@address pairs auditAuthSuccess
// remembers.
const maxAuthSeen = 1024

// auditAuthSuccess records a credential's first successful use from an
// address in each hour, by fingerprint: enough to reconstruct who used the
// API from where, without one entry per request.
func (n *Node) auditAuthSuccess(remote, credential string) {
	key := credential + "@" + remote
	now := time.Now()
	n.authSeenMu.Lock()
	last, seen := n.authSeen[key]
	if !seen && len(n.authSeen) >= maxAuthSeen {
		// Rows older than the hour say nothing any more; if every row
		// is recent, all go (each pair is audited again at its next
		// use, at the credential's request rate). A key holder using
		// ever new addresses (an IPv6 /64) had grown the map forever.
		for k, t := range n.authSeen {
			if now.Sub(t) > time.Hour {
				delete(n.authSeen, k)
			}
		}
		if len(n.authSeen) >= maxAuthSeen {
			clear(n.authSeen)
		}
	}
	if !seen || now.Sub(last) > time.Hour {
		n.authSeen[key] = now
	}
	n.authSeenMu.Unlock()
	if !seen || now.Sub(last) > time.Hour {
		n.audit(store.AuditEntry{Kind: "api.auth_ok", Actor: remote, Subject: credential})
	}
}

// heartbeat describes this node for the mesh's heartbeats.
func (n *Node) heartbeat() protocol.Heartbeat {
	running, waiting := n.sb.Load()
	load := float64(running+waiting+n.runs.waitingAll()) / float64(n.cfg.SandboxWorkers)
	nt, _ := n.caps[protocol.CapNodeType].(string)
	region, _ := n.caps[protocol.CapRegion].(string)
	return protocol.Heartbeat{
		Capabilities:  n.caps,
		PolicyVersion: n.network.Policy.Version,
		NodeType:      nt,
		Region:        region,
		Load:          min(load, 1),
		Health:        1,
		Version:       n.cfg.Version,
		TaskTypes:     n.served(),
	}
}

// served lists the task types this node offers to execute: none for
// bootstrap-only nodes and verifiers, otherwise every type of the
// registry. Whether the node meets a type's requirements is the ranking's
// call, so that a refusal names the unmet requirement.
func (n *Node) served() []string {
	if n.cfg.BootstrapOnly || n.caps[protocol.CapNodeType] == protocol.NodeTypeVerifier {
		return nil
	}
	return n.reg.IDs()
}

// serveResults answers the mesh's results requests: the signed results
// this node stored for a task (an equivocator's second one too), in a
// stable order.
func (n *Node) serveResults(id string) [][]byte {
	rs, err := n.db.Results(id)
	if err != nil {
		return nil
	}
	out := make([][]byte, 0, len(rs))
	for _, k := range slices.Sorted(maps.Keys(rs)) {
		out = append(out, rs[k])
	}
	return out
}

// serveBlob answers the mesh's blob requests: stored blobs (modules and
// large inputs of tasks this node knows) and proving keys.
func (n *Node) serveBlob(hash string) ([]byte, bool) {
	if n.blobHook != nil {
		return n.blobHook(hash)
	}
	if b, err := n.db.GetBlob(hash); err == nil {
		return b, true
	}
	for _, c := range n.keys.Circuits() {
		if h, err := n.keys.ProvingKeyHash(c); err == nil && h == hash && n.keys.HasProvingKey(c) {
			if b, err := n.keys.ProvingKeyBytes(c); err == nil {
				return b, true
			}
		}
	}
	return nil, false
}

// persistPeer writes a peer-table change worth keeping at once.
func (n *Node) persistPeer(p mesh.PeerInfo) {
	if err := n.db.PutPeer(n.peerRow(p)); err != nil {
		n.log.Warn("peer not persisted", "peer", p.ID, "err", err)
	}
	switch {
	case p.Status == protocol.StatusDeleted:
		n.audit(store.AuditEntry{Kind: "peer.left", Actor: p.ID.String(), Detail: p.LeaveReason})
		n.onPeerLeft(p.ID)
	case p.Status == protocol.StatusOffline && !p.DownAt.IsZero():
		// The failure detector's verdict (a suspicion not refuted): it was
		// audited as peer.joined until a walkthrough of 2026-12-07.
		n.audit(store.AuditEntry{Kind: "peer.down", Actor: p.ID.String(), Detail: "failure detector: suspicion not refuted"})
		n.wakeTasksOf(p.ID)
	case p.Status == protocol.StatusOffline:
		// No down mark: a probe answered and cleared it, while the last
		// heartbeat is still old enough to list the peer offline.
		n.audit(store.AuditEntry{Kind: "peer.up", Actor: p.ID.String(), Detail: "failure detector: probe answered"})
		n.wakeTasksOf(p.ID)
	default:
		// New, returned after being offline, or rejoined after a Leave.
		n.audit(store.AuditEntry{Kind: "peer.joined", Actor: p.ID.String()})
		n.wakeTasksOf(p.ID)
	}
}

func (n *Node) peerRow(p mesh.PeerInfo) store.Peer {
	row := store.Peer{
		ID: p.ID.String(), FirstSeen: p.FirstSeen, LastSeen: p.LastSeen, Status: p.Status,
		DeletedAt: p.DeletedAt, LeaveReason: p.LeaveReason, IntervalMS: p.Interval.Milliseconds(), Seq: p.Seq,
	}
	if p.Heartbeat != nil {
		row.Heartbeat, _ = json.Marshal(p.Heartbeat)
	}
	row.Verified, row.Invalid = n.rep.get(p.ID)
	return row
}

// loadPeers loads the reputation saved by an earlier run, and returns
// its peer table for the mesh to start from.
func (n *Node) loadPeers() ([]mesh.PeerInfo, error) {
	rows, err := n.db.ListPeers()
	if err != nil {
		return nil, fmt.Errorf("restore peer table: %w", err)
	}
	infos := make([]mesh.PeerInfo, 0, len(rows))
	for _, r := range rows {
		id, err := peer.Decode(r.ID)
		if err != nil {
			continue
		}
		info := mesh.PeerInfo{
			ID: id, FirstSeen: r.FirstSeen, LastSeen: r.LastSeen, DeletedAt: r.DeletedAt,
			LeaveReason: r.LeaveReason, Interval: time.Duration(r.IntervalMS) * time.Millisecond, Seq: r.Seq,
		}
		if !r.DeletedAt.IsZero() {
			info.LeaveTime = r.DeletedAt
		}
		if len(r.Heartbeat) > 0 {
			if hb, err := protocol.DecodeHeartbeat(r.Heartbeat); err == nil {
				info.Heartbeat = hb
				info.Capabilities, _ = n.network.Policy.CheckClaimed(hb.PolicyVersion, hb.Capabilities)
			}
		}
		n.rep.set(id, r.Verified, r.Invalid)
		infos = append(infos, info)
	}
	return infos, nil
}

// peerFlushInterval is how often the peer table's changes are written
// behind it. A crash loses at most this much of a peer's new settings,
// and at most 30 s of its routine heartbeats (last seen, seq, load: the
// mesh writes those behind every mesh.routinePersistEvery): soft state
// that the next heartbeats restore. Tasks, results and the audit chain are committed before they
// are acknowledged, as ever.
const peerFlushInterval = time.Second

// flushLoop writes the peer table's changes to the store every
// peerFlushInterval, or sooner when many rows changed.
func (n *Node) flushLoop() {
	defer n.wg.Done()
	t := time.NewTicker(peerFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.mesh.ChangesPending():
		}
		n.flushPeers()
	}
}

// flushPeers writes the rows that changed since the last flush, and
// deletes the rows the bounded live table dropped, in one transaction.
func (n *Node) flushPeers() { n.writePeers(n.mesh.Changes()) }

// flushAllPeers writes every row changed since it was last written, the
// routine ones included: the last batch before a stop.
func (n *Node) flushAllPeers() { n.writePeers(n.mesh.AllChanges()) }

func (n *Node) writePeers(changed []mesh.PeerInfo, removed []peer.ID) {
	rows := make([]store.Peer, 0, len(changed))
	for _, p := range changed {
		rows = append(rows, n.peerRow(p))
	}
	del := make([]string, 0, len(removed))
	for _, id := range removed {
		del = append(del, id.String())
	}
	if err := n.db.UpdatePeers(rows, del); err != nil {
		n.log.Warn("peer table not flushed", "rows", len(rows), "removed", len(del), "err", err)
	}
}

// Close leaves the network gracefully (a signed Leave), stops the API and
// every part, and closes the store. It is safe to call twice.
func (n *Node) Close(ctx context.Context) error {
	var errs []error
	n.once.Do(func() {
		// Stop taking work and let running tasks end first: a result
		// published after our Leave would come from a node its peers
		// already consider gone.
		if n.apiSrv != nil {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = n.apiSrv.Shutdown(sctx)
			cancel()
		}
		n.keeper.Stop()
		n.cancel()
		n.lc.closeWatchers()
		n.wg.Wait()
		if !n.cfg.BootstrapOnly {
			if err := n.mesh.Leave(ctx, "shutdown"); err != nil {
				errs = append(errs, err)
			}
		}
		// The mesh stops first, so that no heartbeat changes the table
		// after its last batch is written.
		errs = append(errs, n.mesh.Close())
		n.flushAllPeers()
		errs = append(errs, n.sb.Close(ctx))
		n.audit(store.AuditEntry{Kind: "node.stop", Actor: n.id.String()})
		errs = append(errs, n.db.Close())
	})
	return errors.Join(errs...)
}

// Kill stops the node abruptly, without a Leave: what a crash looks like
// to its peers (tests and fault drills).
func (n *Node) Kill() {
	n.once.Do(func() {
		if n.apiSrv != nil {
			_ = n.apiSrv.Close()
		}
		n.keeper.Stop()
		n.cancel()
		n.lc.closeWatchers()
		_ = n.mesh.Close()
		n.wg.Wait()
		_ = n.sb.Close(context.Background())
		_ = n.db.Close()
	})
}

func shortID(p peer.ID) string {
	s := p.String()
	if len(s) > 12 {
		return s[len(s)-8:]
	}
	return s
}

// audit appends an entry to the audit chain; concurrent writers share a
// commit.
func (n *Node) audit(e store.AuditEntry) {
	if _, err := n.db.AppendBatched(e); err != nil {
		n.log.Warn("audit entry not written", "kind", e.Kind, "err", err)
	}
}
