package mesh

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	manet "github.com/multiformats/go-multiaddr/net"
)

// A second node given a TCP or QUIC port the first listens on stops at
// start, naming the address: libp2p's reuseport listener had let it bind
// and take part of the first node's inbound connections (a new user's
// walkthrough of 2026-12-07).
func TestListenPortInUseRefused(t *testing.T) {
	first := newTestMesh(t, "devnet")
	tried := map[string]bool{}
	for _, a := range first.Host().Addrs() {
		network, _, err := manet.DialArgs(a)
		if err != nil {
			continue
		}
		tried[network] = true
		listen := a.String()
		key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		cfg := DefaultConfig()
		cfg.NetworkID, cfg.Key, cfg.ListenAddrs = "devnet", key, []string{listen}
		m, err := New(context.Background(), cfg)
		if err == nil {
			_ = m.Close()
			t.Fatalf("a second node listened on %s, which the first holds", listen)
		}
		if !errors.Is(err, ErrListenInUse) || !strings.Contains(err.Error(), listen) {
			t.Fatalf("second node on %s: %v, want ErrListenInUse naming the address", listen, err)
		}
	}
	if !tried["tcp4"] || !tried["udp4"] {
		t.Fatalf("tried %v, want a TCP and a QUIC address", tried)
	}
}
