package mesh

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proofmesh/proofmesh/protocol"
)

type metrics struct {
	hbAccepted prometheus.Counter
	hbRefused  *prometheus.CounterVec // reason, verdict
	gossip     *prometheus.CounterVec // topic, verdict
	interval   prometheus.Gauge
	blobs      *prometheus.CounterVec // direction, outcome
	admissions *prometheus.CounterVec // outcome
	evictions  *prometheus.CounterVec // reason
	liveness   *prometheus.CounterVec // event
	// localHealth is the failure detector's local health score.
	localHealth prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, t *table, connected func() int) *metrics {
	m := &metrics{
		hbAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "proofmesh_heartbeats_received_total",
			Help: "Heartbeats from peers that passed validation.",
		}),
		hbRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proofmesh_heartbeats_rejected_total",
			Help: "Heartbeats refused, by reason and gossip verdict (reject penalises the sender, ignore does not).",
		}, []string{"reason", "verdict"}),
		gossip: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proofmesh_gossip_messages_total",
			Help: "Gossip messages validated, by topic kind and verdict: accept, reject, ignore, ignore_replay (old news another peer sent: stale, a duplicate or outside the clock skew; its origin's rate token given back), rate_limited (its origin over its topic rate: not validated), denied.",
		}, []string{"topic", "verdict"}),
		interval: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "proofmesh_heartbeat_interval_seconds",
			Help: "This node's current heartbeat interval (stretched as the network grows).",
		}),
		blobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proofmesh_blob_transfers_total",
			Help: "Blob and results stream transfers, by direction (served, fetched, results_served, results_fetched) and outcome.",
		}, []string{"direction", "outcome"}),
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proofmesh_peer_admissions_total",
			Help: "New identities seen in heartbeats, by outcome (admitted, admitted_direct, refused_rate: the forwarding peer is over its admission rate, refused_full: the table is full of online rows).",
		}, []string{"outcome"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proofmesh_peer_evictions_total",
			Help: "Rows removed from the live peer table, by reason (capacity, offline_retention, tombstone_retention).",
		}, []string{"reason"}),
		liveness: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proofmesh_liveness_events_total",
			Help: "Failure detection, by event: probe_ok, probe_failed, probe_spared (a random probe left out: the peer sent this node a gossip RPC within the last probe interval; never at a local health score above 0, for a suspect, or when the last random ping sent is 4 intervals old), heard (a ping that timed out while the peer's gossip kept arriving: no evidence), vouched (a ping that timed out, but another node's probe reached the peer: no evidence), indirect_served, indirect_refused, indirect_busy, indirect_bad_request (probes run for others), claimed (a suspicion this node gossiped), claim_taken (another's suspicion taken as a hint), claim_not_taken (adds nothing to a suspicion held here, not forwarded; or no room to hold it, forwarded), refuted (a suspicion of this node answered), down, up, up_contested (a heartbeat below the seq of a claim of the peer's death, dropped here while the peer was offline, listed it online again: suspected again, at most once per peer per 10 minutes), contest_not_held (the same, with no room for another suspicion), trimmed (a connection a connection manager closed, ours or the peer's: no evidence), lost_dropped (a lost connection not looked at: the queue to the detector was full).",
		}, []string{"event"}),
		localHealth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "proofmesh_liveness_local_health",
			Help: "The failure detector's local health score: 0 when this node's pings are answered in time, up to its maximum (8) when its own pings time out over live connections; its probe timeout and suspicion waits are (1+score) times the configured ones.",
		}),
	}
	reg.MustRegister(m.hbAccepted, m.hbRefused, m.gossip, m.interval, m.blobs, m.admissions, m.evictions, m.liveness, m.localHealth)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "proofmesh_peer_table_rows",
		Help: "Rows in the live peer table, tombstones included (bounded by the mesh's MaxPeers).",
	}, func() float64 { return float64(t.len()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "proofmesh_connected_peers",
		Help: "Peers this node holds a libp2p connection to (above --keep-conns, the connection manager trims them to a quarter of it besides the heartbeat topic's gossip mesh, at most 8, and bootstrap peers and relays).",
	}, func() float64 { return float64(connected()) }))
	for _, st := range []protocol.PeerStatus{protocol.StatusOnline, protocol.StatusStale, protocol.StatusOffline, protocol.StatusDeleted} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "proofmesh_peers",
			Help:        "Peers in the live peer table, by status.",
			ConstLabels: prometheus.Labels{"status": string(st)},
		}, func() float64 { return float64(t.counts(time.Now())[st]) }))
	}
	return m
}
