package mesh

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// quicAfterTCP is how long a dial waits for a peer's TCP addresses before
// it tries its QUIC ones (libp2p's own ranker waits as long the other way
// round: PublicTCPDelay).
const quicAfterTCP = 250 * time.Millisecond

// tcpFirst is the swarm's dial ranker: a peer's direct TCP addresses
// first, ranked among themselves as libp2p ranks them (happy eyeballs),
// then everything else (QUIC, relays) as libp2p ranks it, quicAfterTCP
// later. libp2p prefers QUIC; for a mesh of long-lived connections that
// carry small gossip messages, QUIC costs twice the CPU of TCP with Noise
// and yamux in Go (20 real nodes on 2 cores: 0.50–0.53 cores over QUIC,
// 0.26 over TCP, bench/README.md). A peer that only QUIC reaches still is
// reached, quicAfterTCP later. Hole punching dials every address at once
// whatever the ranker (libp2p ranks a simultaneous connect with
// NoDelayDialRanker), so it keeps QUIC's better odds through NATs.
func tcpFirst(addrs []ma.Multiaddr) []network.AddrDelay {
	var tcp, rest []ma.Multiaddr
	for _, a := range addrs {
		if directTCP(a) {
			tcp = append(tcp, a)
		} else {
			rest = append(rest, a)
		}
	}
	if len(tcp) == 0 || len(rest) == 0 {
		return swarm.DefaultDialRanker(addrs)
	}
	out := swarm.DefaultDialRanker(tcp)
	for _, ad := range swarm.DefaultDialRanker(rest) {
		ad.Delay += quicAfterTCP
		out = append(out, ad)
	}
	return out
}

// directTCP: a plain TCP address, not through a relay and not a
// WebSocket.
func directTCP(a ma.Multiaddr) bool {
	tcp := false
	for _, c := range a {
		switch c.Code() {
		case ma.P_TCP:
			tcp = true
		case ma.P_CIRCUIT, ma.P_WS, ma.P_WSS, ma.P_TLS:
			return false
		}
	}
	return tcp
}
