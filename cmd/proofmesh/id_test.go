package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/node"
)

// Without a running node, `proofmesh id` prints what its flags would
// advertise, each address labelled, unspecified addresses expanded.
func TestIDLabelsTheAddressesItsFlagsGive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if code, out, errs := runCLI(t, "init", "--data-dir", dir); code != 0 {
		t.Fatalf("init: %s %s", out, errs)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string // "class addr-prefix"
		not  []string
	}{
		{
			name: "loopback listen",
			args: []string{"--listen", "/ip4/127.0.0.1/tcp/4001"},
			want: []string{"loopback  /ip4/127.0.0.1/tcp/4001/p2p/"},
		},
		{
			name: "announce replaces, unspecified never printed",
			args: []string{"--listen", "/ip4/0.0.0.0/tcp/4001", "--announce", "/ip4/1.2.3.4/tcp/4001", "--announce", "/dns4/node.example.org/udp/4001/quic-v1"},
			want: []string{"public    /ip4/1.2.3.4/tcp/4001/p2p/", "public    /dns4/node.example.org/udp/4001/quic-v1/p2p/"},
			not:  []string{"0.0.0.0", "127.0.0.1", "unspecified"},
		},
		{
			name: "private bootstrap: private addresses count",
			args: []string{"--listen", "/ip4/10.1.2.3/tcp/4001", "--bootstrap", "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"},
			want: []string{"private   /ip4/10.1.2.3/tcp/4001/p2p/"},
		},
		{
			name: "public bootstrap: a private address is not advertised",
			args: []string{"--listen", "/ip4/10.1.2.3/tcp/4001", "--bootstrap", "/ip4/1.1.1.1/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"},
			not:  []string{"10.1.2.3"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"id", "--data-dir", dir, "--api", ""}, tc.args...)
			code, out, errs := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("id: %d %s %s", code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
		})
	}
	t.Setenv("PROOFMESH_ANNOUNCE", "/ip4/5.6.7.8/tcp/4001,/ip4/5.6.7.8/udp/4001/quic-v1")
	if code, out, errs := runCLI(t, "id", "--data-dir", dir, "--api", ""); code != 0 ||
		!strings.Contains(out, "public    /ip4/5.6.7.8/tcp/4001/p2p/") || !strings.Contains(out, "public    /ip4/5.6.7.8/udp/4001/quic-v1/p2p/") {
		t.Fatalf("PROOFMESH_ANNOUNCE: %d %q %s", code, out, errs)
	}
	if code, _, errs := runCLI(t, "id", "--data-dir", dir, "--api", "", "--announce", "1.2.3.4:4001"); code == 0 || !strings.Contains(errs, "--announce") || !strings.Contains(errs, "1.2.3.4:4001") {
		t.Fatalf("a bad --announce: code %d, stderr %q", code, errs)
	}
}

// With a running node, `proofmesh id` prints what the node advertises.
func TestIDAsksTheRunningNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tn, err := node.StartTestnet(ctx, node.TestnetConfig{Nodes: 1, DataDir: filepath.Join(t.TempDir(), "net")})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close(context.Background())
	n := tn.Nodes[0]
	t.Setenv("PROOFMESH_API_TOKEN", n.Token())
	code, out, errs := runCLI(t, "id", "--data-dir", filepath.Join(tn.Dir(), "node-0"), "--api", n.APIAddr())
	if code != 0 || !strings.HasPrefix(out, n.ID().String()+"\n") || !strings.Contains(out, "from the running node") {
		t.Fatalf("id: %d %q %s", code, out, errs)
	}
	for _, a := range n.Addrs() {
		if !strings.Contains(out, "loopback  "+a+"\n") {
			t.Errorf("output lacks %s labelled loopback:\n%s", a, out)
		}
	}
	// Another data dir's identity, or no node at --api: the guessed
	// addresses come with a note saying so (a new user copied such a
	// guess into --bootstrap).
	other := t.TempDir()
	if code, _, errs := runCLI(t, "init", "--data-dir", other); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	code, _, errs = runCLI(t, "id", "--data-dir", other, "--api", n.APIAddr())
	if code != 0 || !strings.Contains(errs, "the node at "+n.APIAddr()+" is "+n.ID().String()+", not this data dir's") ||
		!strings.Contains(errs, "not what a node reported") {
		t.Fatalf("id of another data dir: %d %s", code, errs)
	}
	code, _, errs = runCLI(t, "id", "--data-dir", other, "--api", "127.0.0.1:1")
	if code != 0 || !strings.Contains(errs, "no node answered at 127.0.0.1:1") {
		t.Fatalf("id with no node at --api: %d %s", code, errs)
	}
}
