package node

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestConfigValidateNamesTheFlag(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, _ := peer.IDFromPrivateKey(key)
	denied := id.String()
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no data dir", func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{"no listen", func(c *Config) { c.ListenAddrs = nil }, "--listen"},
		{"interval", func(c *Config) { c.HeartbeatInterval = time.Millisecond }, "--heartbeat-interval 1ms"},
		{"too few conns", func(c *Config) { c.MaxConns = 4 }, "--max-conns 4"},
		{"too few kept", func(c *Config) { c.KeepConns = 4 }, "--keep-conns 4"},
		{"kept above the limit", func(c *Config) { c.KeepConns = c.MaxConns + 1 }, "--keep-conns 193 above --max-conns 192"},
		{"too little memory", func(c *Config) { c.P2PMemoryMB = 8 }, "--p2p-memory-mb 8"},
		{"api", func(c *Config) { c.APIAddr = "nocolon" }, "--api"},
		{"announce", func(c *Config) { c.Announce = []string{"/ip4/1.2.3.4/tcp/1", "1.2.3.4:4001"} }, `--announce "1.2.3.4:4001"`},
		{"no-announce", func(c *Config) { c.NoAnnounce = []string{"10.0.0.0/8"} }, `--no-announce "10.0.0.0/8"`},
		{"reachability", func(c *Config) { c.Reachability = "maybe" }, `--reachability "maybe"`},
		{"denied bootstrap", func(c *Config) {
			c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + denied}
			c.DenyPeers = []string{denied}
		}, "--bootstrap peer " + denied + " is also in --deny-peer"},
		{"denied bootstrap, CID form", func(c *Config) {
			c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + denied}
			c.DenyPeers = []string{peer.ToCid(id).String()}
		}, "--bootstrap peer " + denied + " is also in --deny-peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.DataDir = t.TempDir()
			tc.mod(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
	c := DefaultConfig()
	c.DataDir = t.TempDir()
	if err := c.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
}
