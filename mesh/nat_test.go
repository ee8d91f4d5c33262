package mesh

import (
	"testing"

	dht "github.com/libp2p/go-libp2p-kad-dht"
)

// The DHT serves at once on private and loopback networks (AutoNAT never
// says public there), follows AutoNAT on public ones, and obeys a forced
// reachability.
func TestDHTModeByReachability(t *testing.T) {
	for _, tc := range []struct {
		name         string
		reachability string
		network, own []string
		want         dht.ModeOpt
	}{
		{"loopback testnet", ReachabilityAuto, []string{"/ip4/127.0.0.1/tcp/4001"}, []string{"/ip4/127.0.0.1/tcp/4002"}, dht.ModeServer},
		{"first node of a loopback testnet", ReachabilityAuto, nil, []string{"/ip4/127.0.0.1/tcp/4001"}, dht.ModeServer},
		{"compose testnet", ReachabilityAuto, []string{"/dns4/boot/tcp/4001"}, []string{"/ip4/172.18.0.5/tcp/4001", "/ip4/127.0.0.1/tcp/4001"}, dht.ModeServer},
		{"home node, public bootstrap", ReachabilityAuto, []string{"/ip4/1.1.1.1/tcp/4001"}, []string{"/ip4/192.168.1.20/tcp/4001", "/ip4/127.0.0.1/tcp/4001"}, dht.ModeAuto},
		{"cloud node, public bootstrap", ReachabilityAuto, []string{"/dns4/boot.example.org/tcp/4001"}, []string{"/ip4/8.8.4.4/tcp/4001"}, dht.ModeAuto},
		{"forced public", ReachabilityPublic, []string{"/ip4/1.1.1.1/tcp/4001"}, []string{"/ip4/192.168.1.20/tcp/4001"}, dht.ModeServer},
		{"forced private on a private network", ReachabilityPrivate, []string{"/dns4/boot/tcp/4001"}, []string{"/ip4/10.0.0.5/tcp/4001"}, dht.ModeClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Reachability = tc.reachability
			cfg.NetworkAddrs = mas(t, tc.network...)
			if got := dhtMode(&cfg, mas(t, tc.own...)); got != tc.want {
				t.Fatalf("mode %v, want %v", got, tc.want)
			}
		})
	}
}
