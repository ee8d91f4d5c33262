package mesh

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

func TestTCPFirstRanker(t *testing.T) {
	addr := func(s string) ma.Multiaddr { return ma.StringCast(s) }
	tcp4 := addr("/ip4/203.0.113.7/tcp/4001")
	tcp6 := addr("/ip6/2001:db8::7/tcp/4001")
	quic4 := addr("/ip4/203.0.113.7/udp/4001/quic-v1")
	relay := addr("/ip4/198.51.100.1/tcp/4001/p2p/12D3KooWJRTg4ES4o8o3dEsU9xZGzuwFQtjU9MeqCHxzmGgDsBSN/p2p-circuit")
	ws := addr("/ip4/203.0.113.7/tcp/4002/ws")
	delays := func(addrs ...ma.Multiaddr) map[string]time.Duration {
		out := map[string]time.Duration{}
		for _, ad := range tcpFirst(addrs) {
			out[ad.Addr.String()] = ad.Delay
		}
		if len(out) != len(addrs) {
			t.Fatalf("ranked %d of %d addresses", len(out), len(addrs))
		}
		return out
	}

	d := delays(quic4, tcp4)
	if d[tcp4.String()] != 0 || d[quic4.String()] < quicAfterTCP {
		t.Errorf("TCP and QUIC: %v, want TCP at once and QUIC after %s", d, quicAfterTCP)
	}
	d = delays(quic4, tcp4, tcp6)
	if d[tcp6.String()] != 0 || d[tcp4.String()] == 0 || d[quic4.String()] < quicAfterTCP {
		t.Errorf("happy eyeballs among the TCP addresses (IPv6 first, IPv4 a little later), QUIC after %s: %v", quicAfterTCP, d)
	}
	d = delays(tcp4, relay, quic4)
	if d[relay.String()] <= d[quic4.String()] {
		t.Errorf("a relay before a direct address: %v", d)
	}
	if d = delays(ws, quic4); d[quic4.String()] != 0 {
		t.Errorf("a WebSocket address counted as TCP: %v", d)
	}
	for _, only := range [][]ma.Multiaddr{{quic4}, {tcp4, tcp6}} {
		got, want := tcpFirst(only), swarm.DefaultDialRanker(only)
		if len(got) != len(want) {
			t.Fatalf("%v: %v, want libp2p's %v", only, got, want)
		}
		for i := range got {
			if !got[i].Addr.Equal(want[i].Addr) || got[i].Delay != want[i].Delay {
				t.Errorf("%v: %v, want libp2p's %v", only, got, want)
			}
		}
	}
}

// Two nodes that both listen on TCP and QUIC connect over TCP: QUIC cost
// twice the CPU for the mesh's traffic (bench/README.md).
func TestNodesConnectOverTCPFirst(t *testing.T) {
	a := newTestMesh(t, "testnet", slowHeartbeats)
	b := newTestMesh(t, "testnet", slowHeartbeats)
	connect(t, a, b)
	conns := a.Host().Network().ConnsToPeer(b.ID())
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}
	if !directTCP(conns[0].RemoteMultiaddr()) {
		t.Fatalf("connected over %s, want TCP", conns[0].RemoteMultiaddr())
	}
}
