package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/proofmesh/proofmesh/node"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/tasks"
)

func testnetCmd() *cobra.Command {
	tc := node.TestnetConfig{Nodes: 3, HeartbeatInterval: time.Second}
	var logLevel string
	cmd := &cobra.Command{
		Use:   "testnet --nodes N",
		Short: "Run N nodes in this process on loopback until Ctrl-C",
		Long: `Run a local network of N nodes in one process on 127.0.0.1, node 0 being the
others' bootstrap peer. Odd-numbered nodes declare a GPU. Each node's API
address and token are printed; data dirs are temporary unless --data-dir
is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			tc.Logger = log
			tn, err := node.StartTestnet(cmd.Context(), tc)
			if err != nil {
				return err
			}
			printTestnet(cmd.OutOrStdout(), tn)
			fmt.Fprintln(cmd.OutOrStdout(), "running until Ctrl-C")
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return tn.Close(ctx)
		},
	}
	f := cmd.Flags()
	f.IntVar(&tc.Nodes, "nodes", tc.Nodes, "number of nodes (1-64)")
	f.StringVar(&tc.DataDir, "data-dir", "", "directory for the nodes' data dirs (default: temporary, removed at exit)")
	f.DurationVar(&tc.HeartbeatInterval, "heartbeat-interval", tc.HeartbeatInterval, "heartbeat interval")
	f.IntVar(&tc.APIPort, "api-port", 0, "API port of node 0; node i gets port+i (default: free ports)")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

func printTestnet(w io.Writer, tn *node.Testnet) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPEER ID\tAPI\tTOKEN\tGPU")
	for i, n := range tn.Nodes {
		gpu, _ := n.Info().Capabilities["gpu_available"].(bool)
		fmt.Fprintf(tw, "%d\t%s\thttp://%s\t%s\t%v\n", i, n.ID(), n.APIAddr(), n.Token(), gpu)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "bootstrap address: %s\n", tn.Nodes[0].Addrs()[0])
	fmt.Fprintf(w, "data dirs under:   %s\n", tn.Dir())
	fmt.Fprintf(w, "dashboard:         %s\n", dashboardURL(tn.Nodes[0]))
}

// dashboardURL is the link that opens a node's dashboard signed in: the
// token rides in the fragment, which the browser never sends to the
// server (the page moves it to sessionStorage and out of the address bar).
func dashboardURL(n *node.Node) string {
	return "http://" + n.APIAddr() + "/#token=" + n.Token()
}

func demoCmd() *cobra.Command {
	var nodes int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "A local testnet, one task of every built-in type, results verified offline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo(cmd.Context(), nodes, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().IntVar(&nodes, "nodes", 3, "number of nodes")
	return cmd
}

// demo is what `make demo` shows a new user: the nodes meet, a task of
// every type goes through the API of one node, and a result bundle is
// verified offline as an auditor would.
func demo(ctx context.Context, nodes int, out, progress io.Writer) error {
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	say("== 1. Starting %d nodes on 127.0.0.1 (node 0 is the bootstrap peer; odd nodes have a GPU)", nodes)
	tn, err := node.StartTestnet(ctx, node.TestnetConfig{Nodes: nodes, HeartbeatInterval: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = tn.Close(cctx)
	}()
	printTestnet(out, tn)
	say("open the dashboard link above while the demo runs (`proofmesh testnet` keeps a network up until Ctrl-C)")
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	start := time.Now()
	err = tn.WaitConnected(wctx)
	cancel()
	if err != nil {
		return err
	}
	say("every node sees the %d others online after %s (signed heartbeats, DHT rendezvous)", nodes-1, time.Since(start).Round(time.Millisecond))

	c := &client{base: "http://" + tn.Nodes[0].APIAddr(), token: tn.Nodes[0].Token(), http: httpClient()}
	echoIn, _ := json.Marshal(base64.StdEncoding.EncodeToString([]byte("hello, verifiable world\n")))
	jobs := []struct {
		what string
		req  api.SubmitRequest
	}{
		{"iterated MiMC over BN254, proven with Groth16", api.SubmitRequest{Type: "mimc.chain.v1", Input: json.RawMessage(`{"x":"20261123"}`)}},
		{"int8 neural network inference, proven with Groth16 (needs a GPU node)", api.SubmitRequest{Type: "mlp.infer.v1", Input: json.RawMessage(`{"x":[12,-7,33,0,5,-128,127,9,-1,44,-60,3,8,-19,25,70]}`)}},
		{"a custom WASM module (echo), checked by 2 replicas agreeing", api.SubmitRequest{Type: "wasm.exec.v1", Input: echoIn, Module: tasks.EchoModule(), Replicas: 2}},
	}
	var mimcID string
	for i, j := range jobs {
		say("\n== %d. Submitting %s: %s", i+2, j.req.Type, j.what)
		var buf jsonCapture
		err := submitAndFollow(ctx, c, j.req, &buf, out, followOpts{})
		var ee exitError
		if err != nil && !errors.As(err, &ee) {
			return err
		}
		say("   state:  %s", buf.task.State)
		if buf.task.State != "accepted" {
			return fmt.Errorf("demo: %s ended %s: %s", j.req.Type, buf.task.State, buf.task.Reason)
		}
		var compact bytes.Buffer
		_ = json.Compact(&compact, buf.task.Output)
		say("   output: %s", compact.String())
		say("   trust:  %s", buf.task.Verification)
		if j.req.Type == "mimc.chain.v1" {
			mimcID = buf.task.TaskID
		}
	}

	say("\n== 5. Auditing the MiMC result offline, trusting no node")
	var bundle []byte
	if err := c.do(ctx, "GET", "/api/v1/tasks/"+mimcID+"/bundle", nil, &bundle); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "proofmesh-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "bundle.json")
	if err := os.WriteFile(path, bundle, 0o600); err != nil {
		return err
	}
	say("$ proofmesh verify %s", path)
	if code := run(ctx, []string{"verify", path}, out, progress); code != 0 {
		return fmt.Errorf("demo: the bundle did not verify")
	}
	say("\nDone: every result was accepted only after its proof (or its replicas) checked out.")
	return nil
}

// jsonCapture keeps the task JSON that submitAndFollow prints.
type jsonCapture struct{ task api.TaskView }

func (j *jsonCapture) Write(p []byte) (int, error) {
	return len(p), json.Unmarshal(p, &j.task)
}
