package mesh

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// A direct connection's origin is known over TCP and QUIC alike
// (regression: QUIC connections made peers ineligible).
func TestAddrPortOfTCPAndQUIC(t *testing.T) {
	for in, want := range map[string]string{
		"/ip4/203.0.113.7/tcp/4001":               "203.0.113.7:4001",
		"/ip4/203.0.113.7/udp/4001/quic-v1":       "203.0.113.7:4001",
		"/ip6/2001:db8::1/udp/9/quic-v1":          "[2001:db8::1]:9",
		"/ip6/::ffff:127.0.0.1/tcp/5":             "127.0.0.1:5",
		"/dns4/example.org/tcp/4001":              "",
		"/ip4/203.0.113.7/udp/4001/webrtc-direct": "203.0.113.7:4001",
	} {
		a, err := ma.NewMultiaddr(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		ap, ok := addrPort(a)
		got := ""
		if ok {
			got = ap.String()
		}
		if got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}
