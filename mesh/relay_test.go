package mesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	relayclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/proofmesh/proofmesh/protocol"
)

// natTrio starts a relay (forced public, relay service on), a node "behind
// a NAT" (forced private, the relay as its static relay, advertising no
// direct address) that serves one blob, and a third node that knows only
// the relay. It returns them once the private node advertises a circuit
// address.
func natTrio(t *testing.T, blobWait time.Duration) (relay, private, dialer *Mesh, blob []byte, hash string) {
	t.Helper()
	relay = newTestMesh(t, "nat", func(c *Config) { c.Reachability = ReachabilityPublic })
	relayInfo := peer.AddrInfo{ID: relay.ID(), Addrs: relay.Host().Addrs()}
	blob = bytes.Repeat([]byte("relayed blob "), 1000)
	sum := sha256.Sum256(blob)
	hash = hex.EncodeToString(sum[:])
	private = newTestMesh(t, "nat", func(c *Config) {
		c.Reachability = ReachabilityPrivate
		c.StaticRelays = []peer.AddrInfo{relayInfo}
		c.NetworkAddrs = relayInfo.Addrs
		c.NoAnnounce = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1")} // as if behind a NAT: no direct address
		c.Blob = func(h string) ([]byte, bool) { return blob, h == hash }
	})
	dialer = newTestMesh(t, "nat", func(c *Config) { c.BlobDirectWait = blobWait })
	connect(t, dialer, relay)
	eventually(t, 20*time.Second, "a reservation on the relay and a circuit address", func() bool {
		for _, a := range private.Addrs() {
			if ClassifyAddr(a) == AddrRelayed {
				return true
			}
		}
		return false
	})
	for _, a := range private.Addrs() {
		if c := ClassifyAddr(a); c != AddrRelayed {
			t.Fatalf("the private node advertises %s (%s): want circuit addresses only", a, c)
		}
	}
	return relay, private, dialer, blob, hash
}

// dialThroughRelay connects dialer to private through private's advertised
// (circuit) addresses only.
func dialThroughRelay(t *testing.T, dialer, private *Mesh) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var addrs []ma.Multiaddr
	for _, a := range private.Addrs() {
		base, _ := ma.SplitLast(a) // drop /p2p/<private>
		addrs = append(addrs, base)
	}
	if err := dialer.Connect(ctx, peer.AddrInfo{ID: private.ID(), Addrs: addrs}); err != nil {
		t.Fatalf("dial through the relay: %v", err)
	}
	if !dialer.Relayed(private.ID()) {
		t.Fatal("the connection to the private node does not go through the relay")
	}
}

