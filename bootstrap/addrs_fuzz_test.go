package bootstrap

import (
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// FuzzParseAddrs feeds bootstrap address lists (network.json's bootstrap,
// --bootstrap flags; one entry a line, entries comma-separated within) to
// ParseAddrs: it accepts a list only when every entry names a peer, and
// then returns each peer once, with addresses that print back to entries
// ParseAddrs accepts for the same peer.
func FuzzParseAddrs(f *testing.F) {
	const id = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
	f.Add("/ip4/1.2.3.4/tcp/4001/p2p/" + id + "\n/ip4/1.2.3.4/udp/4001/quic-v1/p2p/" + id)
	f.Add("/dns4/boot.example/tcp/4001/p2p/" + id + ", ,/ip6/::1/tcp/1/p2p/" + id)
	f.Add("/ip4/1.2.3.4/tcp/4001")
	f.Add("/p2p/" + id)
	f.Add("not an address")
	f.Fuzz(func(t *testing.T, list string) {
		infos, err := ParseAddrs(strings.Split(list, "\n"))
		if err != nil {
			return
		}
		seen := map[peer.ID]bool{}
		for _, ai := range infos {
			if ai.ID == "" || seen[ai.ID] {
				t.Fatalf("peer %q returned empty or twice: %v", ai.ID, infos)
			}
			seen[ai.ID] = true
			p2p, err := peer.AddrInfoToP2pAddrs(&ai)
			if err != nil {
				t.Fatalf("returned %v does not print back: %v", ai, err)
			}
			var entries []string
			for _, m := range p2p {
				entries = append(entries, m.String())
			}
			if len(entries) == 0 {
				continue
			}
			again, err := ParseAddrs(entries)
			if err != nil || len(again) != 1 || again[0].ID != ai.ID || len(again[0].Addrs) != len(ai.Addrs) {
				t.Fatalf("%v printed as %q parses to %v, %v", ai, entries, again, err)
			}
		}
	})
}
