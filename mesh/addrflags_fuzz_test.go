package mesh

import (
	"strconv"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// FuzzParseAddrFlags feeds arbitrary --announce / --no-announce values
// (one per line) to ParseAddrFlags. A refusal names the flag and, quoted,
// the value that is not a multiaddr; an acceptance returns one multiaddr per
// value, each of which prints as text and encodes as bytes that parse back
// to the same multiaddr (what the node announces is what it was given).
func FuzzParseAddrFlags(f *testing.F) {
	for _, s := range []string{
		"/ip4/1.2.3.4/tcp/4001",
		"/ip4/127.0.0.1/udp/4001/quic-v1\n/ip6/::1/tcp/4001",
		"/ip4/10.0.0.0/ipcidr/8",
		"/dns4/node.example.org/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf",
		"/ip4/1.1.1.1/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf/p2p-circuit",
		"/ip4/1.2.3.4/udp/4001/quic-v1/webtransport",
		"/unix/tmp/x.sock",
		"1.2.3.4:4001",
		"",
		"/ip4/1.2.3.4/tcp/70000",
	} {
		f.Add(s)
	}
	// Seeds from the package's own encoder: multiaddrs built in code.
	for _, a := range []ma.Multiaddr{
		ma.StringCast("/ip6/2001:db8::1/udp/443/quic-v1"),
		ma.StringCast("/ip4/0.0.0.0/tcp/0").Encapsulate(ma.StringCast("/ws")),
	} {
		f.Add(a.String())
	}
	const flag = "--announce"
	f.Fuzz(func(t *testing.T, joined string) {
		values := strings.Split(joined, "\n")
		got, err := ParseAddrFlags(flag, values)
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, flag) {
				t.Fatalf("error does not name the flag: %v", err)
			}
			named := false
			for _, v := range values {
				named = named || strings.Contains(msg, strconv.Quote(v))
			}
			if !named {
				t.Fatalf("error does not name the bad value: %v", err)
			}
			return
		}
		if len(got) != len(values) {
			t.Fatalf("%d values accepted as %d multiaddrs", len(values), len(got))
		}
		for i, a := range got {
			if len(a) == 0 {
				t.Fatalf("value %q accepted as an empty multiaddr", values[i])
			}
			s := a.String()
			back, err := ma.NewMultiaddr(s)
			if err != nil {
				t.Fatalf("value %q accepted, but prints as %q which does not parse: %v", values[i], s, err)
			}
			if !back.Equal(a) || back.String() != s {
				t.Fatalf("value %q accepted as %q, which parses back as %q", values[i], s, back)
			}
			fromBytes, err := ma.NewMultiaddrBytes(a.Bytes())
			if err != nil || !fromBytes.Equal(a) {
				t.Fatalf("value %q accepted as %q, whose bytes %x do not decode to it: %v", values[i], s, a.Bytes(), err)
			}
		}
	})
}
