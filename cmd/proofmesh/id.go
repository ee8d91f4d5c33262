package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/node"
	"github.com/proofmesh/proofmesh/node/api"
)

// addReachFlags adds the flags that decide how others reach the node
// (DESIGN.md "Reaching nodes"), shared by `node` and `id`.
func addReachFlags(f *pflag.FlagSet, cfg *node.Config) {
	f.StringSliceVar(&cfg.Announce, "announce", nil, "multiaddr to advertise instead of the detected ones, e.g. /ip4/203.0.113.7/tcp/4001 (repeatable or comma-separated)")
	f.StringSliceVar(&cfg.NoAnnounce, "no-announce", nil, "never advertise matching addresses: a prefix (/ip4/10.1.2.3) or a range (/ip4/10.0.0.0/ipcidr/8) (repeatable)")
	f.BoolVar(&cfg.RelayService, "relay-service", cfg.RelayService, "relay for nodes behind NATs once this node is publicly reachable (--relay-service=false refuses)")
	f.BoolVar(&cfg.NATPortMap, "nat-portmap", cfg.NATPortMap, "ask the router for a port mapping (UPnP, NAT-PMP)")
	f.StringVar(&cfg.Reachability, "reachability", cfg.Reachability, "auto (AutoNAT decides), public (a relay or bootstrap node whose address AutoNAT cannot confirm) or private (always through relays)")
}

func idCmd() *cobra.Command {
	cfg := node.DefaultConfig()
	var apiAddr string
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Print the node's peer id and the addresses others can reach it at",
		Long: `Print the node's peer id and the addresses it advertises, each labelled
public, private, loopback or relayed. A running node is asked (GET
/api/v1/node at --api); otherwise the addresses are those the flags would
give (--listen with 0.0.0.0 and :: expanded to this machine's interfaces,
--announce, --no-announce, --bootstrap), before any NAT mapping, observed
address or relay is known.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := node.LoadIdentity(cfg.DataDir)
			if err != nil {
				return err
			}
			id, err := peerIDFromKey(key)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			info, why := askNode(cmd.Context(), apiAddr, cfg.DataDir, id)
			if why == "" {
				fmt.Fprintln(out, id)
				printAddrs(out, info.Addrs)
				fmt.Fprintf(out, "(from the running node at %s; reachability %s)\n", apiAddr, orUnknown(info.Reachability))
				return nil
			}
			addrs, err := flagAddrs(&cfg, id)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, id)
			printAddrs(out, addrs)
			// A new user copied such a guess into --bootstrap, on a port
			// the node did not listen on (a walkthrough of 2026-12-07).
			fmt.Fprintf(cmd.ErrOrStderr(), "(%s; these are the addresses the flags would give, not what a node reported: start the node, or pass its --api)\n", why)
			if len(addrs) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no address others can use: behind a NAT the node is reached through a relay once it runs; or set --announce")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "the node's data directory")
	f.StringVar(&apiAddr, "api", cfg.APIAddr, "the running node's API host:port, asked first")
	f.StringSliceVar(&cfg.ListenAddrs, "listen", cfg.ListenAddrs, "the node's listen addresses")
	f.StringSliceVar(&cfg.Bootstrap, "bootstrap", nil, "the node's bootstrap addresses (they tell a private network from a public one)")
	addReachFlags(f, &cfg)
	return cmd
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// askNode asks the running node at apiAddr for its addresses. why is
// empty when it answered for the identity in dataDir, else says what
// happened.
func askNode(ctx context.Context, apiAddr, dataDir string, id peer.ID) (info api.NodeInfo, why string) {
	if apiAddr == "" {
		return info, "no --api given"
	}
	c, err := (&clientFlags{api: apiAddr, dataDir: dataDir}).client()
	if err != nil {
		return info, fmt.Sprintf("the node at %s was not asked: %v", apiAddr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.do(ctx, "GET", "/api/v1/node", nil, &info); err != nil {
		return api.NodeInfo{}, fmt.Sprintf("no node answered at %s: %v", apiAddr, err)
	}
	if info.ID != id.String() {
		return api.NodeInfo{}, fmt.Sprintf("the node at %s is %s, not this data dir's %s", apiAddr, info.ID, id)
	}
	return info, ""
}

// flagAddrs returns the addresses the node's flags would advertise, with
// /p2p/<id>: the listen addresses (unspecified ones expanded to the
// interfaces) filtered by the node's address policy.
func flagAddrs(cfg *node.Config, id peer.ID) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	listen, err := mesh.ParseAddrFlags("--listen", cfg.ListenAddrs)
	if err != nil {
		return nil, err
	}
	announce, _ := mesh.ParseAddrFlags("--announce", cfg.Announce)
	noAnnounce, _ := mesh.ParseAddrFlags("--no-announce", cfg.NoAnnounce)
	boot, err := bootstrap.ParseAddrs(cfg.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("--bootstrap: %w", err)
	}
	policy := mesh.AddrPolicy{Announce: announce, NoAnnounce: noAnnounce}
	for _, ai := range boot {
		policy.Network = append(policy.Network, ai.Addrs...)
	}
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return nil, fmt.Errorf("this machine's interface addresses: %w", err)
	}
	if listen, err = manet.ResolveUnspecifiedAddresses(listen, ifaces); err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	p2p := ma.StringCast("/p2p/" + id.String())
	var out []string
	for _, a := range policy.Filter(listen) {
		out = append(out, a.Encapsulate(p2p).String())
	}
	return out, nil
}

// printAddrs prints one address a line, its class first.
func printAddrs(w io.Writer, addrs []string) {
	for _, s := range addrs {
		class := "invalid"
		if a, err := ma.NewMultiaddr(s); err == nil {
			class = string(mesh.ClassifyAddr(a))
		}
		fmt.Fprintf(w, "%-9s %s\n", class, s)
	}
}
