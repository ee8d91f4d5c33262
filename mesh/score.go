package mesh

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// scoreParams are the gossipsub v1.1 peer-scoring parameters. The weight
// that matters most is P4, invalid message deliveries: a peer that forwards
// forged, malformed, policy-breaking messages or results whose proof does
// not verify loses score quadratically and is soon graylisted. The
// application adds its own opinion (verified and rejected results).
func (m *Mesh) scoreParams() *pubsub.PeerScoreParams {
	app := func(p peer.ID) float64 {
		s := -m.floods.penalty(p, time.Now())
		if m.cfg.AppScore != nil {
			s += m.cfg.AppScore(p)
		}
		return s
	}
	topics := map[string]*pubsub.TopicScoreParams{}
	for _, kind := range []string{KindHeartbeat, KindLeave, KindLiveness, KindTasks, KindResults} {
		topics[TopicName(m.cfg.NetworkID, kind)] = &pubsub.TopicScoreParams{
			SkipAtomicValidation: true,
			TopicWeight:          1,
			// P1: a little credit for time in the mesh, capped.
			TimeInMeshWeight:  0.01,
			TimeInMeshQuantum: time.Second,
			TimeInMeshCap:     300,
			// P4: each invalid message costs weight × count²; decays
			// to a tenth in about 20 minutes.
			InvalidMessageDeliveriesWeight: -100,
			InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
		}
	}
	p := &pubsub.PeerScoreParams{
		Topics:            topics,
		AppSpecificScore:  app,
		AppSpecificWeight: 1,
		// P6: many peers behind one IP is a Sybil signal, except on a
		// local testnet where every node is 127.0.0.1.
		IPColocationFactorWeight:    -20,
		IPColocationFactorThreshold: 8,
		// P7: protocol misbehaviour (GRAFT spam and broken promises).
		// Tolerant: under load an honest peer misses IWANT deadlines, and
		// a 200-node mocknet collapsed with weight -10 over threshold 6
		// (bench/README.md). Here a peer needs about 45 broken promises
		// within the decay window to be graylisted.
		BehaviourPenaltyWeight:    -0.5,
		BehaviourPenaltyThreshold: 20,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               10 * time.Minute,
		// As long as gossipsub nominally keeps the message's id
		// (seenTTL), not longer: a copy validated again while its old
		// record is present is not charged a second time (P4), while one
		// validated with the record gone opens a new one and is. Both
		// are dropped only at sweeps, once a minute on timers of their
		// own, so either can outlive the other by up to seenSweep, as
		// with gossipsub's defaults (docs/SECURITY.md).
		SeenMsgTTL: seenTTL(m.cfg.ClockSkew),
	}
	if m.cfg.Colocation {
		p.IPColocationFactorWeight = 0
	}
	return p
}

// scoreThresholds satisfy Graylist ≤ Publish ≤ Gossip ≤ 0: one invalid
// message puts a peer at the gossip threshold, two past graylisting.
func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             -100,
		PublishThreshold:            -200,
		GraylistThreshold:           -300,
		AcceptPXThreshold:           10,
		OpportunisticGraftThreshold: 5,
	}
}
