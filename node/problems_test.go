package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/internal/logbuf"
	"github.com/proofmesh/proofmesh/mesh"
	"github.com/proofmesh/proofmesh/protocol"
)

// infoLogger logs at info level and above into l.
func infoLogger(l *logbuf.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

func problem(n *Node, code string) (protocol.Problem, bool) {
	for _, p := range n.Problems() {
		if p.Code == code {
			return p, true
		}
	}
	return protocol.Problem{}, false
}

func waitProblem(t *testing.T, n *Node, code string, present bool) protocol.Problem {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, ok := problem(n, code)
		if ok == present {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("problem %s present=%v never came: %+v", code, present, n.Problems())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// apiProblems reads GET /api/v1/node's problems as the dashboard does,
// checking their exact shape: code, message, since (RFC 3339).
func apiProblems(t *testing.T, n *Node) map[string]string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.APIAddr()+"/api/v1/node", nil)
	req.Header.Set("Authorization", "Bearer "+n.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Problems []map[string]any `json:"problems"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Problems == nil {
		t.Fatalf("GET /api/v1/node: %v, problems %v", err, body.Problems)
	}
	out := map[string]string{}
	for _, p := range body.Problems {
		code, _ := p["code"].(string)
		msg, _ := p["message"].(string)
		since, _ := p["since"].(string)
		if _, err := time.Parse(time.RFC3339, since); err != nil || len(p) != 3 || code == "" || msg == "" {
			t.Fatalf("problem of another shape: %v", p)
		}
		out[code] = msg
	}
	return out
}

// Issue 13: a node of network othernet bootstrapping to a devnet node
// ended with an empty peer list and said nothing. Now it names both
// network ids in a warn-level line and in its problems.
func TestOtherNetworkBootstrapExplained(t *testing.T) {
	dev := startNode(t, testConfig(t, t.TempDir()))

	var logs logbuf.Buffer
	cfg := testConfig(t, t.TempDir())
	other := *bootstrap.DefaultNetwork()
	other.NetworkID = "othernet"
	cfg.Network = &other
	cfg.Bootstrap = dev.Addrs()[:1]
	cfg.ProblemInterval = 100 * time.Millisecond
	cfg.NoPeersAfter = time.Second
	cfg.Logger = infoLogger(&logs)
	n := startNode(t, cfg)

	p := waitProblem(t, n, protocol.ProblemNetworkMismatch, true)
	for _, want := range []string{dev.ID().String(), "network devnet", "this node on othernet", "--network"} {
		if !strings.Contains(p.Message, want) {
			t.Errorf("message %q does not name %q", p.Message, want)
		}
	}
	waitProblem(t, n, protocol.ProblemNoPeers, true)
	if got := apiProblems(t, n); !strings.Contains(got[protocol.ProblemNetworkMismatch], "othernet") || got[protocol.ProblemNoPeers] == "" {
		t.Fatalf("API problems %v", got)
	}
	log := logs.String()
	if strings.Count(log, "problem="+protocol.ProblemNetworkMismatch) != 1 || !strings.Contains(log, "level=WARN msg=\"bootstrap peer "+dev.ID().String()+" is on proofmesh network devnet and this node on othernet") {
		t.Fatalf("warning not logged once:\n%s", log)
	}
	if peers := n.Peers(protocol.StatusIncompatible); len(peers) != 1 || peers[0].ID != dev.ID().String() || peers[0].Protocol != "devnet v1" || peers[0].Version != dev.cfg.Version {
		t.Fatalf("incompatible peers %+v", peers)
	}
}

// A bootstrap address nobody answers on is named with the dial error;
// no_peers appears after NoPeersAfter and clears once a peer is found.
func TestUnreachableBootstrapExplained(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, _ := peer.IDFromPrivateKey(key)
	addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id)

	var logs logbuf.Buffer
	cfg := testConfig(t, t.TempDir())
	cfg.Bootstrap = []string{addr}
	cfg.ProblemInterval = 100 * time.Millisecond
	cfg.NoPeersAfter = 500 * time.Millisecond
	cfg.Logger = infoLogger(&logs)
	n := startNode(t, cfg)

	p := waitProblem(t, n, protocol.ProblemBootstrapUnreachable, true)
	if !strings.Contains(p.Message, "bootstrap address "+addr+" cannot be dialed: ") || !strings.Contains(p.Message, "dial") {
		t.Fatalf("message %q", p.Message)
	}
	waitProblem(t, n, protocol.ProblemNoPeers, true)
	if got := apiProblems(t, n); got[protocol.ProblemBootstrapUnreachable] == "" || got[protocol.ProblemNoPeers] == "" {
		t.Fatalf("API problems %v", got)
	}
	// Long after start (its peers gone), the message says how long the
	// node has run, not "500ms after start".
	if late := n.findProblems(n.started.Add(10 * time.Second))[protocol.ProblemNoPeers]; !strings.Contains(late, "found now (the node has run for 10s)") {
		t.Fatalf("no_peers long after start: %q", late)
	}

	peerNode := startNode(t, testConfig(t, t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Mesh().Connect(ctx, peer.AddrInfo{ID: peerNode.ID(), Addrs: peerNode.Mesh().Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitProblem(t, n, protocol.ProblemNoPeers, false)
	if _, ok := problem(n, protocol.ProblemBootstrapUnreachable); !ok {
		t.Fatal("the unreachable bootstrap address was forgotten")
	}
	log := logs.String()
	for _, want := range [][]string{
		{"level=WARN msg=\"bootstrap address " + addr, "problem=" + protocol.ProblemBootstrapUnreachable},
		{"level=WARN msg=\"no peer of network devnet found 500ms after start", "problem=" + protocol.ProblemNoPeers},
		{"level=INFO msg=\"problem resolved\"", "problem=" + protocol.ProblemNoPeers},
	} {
		if !slices.ContainsFunc(strings.Split(log, "\n"), func(line string) bool {
			return strings.Contains(line, want[0]) && strings.Contains(line, want[1])
		}) {
			t.Errorf("log lacks a line with %q:\n%s", want, log)
		}
	}
}

// A node whose clock is off is ignored by everybody; it is told: three
// peers whose heartbeats say it is two minutes behind them put clock_skew
// in its problems, with a warn-level line, although it ignores those
// heartbeats.
func TestClockSkewExplained(t *testing.T) {
	var logs logbuf.Buffer
	cfg := testConfig(t, t.TempDir())
	cfg.ProblemInterval = 100 * time.Millisecond
	cfg.Logger = infoLogger(&logs)
	n := startNode(t, cfg)

	var ahead []*mesh.Mesh
	for range 3 {
		key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		mc := mesh.DefaultConfig()
		mc.NetworkID = n.network.NetworkID
		mc.Key = key
		mc.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
		mc.DHT, mc.Colocation = false, true
		m, err := mesh.New(context.Background(), mc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = m.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Mesh().Host().Addrs()})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ahead = append(ahead, m)
	}
	deadline := time.Now().Add(20 * time.Second)
	for seq := uint64(1); ; seq++ {
		if _, ok := problem(n, protocol.ProblemClockSkew); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no clock_skew problem: %+v", n.Problems())
		}
		for _, m := range ahead {
			hb := protocol.Heartbeat{
				NodeID: m.ID().String(), Seq: seq, Time: time.Now().Add(2 * time.Minute).UnixMilli(),
				Capabilities: protocol.Capabilities{"cpu_cores": int64(2), "node_type": "compute"}, PolicyVersion: 1,
				NodeType: "compute", Health: 1, Version: "v9.9.9", IntervalMS: 1000,
			}
			b, err := hb.Encode()
			if err != nil {
				t.Fatal(err)
			}
			_ = m.Publish(context.Background(), mesh.KindHeartbeat, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p, _ := problem(n, protocol.ProblemClockSkew)
	if !strings.HasPrefix(p.Message, "this node's clock is ") || !strings.Contains(p.Message, " behind the median of 3 peers (allowed ±30s)") || !strings.Contains(p.Message, "NTP") {
		t.Fatalf("message %q", p.Message)
	}
	if !slices.ContainsFunc(strings.Split(logs.String(), "\n"), func(l string) bool {
		return strings.Contains(l, "level=WARN") && strings.Contains(l, "problem="+protocol.ProblemClockSkew)
	}) {
		t.Fatalf("no warning:\n%s", logs.String())
	}
	for _, m := range ahead {
		if _, err := n.Peer(m.ID().String()); err == nil {
			t.Fatal("a heartbeat outside the skew entered the peer table")
		}
	}
}
