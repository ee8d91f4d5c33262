package protocol

import (
	"net/netip"
	"testing"
)

// Origin after the change: private and link-local addresses are one
// origin per host (per /64 for IPv6), loopback per port unless
// PrivateByHost, IPv4-mapped IPv6 as its IPv4.
func TestOriginPrivateAndMapped(t *testing.T) {
	d := DefaultDiversity()
	same := [][2]string{
		{"10.0.0.7:4001", "10.0.0.7:4002"},             // two keys, two ports, one LAN host
		{"[::ffff:10.0.0.7]:4001", "10.0.0.7:4002"},    // mapped
		{"[::ffff:192.168.1.9]:1", "192.168.1.9:2"},    // mapped
		{"[fd00::1]:4001", "[fd00::2]:4002"},           // ULA, one /64
		{"[fe80::1%eth0]:4001", "[fe80::1%eth1]:4002"}, // link-local with zones
		{"169.254.3.4:1", "169.254.3.4:2"},             // IPv4 link-local
		{"[2001:db8:1::1]:1", "[2001:db8:1:2::1]:2"},   // public /48
	}
	for _, p := range same {
		a, b := d.Origin(netip.MustParseAddrPort(p[0])), d.Origin(netip.MustParseAddrPort(p[1]))
		if a != b {
			t.Errorf("%s and %s: origins %q and %q, want one", p[0], p[1], a, b)
		}
	}
	differ := [][2]string{
		{"127.0.0.1:4001", "127.0.0.1:4002"},          // loopback testnet
		{"[::ffff:127.0.0.1]:4001", "127.0.0.1:4002"}, // mapped loopback, per port
		{"10.0.0.7:4001", "10.0.0.8:4001"},            // two LAN hosts
		{"[fd00::1]:1", "[fd00:0:0:1::1]:1"},          // two ULA /64s
	}
	for _, p := range differ {
		a, b := d.Origin(netip.MustParseAddrPort(p[0])), d.Origin(netip.MustParseAddrPort(p[1]))
		if a == b {
			t.Errorf("%s and %s: one origin %q, want two", p[0], p[1], a)
		}
	}
	d.PrivateByHost = true
	if a, b := d.Origin(netip.MustParseAddrPort("127.0.0.1:1")), d.Origin(netip.MustParseAddrPort("127.0.0.1:2")); a != b {
		t.Errorf("PrivateByHost loopback: %q and %q", a, b)
	}
	for _, s := range []string{"[fd00::1]:1", "[fe80::1%eth0]:1", "10.1.2.3:1", "[::ffff:10.1.2.3]:1", "[::1]:1"} {
		t.Logf("%s -> %s", s, DefaultDiversity().Origin(netip.MustParseAddrPort(s)))
	}
}
