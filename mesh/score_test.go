package mesh

import "testing"

// The peer score keeps a message's delivery record while copies of it can
// still arrive from honest peers: for as long as gossipsub offers it in
// IHAVE (its message cache's history, one heartbeat each) and waits for an
// IWANT's answer. A shorter record would let a second sender of an invalid
// message go unpenalised; a much longer one is memory (bench/README.md).
func TestDeliveryRecordsOutliveGossipsWindow(t *testing.T) {
	g := gossipParams()
	window := g.HistoryLength*int(g.HeartbeatInterval) + int(g.IWantFollowupTime)
	m := &Mesh{cfg: DefaultConfig()}
	ttl := m.scoreParams().SeenMsgTTL
	if int(ttl) < 2*window {
		t.Fatalf("delivery records kept %s, gossip's window is %d ns: keep them at least twice that", ttl, window)
	}
	if ttl > 60e9 {
		t.Fatalf("delivery records kept %s: every message a node sees costs a record for that long", ttl)
	}
}
