package mesh

import (
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// The peer score keeps a message's delivery record (who sent it, and
// whether it was valid) as long as gossipsub's seen cache keeps its id
// nominally (TimeCacheDuration, 2 minutes). A copy arriving while the id
// is seen is dropped unvalidated as a duplicate, and only the record can
// then charge its sender for an invalid message (P4). Shortening the
// records alone (tried in this round, to save the simulation's heap) let
// a relay forward an invalid message, unpunished, between the two expiries:
// a review reproduced it on mocknet (bench/README.md, "Where the tail
// goes"). Gossipsub drops an expired id only at its sweep, once a minute,
// so an id outlives its record by up to that minute; a copy then is
// dropped unvalidated and costs its sender nothing, and this node nothing
// but its bytes (docs/SECURITY.md).
func TestDeliveryRecordsOutliveTheSeenCache(t *testing.T) {
	m := &Mesh{cfg: DefaultConfig()}
	records := m.scoreParams().SeenMsgTTL
	if records == 0 {
		records = pubsub.TimeCacheDuration // the score's default
	}
	seen := pubsub.TimeCacheDuration // New sets no WithSeenMessagesTTL
	if records < seen {
		t.Fatalf("delivery records kept %s, message ids %s: a late copy of an invalid message would cost its sender nothing", records, seen)
	}
}
