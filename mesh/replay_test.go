package mesh

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
)

// A peer that kept an honest node's old heartbeats sends them, faster than
// the origin's topic rate, to a node that never saw them (as it would once
// a node has forgotten their ids). Each copy is refused as old news and
// gives back the origin's token, so the origin's fresh heartbeats, sent
// directly, are neither rate limited nor counted as its flood. Before, the
// replays spent the origin's bucket (a review reproduced it): its fresh
// heartbeats were IGNOREd at the victim, which listed it offline and
// lowered its gossip score, at no cost to the replayer.
func TestReplaysDoNotSpendTheOriginsRate(t *testing.T) {
	const n = 60 // 3 times the heartbeat topic's burst
	pub, corpus := heartbeatCorpus(t, n)

	victim := newTestMesh(t, "testnet", func(c *Config) { c.Self, c.DHT = nil, false })
	connect(t, pub, victim)
	eventually(t, 10*time.Second, "the victim hears the publisher", func() bool { return statusOf(victim, pub.ID()) == "online" })
	_, send := rawGossip(t, victim)
	for i := 0; i < n; i += 6 { // 30 a second, for 2 s
		send(corpus[i:min(i+6, n)]...)
		time.Sleep(200 * time.Millisecond)
	}
	count := func(verdict string) float64 { return heartbeatVerdicts(victim, verdict) }
	eventually(t, 5*time.Second, "every replay looked at", func() bool { return count("ignore_replay")+count("rate_limited") >= n })
	seq := victim.table.lastSeq(pub.ID())
	eventually(t, 5*time.Second, "the publisher's next heartbeat accepted", func() bool { return victim.table.lastSeq(pub.ID()) > seq })
	if limited := count("rate_limited"); limited != 0 {
		t.Errorf("%v heartbeats of the publisher rate limited (%v replays refused as old news): %d replays of its old ones spent its bucket", limited, count("ignore_replay"), n)
	}
	if pen := victim.floods.penalty(pub.ID(), time.Now()); pen != 0 {
		t.Errorf("the publisher penalised %.1f as a flooder for another peer's replays", pen)
	}
}

// A relay that sent many of an origin's old messages is still listened
// to about it. Gossipsub marks a message id seen before the validators
// run, so a budget of old news per relay that refused its copies
// unlooked-at (tried in this round) lost the origin's next fresh message
// whenever that relay's copy came first: the same message from an honest
// relay right after was dropped as a duplicate (a third review).
func TestOldNewsFromARelayDoesNotHideItsFreshMessages(t *testing.T) {
	const n = 45
	pub, corpus := heartbeatCorpus(t, n+2)
	victim := newTestMesh(t, "testnet", func(c *Config) { c.Self, c.DHT = nil, false })
	_, viaR1 := rawGossip(t, victim)
	_, viaR2 := rawGossip(t, victim)
	count := func(verdict string) float64 { return heartbeatVerdicts(victim, verdict) }
	viaR2(corpus[n])
	eventually(t, 5*time.Second, "the publisher's heartbeat accepted", func() bool { return count("accept") == 1 })
	seq := victim.table.lastSeq(pub.ID())
	viaR1(corpus[:n]...) // older than what the victim holds: old news
	eventually(t, 5*time.Second, "the old ones looked at", func() bool { return count("ignore_replay")+count("rate_limited") >= n })
	viaR1(corpus[n+1]) // fresh: first through R1, then through R2
	viaR2(corpus[n+1])
	eventually(t, 5*time.Second, "the fresh heartbeat accepted", func() bool { return victim.table.lastSeq(pub.ID()) > seq })
}

// heartbeatCorpus starts a publisher and a node that keeps copies of the
// publisher's first n heartbeats, as any peer of it can, and returns both.
func heartbeatCorpus(t *testing.T, n int) (*Mesh, []*pb.Message) {
	t.Helper()
	pub := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false })
	tr := &corpusTracer{}
	collector := newTestMesh(t, "testnet", func(c *Config) { c.Self, c.DHT, c.Tracer = nil, false, tr })
	tr.watch(pub.ID())
	connect(t, pub, collector)
	eventually(t, 30*time.Second, "a corpus of the publisher's heartbeats", func() bool { return tr.delivered() >= n })
	return pub, tr.corpus()[:n]
}

// heartbeatVerdicts is how many heartbeats m's validator counted under
// verdict.
func heartbeatVerdicts(m *Mesh, verdict string) float64 {
	return testutil.ToFloat64(m.met.gossip.WithLabelValues(KindHeartbeat, verdict))
}

// rawGossip connects a bare libp2p host to victim and returns its id and a
// function that sends messages to victim in one gossipsub RPC, as any peer
// can.
func rawGossip(t *testing.T, victim *Mesh) (peer.ID, func(...*pb.Message)) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: victim.ID(), Addrs: victim.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(ctx, victim.ID(), pubsub.GossipSubID_v11)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return h.ID(), func(ms ...*pb.Message) {
		t.Helper()
		rpc, err := proto.Marshal(&pb.RPC{Publish: ms})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(rpc))), rpc...)); err != nil {
			t.Fatal(err)
		}
	}
}

// corpusTracer keeps copies of the heartbeats one origin's messages that
// a node delivers, until corpus is called.
type corpusTracer struct {
	nopTracer
	mu     sync.Mutex
	from   peer.ID
	msgs   []*pb.Message
	frozen bool
}

func (c *corpusTracer) watch(p peer.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.from = p
}

func (c *corpusTracer) delivered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *corpusTracer) corpus() []*pb.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = true
	return append([]*pb.Message(nil), c.msgs...)
}

func (c *corpusTracer) DeliverMessage(m *pubsub.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen || c.from == "" || m.GetFrom() != c.from || m.GetTopic() != TopicName("testnet", KindHeartbeat) {
		return
	}
	c.msgs = append(c.msgs, proto.Clone(m.Message).(*pb.Message))
}
