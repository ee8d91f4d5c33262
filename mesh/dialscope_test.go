package mesh

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Attack: a peer claims, in identify, a listen address that is a service
// on the victim's own machine (here a plain TCP listener standing for a
// database on loopback). When the victim later dials the peer (to fetch a
// task's module from its submitter, say), it connected to that service. A
// node on a public network (its bootstrap addresses are public) now
// dials no loopback or private address; a testnet on one machine still
// does.
func TestPeerCannotMakeNodeDialItsOwnLoopback(t *testing.T) {
	service, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = service.Close() })
	var hits atomic.Int64
	go func() {
		for {
			c, err := service.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			_ = c.Close()
		}
	}()
	serviceAddr, err := manet.FromNetAddr(service.Addr())
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		network  []ma.Multiaddr
		wantHits bool
	}{
		{"public network", []ma.Multiaddr{ma.StringCast("/ip4/203.0.113.7/tcp/4001")}, false},
		{"loopback testnet", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits.Store(0)
			victim := newTestMesh(t, "testnet", func(c *Config) {
				c.Self, c.DHT, c.NetworkAddrs = nil, false, tc.network
				c.ListenAddrs = c.ListenAddrs[:1] // TCP only: the service is TCP
			})
			liar, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
				libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return []ma.Multiaddr{serviceAddr} }))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = liar.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := liar.Connect(ctx, peer.AddrInfo{ID: victim.ID(), Addrs: victim.Host().Network().ListenAddresses()}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "the claimed address in the victim's peerstore", func() bool {
				for _, a := range victim.Host().Peerstore().Addrs(liar.ID()) {
					if a.Equal(serviceAddr) {
						return true
					}
				}
				return false
			})
			_ = liar.Network().ClosePeer(victim.ID())
			eventually(t, 5*time.Second, "disconnected", func() bool { return !victim.Connected(liar.ID()) })
			// The victim fetches a blob from the peer: it dials it.
			fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer fcancel()
			_, _ = victim.FetchBlob(fctx, liar.ID(), strings.Repeat("ab", 32), 0)
			time.Sleep(200 * time.Millisecond)
			if got := hits.Load(); (got > 0) != tc.wantHits {
				t.Fatalf("the service on loopback was connected to %d times", got)
			}
		})
	}
}
