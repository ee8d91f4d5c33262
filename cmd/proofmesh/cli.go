package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/proofmesh/proofmesh/bootstrap"
	"github.com/proofmesh/proofmesh/internal/buildinfo"
	"github.com/proofmesh/proofmesh/internal/residency"
	"github.com/proofmesh/proofmesh/node"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/store"
	"github.com/proofmesh/proofmesh/zk"
)

// exitError carries an exit code through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintln(stderr, "proofmesh:", err)
		return 1
	}
}

func defaultDataDir() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".proofmesh")
	}
	return ".proofmesh"
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "proofmesh",
		Short: "A peer-to-peer mesh for verifiable compute",
		Long: `proofmesh runs a node of a peer-to-peer mesh that executes WASM tasks in a
sandbox and proves their results with Groth16, so nobody has to trust the
node that computed them.

Start here:
  proofmesh demo                        a local network, tasks of every type, verified results
  proofmesh testnet --nodes 5           a local network that keeps running
  proofmesh node --bootstrap ADDR       join a network (ADDR from another node's "proofmesh id")

Every flag can also be set as an environment variable PROOFMESH_<FLAG>,
e.g. PROOFMESH_BOOTSTRAP or PROOFMESH_DATA_DIR.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Version(),
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			warnUnknownEnv(cmd.Root(), os.Environ(), cmd.ErrOrStderr())
			return applyEnv(cmd.Flags())
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate(buildinfo.String(protocol.ProtocolMajor))
	root.AddCommand(initCmd(), nodeCmd(), idCmd(), testnetCmd(), demoCmd(),
		peersCmd(), tasksCmd(), taskCmd(), submitCmd(), cancelCmd(), logsCmd(), verifyCmd(), setupCmd(), auditCmd(), apikeyCmd(), versionCmd())
	return root
}

// applyEnv sets every flag not given on the command line from
// PROOFMESH_<NAME> (dashes as underscores).
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil || f.Name == "help" {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				err = sv.Replace(splitList(v))
			} else {
				err = f.Value.Set(v)
			}
			if err != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, err)
			}
		}
	})
	return err
}

// envName is the environment variable of a flag.
func envName(flag string) string {
	return "PROOFMESH_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// warnUnknownEnv names each PROOFMESH_ variable that is no flag of any
// command: a typo in one was ignored without a word, where the same typo
// in a flag stops the command (a new user's walkthrough of 2026-12-07).
func warnUnknownEnv(root *cobra.Command, environ []string, w io.Writer) {
	known := map[string]bool{"PROOFMESH_API_TOKEN": true}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { known[envName(f.Name)] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { known[envName(f.Name)] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "PROOFMESH_") || known[name] {
			continue
		}
		hint := ""
		best := 3
		for k := range known {
			if d := editDistance(name, k); d < best || d == best && hint != "" && k < hint {
				best, hint = d, k
			}
		}
		if hint != "" {
			hint = " (did you mean " + hint + "?)"
		}
		fmt.Fprintf(w, "proofmesh: %s is not the variable of any flag%s; ignored\n", name, hint)
	}
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func logger(stderr io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l})), nil
}

func initCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a data dir with identity.key and api.token (both 0600)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := node.Init(dataDir)
			if err != nil {
				return err
			}
			tok, err := node.LoadToken(dataDir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			state := map[bool]string{true: "created", false: "kept existing"}
			fmt.Fprintf(out, "data dir:   %s\n", dataDir)
			fmt.Fprintf(out, "peer id:    %s\n", res.PeerID)
			fmt.Fprintf(out, "identity:   %s (%s)\n", filepath.Join(dataDir, node.IdentityFile), state[res.KeyCreated])
			fmt.Fprintf(out, "api token:  %s (%s, fingerprint %s)\n", filepath.Join(dataDir, node.TokenFile), state[res.TokenCreated], node.TokenFingerprint(tok))
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the node's data directory")
	return cmd
}

func nodeCmd() *cobra.Command {
	cfg := node.DefaultConfig()
	var networkFile, logLevel string
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a node",
		Long: `Run a node until interrupted (Ctrl-C or SIGTERM), then leave the network
