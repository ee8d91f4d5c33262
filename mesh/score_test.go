package mesh

import (
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// The peer score keeps a message's delivery record (who sent it, and
// whether it was valid) exactly as long as gossipsub's seen cache keeps its
// id nominally (seenTTL). A copy arriving while the id is seen is dropped
// unvalidated as a duplicate, and only the record can then charge its
// sender for an invalid message (P4): records shorter than the ids (tried
// in an earlier round, to save the simulation's heap) let a relay forward
// an invalid message, unpunished, between the two expiries, which a review
// reproduced on mocknet. Records longer than the ids (tried in this one)
// let a copy be validated again while its old record is present, and P4
// does not charge it a second time. Gossipsub drops expired ids, and the
// score expired records, only at sweeps once a minute on timers of their
// own, so either can outlive the other by up to that minute, as with
// gossipsub's defaults (docs/SECURITY.md). The ids are kept at least 2 ×
// the clock skew, so a copy replayed once they are forgotten is refused by
// its time.
func TestDeliveryRecordsLastAsLongAsTheSeenCache(t *testing.T) {
	for _, skew := range []time.Duration{time.Second, 30 * time.Second, 10 * time.Minute} {
		cfg := DefaultConfig()
		cfg.ClockSkew = skew
		m := &Mesh{cfg: cfg}
		records, seen := m.scoreParams().SeenMsgTTL, seenTTL(skew) // New passes seenTTL to WithSeenMessagesTTL
		if records < seen {
			t.Fatalf("skew %s: delivery records kept %s, message ids %s: a late copy of an invalid message would cost its sender nothing", skew, records, seen)
		}
		if records > seen {
			t.Fatalf("skew %s: delivery records kept %s, message ids %s: a copy validated again with its record present would not be charged again", skew, records, seen)
		}
		if seen < 2*skew {
			t.Fatalf("skew %s: message ids kept %s: a copy replayed once forgotten could still be within the skew of its time", skew, seen)
		}
	}
}

// A heartbeat replayed by a peer is dropped as a duplicate while
// gossipsub remembers its id (seenTTL), and once the id is forgotten it is
// validated again and refused by its time (IGNORE): delivered once, never
// forwarded again (it is refused by its sequence number too, but the
// time refuses every kind of message). The test shortens the clock skew so that the id is
// forgotten in seconds: with gossipsub's default of 2 minutes the second
// replay would still be a duplicate.
func TestReplayOnceForgottenIsRefusedByItsTime(t *testing.T) {
	t.Parallel() // waits for gossipsub's sweep, up to a minute
	const skew = 500 * time.Millisecond
	tr := &replayTracer{}
	victim := newTestMesh(t, "testnet", func(c *Config) {
		c.Self, c.DHT, c.ClockSkew, c.Tracer = nil, false, skew, tr
	})
	pub := newTestMesh(t, "testnet", func(c *Config) { c.DHT = false })
	tr.watch(pub.ID())
	connect(t, pub, victim)
	eventually(t, 10*time.Second, "a heartbeat of the publisher delivered", func() bool { return tr.captured() != nil })
	msg, first := tr.captured(), time.Now()

	rawSender, send := rawGossip(t, victim)
	replay := func() { send(msg) }

	replay()
	eventually(t, 5*time.Second, "the replay within the seen time dropped as a duplicate", func() bool {
		return tr.count(rawSender, "duplicate") == 1
	})
	// Forgotten after seenTTL, at gossipsub's next sweep of its seen
	// cache (once a minute): replay until a copy is validated.
	time.Sleep(time.Until(first.Add(seenTTL(skew))))
	for deadline := time.Now().Add(seenSweep + 10*time.Second); tr.count(rawSender, pubsub.RejectValidationIgnored) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("a replay %s after the first copy is still dropped as a duplicate (%d times): the seen time is not %s", time.Since(first).Round(time.Second), tr.count(rawSender, "duplicate"), seenTTL(skew))
		}
		replay()
		time.Sleep(time.Second)
	}
	if n := tr.count("", "delivered"); n != 1 {
		t.Fatalf("the heartbeat was delivered %d times", n)
	}
}

// replayTracer captures the first heartbeat the victim accepts from one
// publisher and counts what becomes of its copies, by the peer that sent
// each.
type replayTracer struct {
	nopTracer
	mu     sync.Mutex
	from   peer.ID
	msg    *pb.Message
	id     string
	counts map[[2]string]int
}

func (r *replayTracer) watch(p peer.ID) {
	r.mu.Lock()
	r.from = p
	r.mu.Unlock()
}

func (r *replayTracer) captured() *pb.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msg
}

func (r *replayTracer) count(by peer.ID, what string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[[2]string{string(by), what}]
}

func (r *replayTracer) note(msg *pubsub.Message, what string, capture bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.from == "" || msg.GetFrom() != r.from || msg.GetTopic() != TopicName("testnet", KindHeartbeat) {
		return
	}
	if r.msg == nil && capture {
		r.msg, r.id = proto.Clone(msg.Message).(*pb.Message), messageID(msg.Message)
	}
	if messageID(msg.Message) != r.id {
		return
	}
	if r.counts == nil {
		r.counts = map[[2]string]int{}
	}
	by := string(msg.ReceivedFrom)
	if what == "delivered" {
		by = ""
	}
	r.counts[[2]string{by, what}]++
}

func (r *replayTracer) DeliverMessage(msg *pubsub.Message)   { r.note(msg, "delivered", true) }
func (r *replayTracer) DuplicateMessage(msg *pubsub.Message) { r.note(msg, "duplicate", false) }
func (r *replayTracer) RejectMessage(msg *pubsub.Message, reason string) {
	r.note(msg, reason, false)
}
