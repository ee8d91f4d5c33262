package mesh

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"
)

// BenchmarkHeartbeatHandling measures the CPU and allocations a node
// spends on one heartbeat from a known peer in its validator (the origin's
// rate limit, decoding, the protocol's checks, the peer table), against
// gossipsub's own signature check of the same signed message (pubsub's
// verifyMessageSignature, step for step) as the anchor, in one run:
//
//	validator-ns/hb, validator-allocs/hb   proofmesh's heartbeat validator
//	sig-ns/hb, sig-allocs/hb                gossipsub's signature check
//	validator/sig                           the ratio of the two times
//
// Every message is a distinct, validly signed heartbeat (492 B like the
// delivery benchmark's) of one of many origins, each already in the peer
// table, so each is accepted. Times are wall clock on one goroutine; on
// a shared machine compare the ratio, and the allocations, which do not
// depend on the load.
func BenchmarkHeartbeatHandling(b *testing.B) {
	mn := mocknet.New()
	defer mn.Close()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		b.Fatal(err)
	}
	h, err := mn.AddPeer(key, mustAddr(b, "/ip4/127.0.0.1/tcp/1"))
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NetworkID, cfg.Host, cfg.DHT, cfg.Colocation = benchNetwork, h, false, true
	// Origins are admitted at once: the benchmark measures known peers.
	origins := max(100, b.N/10+1) // ≤ 11 heartbeats each: within the per-origin rate limit's burst
	cfg.MaxPeers, cfg.NewPeerRate, cfg.NewPeerBurst = origins+1, 1e9, 1e9
	m, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	validate := m.validator(KindHeartbeat, func(ctx context.Context, from peer.ID, data []byte) (any, error) {
		return nil, m.validateHeartbeat(ctx, from, data)
	}, nil)
	topic := TopicName(benchNetwork, KindHeartbeat)

	type origin struct {
		id  peer.ID
		key crypto.PrivKey
	}
	os := make([]origin, origins)
	for i := range os {
		k, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			b.Fatal(err)
		}
		os[i].key = k
		os[i].id, _ = peer.IDFromPrivateKey(k)
	}
	seq := uint64(time.Now().UnixMicro())
	message := func(o origin) *pubsub.Message {
		seq++
		hb := benchHeartbeat()
		hb.NodeID, hb.Seq, hb.Time, hb.IntervalMS, hb.PolicyVersion = o.id.String(), seq, time.Now().UnixMilli(), 1000, cfg.Policy.Version
		data, err := hb.Encode()
		if err != nil {
			b.Fatal(err)
		}
		seqno := make([]byte, 8)
		binary.BigEndian.PutUint64(seqno, seq)
		msg := &pb.Message{From: []byte(o.id), Data: data, Seqno: seqno, Topic: &topic}
		raw, err := proto.Marshal(msg)
		if err != nil {
			b.Fatal(err)
		}
		if msg.Signature, err = o.key.Sign(append([]byte(pubsub.SignPrefix), raw...)); err != nil {
			b.Fatal(err)
		}
		return &pubsub.Message{Message: msg, ReceivedFrom: o.id}
	}
	// Every origin enters the table first.
	for _, o := range os {
		msg := message(o)
		if res := validate(context.Background(), o.id, msg); res != pubsub.ValidationAccept {
			b.Fatalf("warm-up heartbeat: verdict %v", res)
		}
	}
	msgs := make([]*pubsub.Message, b.N)
	for i := range msgs {
		msgs[i] = message(os[i%len(os)])
	}
	sigCheck := func(msg *pb.Message) error { // pubsub's verifyMessageSignature
		pk, err := peer.ID(msg.From).ExtractPublicKey()
		if err != nil {
			return err
		}
		xm := proto.CloneOf(msg)
		xm.Signature, xm.Key = nil, nil
		raw, err := proto.Marshal(xm)
		if err != nil {
			return err
		}
		ok, err := pk.Verify(append([]byte(pubsub.SignPrefix), raw...), msg.Signature)
		if err != nil || !ok {
			return fmt.Errorf("bad signature (%v)", err)
		}
		return nil
	}

	var ms runtime.MemStats
	mallocs := func() uint64 { runtime.ReadMemStats(&ms); return ms.Mallocs }
	b.ResetTimer()
	a0, t0 := mallocs(), time.Now()
	for _, msg := range msgs {
		if err := sigCheck(msg.Message); err != nil {
			b.Fatal(err)
		}
	}
	sigTime, sigAllocs := time.Since(t0), mallocs()-a0
	a0, t0 = mallocs(), time.Now()
	for _, msg := range msgs {
		if res := validate(context.Background(), peer.ID(msg.From), msg); res != pubsub.ValidationAccept {
			b.Fatalf("verdict %v", res)
		}
	}
	valTime, valAllocs := time.Since(t0), mallocs()-a0
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(sigTime.Nanoseconds())/n, "sig-ns/hb")
	b.ReportMetric(float64(sigAllocs)/n, "sig-allocs/hb")
	b.ReportMetric(float64(valTime.Nanoseconds())/n, "validator-ns/hb")
	b.ReportMetric(float64(valAllocs)/n, "validator-allocs/hb")
	b.ReportMetric(float64(valTime)/float64(sigTime), "validator/sig")
	b.ReportMetric(0, "ns/op")
}

func mustAddr(tb testing.TB, s string) ma.Multiaddr {
	tb.Helper()
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}