gracefully with a signed Leave. A node started on an empty data dir
initialises it. Capabilities not declared (cores, memory) are detected.

Example:
  proofmesh node --data-dir /var/lib/proofmesh \
    --listen /ip4/0.0.0.0/tcp/4001 --bootstrap /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW... \
    --gpu --region eu-west`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = log
			cfg.Version = buildinfo.Version()
			if networkFile != "" {
				if cfg.Network, err = bootstrap.LoadNetwork(networkFile); err != nil {
					return err
				}
			}
			if tok := os.Getenv("PROOFMESH_API_TOKEN"); tok != "" {
				cfg.APIToken = tok
			}
			// A small GOGC while the live heap is small (internal/residency).
			defer residency.AdaptGC(residency.DefaultGCPolicy)()
			// One P while the node only gossips (internal/residency),
			// until stopCores: not until cmd.Context() ends, which is
			// before n.Close leaves the network and flushes.
			cores, stopCores := leanProcs(context.WithoutCancel(cmd.Context()), log)
			defer stopCores()
			cfg.Cores = cores
			n, err := newNode(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s on network %s\n", n.ID(), n.Info().Network)
			for _, a := range n.Addrs() {
				fmt.Fprintf(cmd.OutOrStdout(), "  listening %s\n", a)
			}
			if a := n.APIAddr(); a != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "  api http://%s (token fingerprint %s)\n", a, node.TokenFingerprint(n.Token()))
			}
			go releaseStartupPages(cmd.Context(), log)
			<-cmd.Context().Done()
			fmt.Fprintln(cmd.ErrOrStderr(), "leaving the network…")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return n.Close(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "the node's data directory (identity.key, api.token, store)")
	f.StringSliceVar(&cfg.ListenAddrs, "listen", cfg.ListenAddrs, "libp2p multiaddr to listen on (repeatable)")
	f.StringSliceVar(&cfg.Bootstrap, "bootstrap", nil, "bootstrap peer multiaddr ending in /p2p/<id> (repeatable or comma-separated)")
	f.StringVar(&cfg.APIAddr, "api", cfg.APIAddr, "HTTP API host:port; empty disables it (beyond loopback a token is required)")
	f.StringVar(&networkFile, "network", "", "path to network.json (default: the built-in network \""+bootstrap.DefaultNetworkID+"\")")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", cfg.HeartbeatInterval, "base heartbeat interval (stretched as the network grows)")
	f.DurationVar(&cfg.TaskRetention, "task-retention", cfg.TaskRetention, "how long finished tasks, their results and bundles are kept (0: forever)")
	f.IntVar(&cfg.Declared.CPUCores, "cpu-cores", 0, "declared CPU cores (default: detected)")
	f.IntVar(&cfg.Declared.MemoryGB, "memory-gb", 0, "declared memory in GiB (default: detected)")
	f.BoolVar(&cfg.Declared.GPU, "gpu", false, "declare a GPU (mlp.infer.v1 needs one)")
	f.IntVar(&cfg.Declared.BandwidthMbps, "bandwidth-mbps", 0, "declared bandwidth in Mbit/s (10-100000)")
	f.StringVar(&cfg.Declared.NodeType, "node-type", "compute", "node type: compute, storage, gateway or verifier (verifiers execute nothing)")
	f.StringVar(&cfg.Declared.Region, "region", "", "declared region, 1-32 of [a-z0-9-]")
	f.BoolVar(&cfg.BootstrapOnly, "bootstrap-only", false, "only help others meet: no heartbeats, no tasks")
	f.BoolVar(&cfg.Colocation, "allow-colocation", false, "do not penalise many peers on one IP (local testnets)")
	f.StringSliceVar(&cfg.CORSOrigins, "cors-origin", nil, "browser origin allowed to call the API, e.g. https://dash.example (default: none)")
	f.StringSliceVar(&cfg.DenyPeers, "deny-peer", nil, "peer id never to talk to (repeatable or comma-separated)")
	f.IntVar(&cfg.KeepConns, "keep-conns", cfg.KeepConns, "connections kept: above it the least useful ones older than a minute are closed, down to a quarter of it besides the heartbeat topic's gossip mesh (at most 8), bootstrap peers and relays")
	f.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "connections libp2p accepts (1.25x inbound, 1.5x in all) before refusing; a burst above --keep-conns is trimmed later")
	f.IntVar(&cfg.P2PMemoryMB, "p2p-memory-mb", cfg.P2PMemoryMB, "memory libp2p connections and streams may hold together, in MiB (one peer at most an eighth)")
	f.StringVar(&cfg.KeysDir, "keys", "", "directory of ceremony keys (default: the shipped keys)")
	addReachFlags(f, &cfg)
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func verifyCmd() *cobra.Command {
	var networkFile, keysDir string
	cmd := &cobra.Command{
		Use:   "verify BUNDLE...",
		Short: "Verify result bundles offline, their proofs in one batch: signatures, binding, proof",
		Long: `Verify result bundles (from GET /api/v1/tasks/{id}/bundle) without trusting
