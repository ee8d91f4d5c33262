package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/proofmesh/proofmesh/bootstrap"
)

// TestnetConfig configures an in-process network of nodes on loopback.
type TestnetConfig struct {
	Nodes int
	// DataDir holds node-0, node-1, …; empty means a temporary dir that
	// Close removes.
	DataDir           string
	HeartbeatInterval time.Duration
	// APIPort is the first node's API port; node i gets APIPort+i. 0
	// means any free port.
	APIPort int
	// Network is the network config; nil means the default network.
	Network *bootstrap.Network
	// Declare sets node i's declared capabilities; nil means: every node
	// compute, odd nodes with a GPU.
	Declare func(i int) Declared
	Logger  *slog.Logger
	// Configure adjusts each node's config last (tests).
	Configure func(i int, c *Config)
}

// Testnet is a running in-process network.
type Testnet struct {
	Nodes []*Node
	dir   string
	temp  bool
}

// StartTestnet starts the nodes; node 0 is every other node's bootstrap
// peer, and the others meet through rendezvous.
func StartTestnet(ctx context.Context, tc TestnetConfig) (*Testnet, error) {
	if tc.Nodes < 1 || tc.Nodes > 64 {
		return nil, fmt.Errorf("testnet: --nodes %d not within 1..64", tc.Nodes)
	}
	tn := &Testnet{dir: tc.DataDir}
	if tn.dir == "" {
		d, err := os.MkdirTemp("", "proofmesh-testnet-")
		if err != nil {
			return nil, err
		}
		tn.dir, tn.temp = d, true
	}
	if tc.HeartbeatInterval == 0 {
		tc.HeartbeatInterval = time.Second
	}
	declare := tc.Declare
	if declare == nil {
		declare = func(i int) Declared {
			return Declared{CPUCores: 2, MemoryGB: 4, GPU: i%2 == 1, NodeType: "compute", Region: "local"}
		}
	}
	var boot []string
	for i := range tc.Nodes {
		cfg := DefaultConfig()
		cfg.DataDir = filepath.Join(tn.dir, fmt.Sprintf("node-%d", i))
		cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
		cfg.APIAddr = "127.0.0.1:0"
		if tc.APIPort != 0 {
			cfg.APIAddr = fmt.Sprintf("127.0.0.1:%d", tc.APIPort+i)
		}
		cfg.Network = tc.Network
		cfg.HeartbeatInterval = tc.HeartbeatInterval
		cfg.Declared = declare(i)
		cfg.Bootstrap = boot
		cfg.Colocation = true
		cfg.SyncWrites = false
		if tc.Logger != nil {
			cfg.Logger = tc.Logger.With("n", i)
		}
		if tc.Configure != nil {
			tc.Configure(i, &cfg)
		}
		n, err := New(ctx, cfg)
		if err != nil {
			_ = tn.Close(context.Background())
			return nil, fmt.Errorf("testnet node %d: %w", i, err)
		}
		tn.Nodes = append(tn.Nodes, n)
		if i == 0 {
			boot = n.Addrs()[:1]
		}
	}
	return tn, nil
}

// Dir returns the directory holding the nodes' data dirs.
func (tn *Testnet) Dir() string { return tn.dir }

// WaitConnected waits until every node sees every other node online.
func (tn *Testnet) WaitConnected(ctx context.Context) error {
	for {
		all := true
		for _, n := range tn.Nodes {
			if n.Info().Peers["online"] < len(tn.Nodes)-1 {
				all = false
				break
			}
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnet: nodes did not all meet: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops every node gracefully and removes a temporary dir.
func (tn *Testnet) Close(ctx context.Context) error {
	var errs []error
	for i := len(tn.Nodes) - 1; i >= 0; i-- {
		errs = append(errs, tn.Nodes[i].Close(ctx))
	}
	if tn.temp {
		errs = append(errs, os.RemoveAll(tn.dir))
	}
	return errors.Join(errs...)
}
