package mesh

import (
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func mas(t *testing.T, ss ...string) []ma.Multiaddr {
	t.Helper()
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		out = append(out, a)
	}
	return out
}

func strs(addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

const relayAddr = "/ip4/198.51.100.9/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf/p2p-circuit"

func TestClassifyAddr(t *testing.T) {
	for in, want := range map[string]AddrClass{
		"/ip4/203.0.113.7/tcp/4001":                   AddrPrivate, // documentation range: not routable
		"/dns4/boot/tcp/4001":                         AddrPrivate, // a compose service name
		"/dns4/localhost/tcp/4001":                    AddrLoopback,
		"/ip4/8.8.8.8/udp/4001/quic-v1":               AddrPublic,
		"/ip6/2606:4700::1/tcp/4001":                  AddrPublic,
		"/dns4/node.example.org/tcp/4001":             AddrPublic,
		"/ip4/10.1.2.3/tcp/4001":                      AddrPrivate,
		"/ip4/192.168.1.20/udp/4001/quic-v1":          AddrPrivate,
		"/ip4/172.18.0.5/tcp/4001":                    AddrPrivate,
		"/ip4/100.64.0.1/tcp/4001":                    AddrPrivate, // CGNAT
		"/ip6/fd00::1/tcp/4001":                       AddrPrivate,
		"/ip6/fe80::1/tcp/4001":                       AddrPrivate,
		"/ip4/127.0.0.1/tcp/4001":                     AddrLoopback,
		"/ip6/::1/udp/4001/quic-v1":                   AddrLoopback,
		"/ip4/0.0.0.0/tcp/4001":                       AddrUnspecified,
		"/ip6/::/tcp/4001":                            AddrUnspecified,
		relayAddr:                                     AddrRelayed,
		"/ip4/10.0.0.1/tcp/1/p2p-circuit":             AddrRelayed,
		"/ip4/127.0.0.1/tcp/4001/p2p-circuit":         AddrRelayed,
		"/ip4/9.9.9.9/udp/4001/quic-v1/webrtc-direct": AddrPublic,
	} {
		if got := ClassifyAddr(mas(t, in)[0]); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func TestAddrPolicyFilter(t *testing.T) {
	own := []string{
		"/ip4/127.0.0.1/tcp/4001",
		"/ip4/192.168.1.20/tcp/4001",
		"/ip6/fe80::1/tcp/4001",
		"/ip4/8.8.4.4/tcp/4001", // a confirmed observed address
		relayAddr,
	}
	for _, tc := range []struct {
		name       string
		own        []string
		network    []string
		announce   []string
		noAnnounce []string
		want       []string
	}{
		{
			name:    "public network: public and relayed only",
			own:     own,
			network: []string{"/ip4/1.1.1.1/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"},
			want:    []string{"/ip4/8.8.4.4/tcp/4001", relayAddr},
		},
		{
			name:    "behind NAT before any address is confirmed: relayed only",
			own:     []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/192.168.1.20/tcp/4001", relayAddr},
			network: []string{"/dns4/boot.example.org/tcp/4001", "/ip4/1.1.1.1/tcp/4001"},
			want:    []string{relayAddr},
		},
		{
			name:    "private network (a bootstrap peer is private): private too",
			own:     own,
			network: []string{"/ip4/10.0.0.2/tcp/4001", "/ip4/1.1.1.1/tcp/4001"},
			want:    []string{"/ip4/192.168.1.20/tcp/4001", "/ip4/8.8.4.4/tcp/4001", relayAddr},
		},
		{
			name: "site network with no bootstrap and no public address: private",
			own:  []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/172.18.0.5/tcp/4001", "/ip4/172.18.0.5/udp/4001/quic-v1"},
			want: []string{"/ip4/172.18.0.5/tcp/4001", "/ip4/172.18.0.5/udp/4001/quic-v1"},
		},
		{
			name:    "compose node bootstrapping by DNS name: private",
			own:     []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/172.18.0.5/tcp/4001"},
			network: []string{"/dns4/boot/tcp/4001"},
			want:    []string{"/ip4/172.18.0.5/tcp/4001"},
		},
		{
			name:    "loopback testnet: loopback",
			own:     []string{"/ip4/127.0.0.1/tcp/40123", "/ip4/127.0.0.1/udp/40124/quic-v1"},
			network: []string{"/ip4/127.0.0.1/tcp/40001"},
			want:    []string{"/ip4/127.0.0.1/tcp/40123", "/ip4/127.0.0.1/udp/40124/quic-v1"},
		},
		{
			name: "first node of a loopback testnet: loopback",
			own:  []string{"/ip4/127.0.0.1/tcp/40001"},
			want: []string{"/ip4/127.0.0.1/tcp/40001"},
		},
		{
			name:    "loopback bootstrap on a machine with private interfaces: both",
			own:     []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/10.0.0.7/tcp/4001"},
			network: []string{"/ip4/127.0.0.1/tcp/40001"},
			want:    []string{"/ip4/10.0.0.7/tcp/4001", "/ip4/127.0.0.1/tcp/4001"},
		},
		{
			name:     "announce replaces direct addresses, keeps relayed",
			own:      own,
			announce: []string{"/ip4/203.0.113.7/tcp/4001", "/dns4/node.example.org/udp/4001/quic-v1"},
			want:     []string{"/dns4/node.example.org/udp/4001/quic-v1", "/ip4/203.0.113.7/tcp/4001", relayAddr},
		},
		{
			name:       "no-announce by prefix and by range",
			own:        []string{"/ip4/10.1.2.3/tcp/4001", "/ip4/10.1.2.3/udp/4001/quic-v1", "/ip4/10.9.9.9/tcp/4001", "/ip4/192.168.1.20/tcp/4001", "/ip4/8.8.4.4/tcp/4001"},
			network:    []string{"/ip4/10.0.0.2/tcp/4001"},
			noAnnounce: []string{"/ip4/192.168.0.0/ipcidr/16", "/ip4/10.1.2.3/udp/4001/quic-v1", "/ip4/10.9.9.9"},
			want:       []string{"/ip4/10.1.2.3/tcp/4001", "/ip4/8.8.4.4/tcp/4001"},
		},
		{
			name:       "no-announce applies to announced addresses too",
			own:        own,
			announce:   []string{"/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/udp/4001/quic-v1"},
			noAnnounce: []string{"/ip4/203.0.113.7/udp/4001/quic-v1"},
			want:       []string{"/ip4/203.0.113.7/tcp/4001", relayAddr},
		},
		{
			name: "unspecified never",
			own:  []string{"/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001", "/ip4/8.8.4.4/tcp/4001"},
			want: []string{"/ip4/8.8.4.4/tcp/4001"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := AddrPolicy{Announce: mas(t, tc.announce...), NoAnnounce: mas(t, tc.noAnnounce...), Network: mas(t, tc.network...)}
			got := strs(p.Filter(mas(t, tc.own...)))
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got  %v\nwant %v", got, want)
			}
		})
	}
}

func TestParseAddrFlagsNamesFlagAndValue(t *testing.T) {
	if _, err := ParseAddrFlags("--announce", []string{"/ip4/1.2.3.4/tcp/1", "1.2.3.4:4001"}); err == nil ||
		!strings.Contains(err.Error(), "--announce") || !strings.Contains(err.Error(), `"1.2.3.4:4001"`) {
		t.Fatalf("error %v does not name the flag and the value", err)
	}
	got, err := ParseAddrFlags("--no-announce", []string{"/ip4/10.0.0.0/ipcidr/8"})
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
}

// AutoRelay builds circuit addresses from a relay's public addresses only;
// on a private or loopback network the node builds them itself.
func TestAddrPolicyAddRelays(t *testing.T) {
	const r = "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
	rid, err := peer.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	relay := peer.AddrInfo{ID: rid, Addrs: mas(t, "/ip4/172.18.0.2/tcp/4001", "/ip4/127.0.0.1/tcp/4001", "/ip4/1.1.1.1/tcp/4001")}
	for _, tc := range []struct {
		name    string
		own     []string
		network []string
		want    []string
	}{
		{
			name:    "private network: through the relay's private and public addresses",
			own:     []string{"/ip4/10.5.0.3/tcp/4001"},
			network: []string{"/dns4/boot/tcp/4001"},
			want: []string{"/ip4/10.5.0.3/tcp/4001",
				"/ip4/172.18.0.2/tcp/4001/p2p/" + r + "/p2p-circuit", "/ip4/1.1.1.1/tcp/4001/p2p/" + r + "/p2p-circuit"},
		},
		{
			name:    "public network: through public addresses only",
			own:     []string{"/ip4/10.5.0.3/tcp/4001"},
			network: []string{"/ip4/1.1.1.1/tcp/4001"},
			want:    []string{"/ip4/10.5.0.3/tcp/4001", "/ip4/1.1.1.1/tcp/4001/p2p/" + r + "/p2p-circuit"},
		},
		{
			name:    "AutoRelay's own circuit address through that relay is kept alone",
			own:     []string{"/ip4/10.5.0.3/tcp/4001", "/ip4/1.1.1.1/tcp/4001/p2p/" + r + "/p2p-circuit"},
			network: []string{"/ip4/127.0.0.1/tcp/4001"},
			want:    []string{"/ip4/10.5.0.3/tcp/4001", "/ip4/1.1.1.1/tcp/4001/p2p/" + r + "/p2p-circuit"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := AddrPolicy{Network: mas(t, tc.network...)}
			got := strs(p.AddRelays(mas(t, tc.own...), []peer.AddrInfo{relay}))
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got  %v\nwant %v", got, want)
			}
		})
	}
}