any node: the task's signature by its submitting node and its id against its
content (input, candidates, schedule), each executor's signature, that each
executor was a distinct candidate, the binding of task and executor, and the
Groth16 proof under the network's pinned verifying key (or, for replicated
types, that a quorum agrees, and a plain statement of what that rests on).
A failed task's bundle holds the equal failure reports that confirmed it,
and verifies as a failure. Several bundles are checked together, their
proofs in one batch; each bad one is named. Exits 0 only if every bundle
verifies.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A file that cannot be read is that bundle's failure, not the
			// batch's: the others still get their verdicts.
			var datas [][]byte
			readErrs := make([]error, len(args))
			for i, a := range args {
				data, err := readLimited(a, node.MaxBundleBytes)
				if err != nil {
					readErrs[i] = err
					continue
				}
				datas = append(datas, data)
			}
			net := bootstrap.DefaultNetwork()
			var err error
			if networkFile != "" {
				if net, err = bootstrap.LoadNetwork(networkFile); err != nil {
					return err
				}
			}
			var keys *zk.KeySet
			if keysDir != "" {
				keys, err = zk.LoadKeys(keysDir)
			} else {
				keys, err = zk.DefaultKeys()
			}
			if err != nil {
				return err
			}
			if err := node.CheckPinnedKeys(net.Registry(), keys); err != nil {
				// Not a verdict on any bundle: the keys are not the network's.
				which := "the shipped keys"
				if keysDir != "" {
					which = "the keys in " + keysDir
				}
				return fmt.Errorf("%s are not the ones network %s pins (%v): verify with the network's keys, or name its network.json with --network", which, net.NetworkID, err)
			}
			verified, verrs := node.VerifyBundles(datas, net.Registry(), keys)
			reps, errs := make([]api.VerifyReport, len(args)), readErrs
			for i, k := 0, 0; i < len(args); i++ {
				if readErrs[i] == nil {
					reps[i], errs[i] = verified[k], verrs[k]
					k++
				}
			}
			out := cmd.OutOrStdout()
			bad := 0
			for i, rep := range reps {
				if len(args) > 1 {
					fmt.Fprintf(out, "== %s\n", args[i])
				}
				// Checks and trust quote the bundle (a failure report's
				// words): through cell, as every outside string.
				for _, c := range rep.Checks {
					fmt.Fprintf(out, "ok    %s\n", cell(c))
				}
				if errs[i] != nil {
					fmt.Fprintf(out, "FAIL  %s: %s\n", args[i], cell(errs[i].Error()))
					bad++
					continue
				}
				fmt.Fprintf(out, "trust %s\n", cell(rep.Trust))
				if rep.Failure != nil {
					fmt.Fprintf(out, "VALID failure of task %s (%s): %s\n", rep.TaskID, rep.Type, cell(rep.Failure.Summary()))
					continue
				}
				fmt.Fprintf(out, "VALID task %s (%s), %s\n", rep.TaskID, rep.Type, shownOutput(rep, net.Registry()))
			}
			if len(args) > 1 {
				fmt.Fprintf(out, "%d of %d bundles verify\n", len(args)-bad, len(args))
			}
			if bad > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&networkFile, "network", "", "network.json whose registry pins the keys (default: built-in)")
	cmd.Flags().StringVar(&keysDir, "keys", "", "ceremony keys directory (default: the shipped keys)")
	return cmd
}