// A node behind a NAT reserves a slot on a relay (built from the relay's
// loopback addresses: AutoRelay alone would only use public ones), a
// third node dials it through /p2p-circuit, the lifecycle's gossip
// (heartbeats) flows between them, and a blob comes through the relayed
// connection only after BlobDirectWait found no direct path.
func TestRelayedNodeIsDialedBackAndServesBlobAfterDirectWait(t *testing.T) {
	const wait = 400 * time.Millisecond
	_, private, dialer, blob, hash := natTrio(t, wait)
	dialThroughRelay(t, dialer, private)

	eventually(t, 20*time.Second, "heartbeats both ways", func() bool {
		return statusOf(dialer, private.ID()) == protocol.StatusOnline && statusOf(private, dialer.ID()) == protocol.StatusOnline
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	got, err := dialer.FetchBlob(ctx, private.ID(), hash, 0)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("fetch through the relay: %v", err)
	}
	if !bytes.Equal(got, blob) {
		t.Fatal("wrong blob")
	}
	if took < wait {
		t.Fatalf("blob came through the relay after %s: it should wait %s for a direct path first", took, wait)
	}
	for _, c := range dialer.Host().Network().ConnsToPeer(private.ID()) {
		if !c.Stat().Limited {
			t.Fatalf("a direct connection appeared (%s): the test meant none", c.RemoteMultiaddr())
		}
	}
	t.Logf("blob of %d bytes through the relay in %s (waited %s for a direct path)", len(blob), took, wait)
}

// When the relayed peer has a direct address the dialer can use, a blob
// fetch opens the direct connection and never sends the blob through the
// relay.
func TestBlobFetchPrefersDirectConnection(t *testing.T) {
	_, private, dialer, blob, hash := natTrio(t, 10*time.Second)
	dialThroughRelay(t, dialer, private)
	// Learned some other way (a heartbeat of an older build, an operator).
	dialer.Host().Peerstore().AddAddrs(private.ID(), private.Host().Network().ListenAddresses(), time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	got, err := dialer.FetchBlob(ctx, private.ID(), hash, 0)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("fetch: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("fetch took %s: it should not have waited the full direct wait", took)
	}
	if !dialer.directConn(private.ID()) {
		t.Fatal("no direct connection after the fetch")
	}
	var limitedStreams int
	for _, c := range dialer.Host().Network().ConnsToPeer(private.ID()) {
		if c.Stat().Limited {
			for _, s := range c.GetStreams() {
				if s.Protocol() == dialer.blobProtocol() {
					limitedStreams++
				}
			}
		}
	}
	if limitedStreams != 0 {
		t.Fatal("the blob went through the relay")
	}
}

// Without WithAllowLimitedConn a stream over the relayed connection is
// refused: the guard the blob fetch lifts only after its wait.
func TestRelayedConnectionRefusesStreamsWithoutAllowLimited(t *testing.T) {
	_, private, dialer, _, _ := natTrio(t, time.Second)
	dialThroughRelay(t, dialer, private)
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := dialer.Host().NewStream(short, private.ID(), dialer.blobProtocol()); err == nil {
		t.Fatal("a stream opened over the limited relayed connection without WithAllowLimitedConn")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := dialer.Host().NewStream(network.WithAllowLimitedConn(ctx, "test"), private.ID(), dialer.blobProtocol())
	if err != nil {
		t.Fatalf("with WithAllowLimitedConn: %v", err)
	}
	_ = s.Reset()
}

// A node that knows only the relay meets the private node through the
// rendezvous and connects to it through the relay: dialed back by
// discovery, not by being handed the address.
func TestRendezvousDialsPrivateNodeThroughRelay(t *testing.T) {
	relay, private, _, _, _ := natTrio(t, time.Second)
	// A dialer the private node cannot dial (it advertises nothing), so
	// that the private node's own outbound dial does not connect them.
	dialer := newTestMesh(t, "nat", func(c *Config) { c.NoAnnounce = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1")} })
	connect(t, dialer, relay)
	eventually(t, 30*time.Second, "the dialer connected to the private node through the relay", func() bool {
		return dialer.Relayed(private.ID())
	})
}

// Attack on the relay service (on by default once a node is public):
// identities made up on one machine each ask for a reservation. The relay
// grants at most MaxReservationsPerIP (4) per address, so one host cannot
// take the 64 reservations others behind NATs need.
func TestRelayReservationsBoundedPerAddress(t *testing.T) {
	relay := newTestMesh(t, "nat", func(c *Config) { c.Reachability = ReachabilityPublic })
	relayInfo := peer.AddrInfo{ID: relay.ID(), Addrs: relay.Host().Network().ListenAddresses()}
	limit := relayResources().MaxReservationsPerIP
	granted := 0
	for i := range limit + 3 {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := h.Connect(ctx, relayInfo); err != nil {
			cancel()
			t.Fatal(err)
		}
		var rerr error
		for range 50 { // the relay service starts once the host is told it is public
			if _, rerr = relayclient.Reserve(ctx, h, relayInfo); rerr == nil || strings.Contains(rerr.Error(), "RESERVATION_REFUSED") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		if rerr == nil {
			granted++
		} else if i < limit {
			t.Fatalf("reservation %d refused: %v", i+1, rerr)
		}
	}
	if granted != limit {
		t.Fatalf("%d reservations granted to one address, want %d", granted, limit)
	}
}

// Attack: a relay a node behind a NAT reserved with (AutoRelay takes them
// from discovered peers) claims hundreds of addresses in identify. The
// node built a circuit address through each and advertised them all
// (identify, DHT, rendezvous): whoever wants to reach it dials addresses
// the relay chose. The node now builds at most maxAddrsPerRelay per relay.
func TestRelayCannotFloodTheAddressesANodeAdvertises(t *testing.T) {
	var fake []ma.Multiaddr
	for i := range 200 {
		fake = append(fake, ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 20000+i)))
	}
	relayHost, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.EnableRelayService(), libp2p.ForceReachabilityPublic(),
		libp2p.AddrsFactory(func(own []ma.Multiaddr) []ma.Multiaddr { return append(slices.Clone(own), fake...) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relayHost.Close() })
	relayInfo := peer.AddrInfo{ID: relayHost.ID(), Addrs: relayHost.Network().ListenAddresses()}
	private := newTestMesh(t, "nat", func(c *Config) {
		c.Reachability = ReachabilityPrivate
		c.StaticRelays = []peer.AddrInfo{relayInfo}
		c.NetworkAddrs = relayInfo.Addrs
		c.NoAnnounce = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1")}
	})
	circuits := func() int {
		n := 0
		for _, a := range private.Addrs() {
			if ClassifyAddr(a) == AddrRelayed {
				n++
			}
		}
		return n
	}
	eventually(t, 20*time.Second, "a reservation on the relay", func() bool { return circuits() > 0 })
	time.Sleep(500 * time.Millisecond)
	if n := circuits(); n > maxAddrsPerRelay {
		t.Fatalf("the node advertises %d circuit addresses through one relay", n)
	}
}