// shownOutput is a verified bundle's output as `verify` prints it: a
// replicated type's stdout is bytes, shown in base64 and named so (empty
// said so); a proven type's is its JSON.
func shownOutput(rep api.VerifyReport, reg protocol.Registry) string {
	tt, ok := reg[rep.Type]
	switch {
	case !ok || tt.Verification.Kind != protocol.VerifyReplicated:
		return "output " + rep.Output
	case rep.Output == "":
		return "stdout empty"
	default:
		return "stdout (base64) " + rep.Output
	}
}

// maxCheckpointBytes bounds a checkpoint file: its JSON is a few hundred
// bytes.
const maxCheckpointBytes = 64 << 10

func readLimited(path string, limit int64) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

func setupCmd() *cobra.Command {
	var opt zk.CeremonyOptions
	cmd := &cobra.Command{
		Use:   "setup --out DIR",
		Short: "Run the Groth16 key ceremony, in one process or among participants on separate machines",
		Long: `Run the multi-party key ceremony (gnark mpcsetup) for the built-in circuits and
write <circuit>.pk, <circuit>.vk and manifest.json (their hashes) to DIR.
A network that uses these keys pins each vk hash in its network.json.
mimc.chain.v1 takes a few minutes on two cores.

Without a subcommand every contribution is made in this process, which is
fine for a test network. For a real one, let each participant contribute
on its own machine to a transcript directory that passes between them:

  proofmesh setup init --dir C                       coordinator
  proofmesh setup contribute --dir C --name alice    each participant (phase 1)
  proofmesh setup close-phase1 --dir C --beacon HEX  coordinator
  proofmesh setup contribute --dir C --name alice    each participant (phase 2)
  proofmesh setup finalize --dir C --beacon HEX --out KEYS
  proofmesh setup verify --dir C --keys KEYS         anyone

The keys are sound if one participant was honest. A beacon is a public
random value (hex, 16 bytes or more) that nobody could know before the
phase's last contribution, such as a future block hash announced in advance.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opt.OutDir == "" {
				return errors.New("--out is required")
			}
			log, _ := logger(cmd.ErrOrStderr(), "info")
			opt.Logger = log
			m, err := zk.RunCeremony(cmd.Context(), opt)
			if err != nil {
				return err
			}
			for id, c := range m.Circuits {
				fmt.Fprintf(cmd.OutOrStdout(), "%s  vk sha256 %s  (%d constraints)\n", id, c.VerifyingKeySHA256, c.Constraints)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opt.OutDir, "out", "", "output directory")
	cmd.Flags().StringSliceVar(&opt.Circuits, "circuits", nil, "circuits (default: all built-in)")
	cmd.Flags().IntVar(&opt.Contributions, "contributions", zk.DefaultContributions, "contributions per phase")
	cmd.AddCommand(ceremonyInitCmd(), ceremonyContributeCmd(), ceremonyClosePhase1Cmd(), ceremonyFinalizeCmd(), ceremonyVerifyCmd())
	return cmd
}

func ceremonyInitCmd() *cobra.Command {
	var dir string
	var circuits []string
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Start a distributed ceremony: a transcript directory for the participants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := zk.InitCeremony(cmd.Context(), dir, circuits)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ceremony for %s started in %s (phase 1, domain %d)\nnext: each participant runs  proofmesh setup contribute --dir %s --name NAME\n",
				strings.Join(t.Circuits, ", "), dir, t.Phase1Domain, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the transcript directory (created)")
	cmd.Flags().StringSliceVar(&circuits, "circuits", nil, "circuits (default: all built-in)")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

func ceremonyContributeCmd() *cobra.Command {
	var dir, name string
	cmd := &cobra.Command{
		Use:   "contribute --dir DIR --name NAME",
		Short: "Add your contribution to the open phase; publish the hash it prints",
		Long: `Check the contribution before yours, add yours (fresh randomness from this
machine, dropped when the command returns) and record it in the transcript.
Publish the printed hashes where the other participants can see them: the
final manifest lists every contribution's hash, so you can check yours is in.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			made, err := zk.ContributeCeremony(cmd.Context(), dir, name)
			if err != nil {
				return err
			}
			for _, c := range made {
				what := "phase 1"
				if c.Phase == 2 {
					what = "phase 2 of " + c.Circuit
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s contribution %d by %s: sha256 %s (%s)\n", what, c.Index, c.Participant, c.SHA256, c.File)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the transcript directory")
	cmd.Flags().StringVar(&name, "name", "", "your name as the transcript records it (1-64 printable characters)")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func ceremonyClosePhase1Cmd() *cobra.Command {
	var dir, beacon string
	cmd := &cobra.Command{
		Use:   "close-phase1 --dir DIR --beacon HEX",
		Short: "Verify every phase-1 contribution, seal phase 1 and open phase 2",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := parseBeacon(beacon)
			if err != nil {
				return err
			}
			if err := zk.ClosePhase1(cmd.Context(), dir, b); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "phase 1 verified and sealed; phase 2 open: each participant runs  proofmesh setup contribute --dir %s --name NAME\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the transcript directory")
	cmd.Flags().StringVar(&beacon, "beacon", "", "public random beacon, hex of 16 bytes or more")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagRequired("beacon")
	return cmd
}

func ceremonyFinalizeCmd() *cobra.Command {
	var dir, beacon, out string
	cmd := &cobra.Command{
		Use:   "finalize --dir DIR --beacon HEX --out KEYS",
		Short: "Verify the whole transcript, seal phase 2 and write the keys and manifest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := parseBeacon(beacon)
			if err != nil {
				return err
			}
			m, err := zk.FinalizeCeremony(cmd.Context(), dir, b, out)
			if err != nil {
				return err
			}
			printManifest(cmd.OutOrStdout(), m)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the transcript directory")
	cmd.Flags().StringVar(&beacon, "beacon", "", "public random beacon, hex of 16 bytes or more")
	cmd.Flags().StringVar(&out, "out", "", "directory for the keys and manifest.json")
	for _, f := range []string{"dir", "beacon", "out"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func ceremonyVerifyCmd() *cobra.Command {
	var dir, keys string
	cmd := &cobra.Command{
		Use:   "verify --dir DIR [--keys KEYS]",
		Short: "Re-verify a ceremony transcript from the start; with --keys, check that it gives those keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			t, m, err := zk.VerifyCeremony(cmd.Context(), dir)
			if err != nil {
				fmt.Fprintf(w, "FAIL  %v\n", err)
				return exitError{1}
			}
			fmt.Fprintf(w, "ok    %d contributions verified (%s)\n", len(t.Contributions), t.Phase)
			if m == nil {
				if keys != "" {
					fmt.Fprintf(w, "FAIL  the ceremony is not finalized: no keys to compare with %s\n", keys)
					return exitError{1}
				}
				return nil
			}
			printManifest(w, m)
			if keys == "" {
				return nil
			}
			ks, err := zk.LoadKeys(keys)
			if err != nil {
				fmt.Fprintf(w, "FAIL  %v\n", err)
				return exitError{1}
			}
			have := ks.Manifest()
			bad := false
			for id, c := range m.Circuits {
				h, ok := have.Circuits[id]
				if !ok || h.VerifyingKeySHA256 != c.VerifyingKeySHA256 || h.ProvingKeySHA256 != c.ProvingKeySHA256 {
					fmt.Fprintf(w, "FAIL  %s: %s does not hold the keys this transcript gives\n", id, keys)
					bad = true
				}
			}
			if bad {
				return exitError{1}
			}
			fmt.Fprintf(w, "ok    the keys in %s are the ones this transcript gives\n", keys)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the transcript directory")
	cmd.Flags().StringVar(&keys, "keys", "", "a keys directory (with manifest.json) to compare")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

func printManifest(w io.Writer, m *zk.Manifest) {
	for _, id := range slices.Sorted(maps.Keys(m.Circuits)) {
		c := m.Circuits[id]
		fmt.Fprintf(w, "%s  vk sha256 %s  (%d constraints, %d phase-2 contributions)\n", id, c.VerifyingKeySHA256, c.Constraints, len(c.Phase2Contributions))
	}
}

func parseBeacon(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		return nil, fmt.Errorf("--beacon %q: not hex: %v", s, err)
	}
	if len(b) < 16 {
		return nil, fmt.Errorf("--beacon: %d bytes, want 16 or more", len(b))
	}
	return b, nil
}

func auditCmd() *cobra.Command {
	audit := &cobra.Command{Use: "audit", Short: "Inspect the tamper-evident audit chain"}
	var dataDir string
	var checkpoints []string
	v := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit chain of a stopped node's store, and that it holds the checkpoints you kept",
		Long: `Check the hash chain of a stopped node's audit log. The chain alone shows an
edited or removed entry; whoever holds the store could still rebuild a
consistent chain from scratch. Checkpoints kept outside the node
(proofmesh audit checkpoint > cp.json, say once a day) catch that too:
each must name an entry the chain holds, with the same hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var envs [][]byte
			for _, f := range checkpoints {
				raw, err := readLimited(f, maxCheckpointBytes)
				if err != nil {
					return fmt.Errorf("checkpoint %s: %w", f, err)
				}
				// Strict: a key given twice shows a person the first value
				// while the decoder keeps the last.
				var cp api.AuditCheckpoint
				if err := protocol.DecodeWire(raw, maxCheckpointBytes, &cp); err != nil || len(cp.Envelope) == 0 {
					return fmt.Errorf("checkpoint %s: not the JSON of proofmesh audit checkpoint (%v)", f, err)
				}
				// What a person reads must be what is signed.
				signed, err := protocol.OpenAuditCheckpoint(cp.Envelope)
				if err != nil {
					return fmt.Errorf("checkpoint %s: its signature does not verify: %v", f, err)
				}
				if signed.NodeID != cp.NodeID || signed.Seq != cp.Seq || signed.Hash != cp.Hash || !cp.Time.Equal(time.UnixMilli(signed.Time)) {
					return fmt.Errorf("checkpoint %s: its visible fields (node %s, entry %d, hash %s, time %s) differ from what is signed (node %s, entry %d, hash %s, time %s): it was edited",
						f, cp.NodeID, cp.Seq, cp.Hash, cp.Time.UTC().Format(time.RFC3339Nano), signed.NodeID, signed.Seq, signed.Hash, time.UnixMilli(signed.Time).UTC().Format(time.RFC3339Nano))
				}
				envs = append(envs, cp.Envelope)
			}
			n, err := node.VerifyAuditFile(dataDir, envs...)
			if errors.Is(err, store.ErrLocked) {
				// Not a verdict on the chain: it could not be read.
				return fmt.Errorf("the node on %s is running and holds its store: stop it, or ask it with GET /api/v1/audit/verify (proofmesh audit verify needs the store to itself)", dataDir)
			}
			if err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "BROKEN after %d good entries: %v\n", n, err)
				return exitError{1}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "audit chain of %s intact: %d entries", filepath.Join(dataDir, node.StoreFile), n)
			if len(envs) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), ", holds all %d checkpoints", len(envs))
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	v.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the node's data directory")
	v.Flags().StringSliceVar(&checkpoints, "checkpoint", nil, "a checkpoint file from proofmesh audit checkpoint (repeatable)")

	var cf clientFlags
	c := &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the running node's audit head, signed by its key; keep it somewhere the node cannot reach",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := cf.client()
			if err != nil {
				return err
			}
			var raw []byte
			if err := cl.do(cmd.Context(), http.MethodGet, "/api/v1/audit/checkpoint", nil, &raw); err != nil {
				return err
			}
			var cp api.AuditCheckpoint
			if err := json.Unmarshal(raw, &cp); err != nil {
				return fmt.Errorf("checkpoint answer: %w", err)
			}
			if _, err := protocol.OpenAuditCheckpoint(cp.Envelope); err != nil {
				return fmt.Errorf("the node's checkpoint does not verify: %w", err)
			}
			_, err = cmd.OutOrStdout().Write(append(raw, '\n'))
			return err
		},
	}
	cf.add(c)
	audit.AddCommand(v, c)
	return audit
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the release, commit and wire protocol major of this build",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), buildinfo.String(protocol.ProtocolMajor))
			return err
		},
	}
}
