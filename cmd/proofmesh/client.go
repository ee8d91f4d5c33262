package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/proofmesh/proofmesh/node"
	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
)

func peerIDFromKey(k crypto.PrivKey) (peer.ID, error) { return peer.IDFromPrivateKey(k) }

// client talks to a node's HTTP API.
type client struct {
	base  string
	token string
	http  *http.Client
}

type clientFlags struct {
	api     string
	dataDir string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.api, "api", "127.0.0.1:8080", "the node's API host:port")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", defaultDataDir(), "data dir holding api.token (or set PROOFMESH_API_TOKEN)")
}

func (f *clientFlags) client() (*client, error) {
	tok := os.Getenv("PROOFMESH_API_TOKEN")
	if tok == "" {
		var err error
		if tok, err = node.LoadToken(f.dataDir); err != nil {
			return nil, fmt.Errorf("api token: %w (or set PROOFMESH_API_TOKEN)", err)
		}
	}
	base := f.api
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	return &client{base: strings.TrimSuffix(base, "/"), token: tok, http: &http.Client{}}, nil
}

// apiError is an error answer of the API.
type apiError struct {
	status int
	body   api.Error
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (%d): %s", e.body.Error, e.status, withoutWord(e.body.Message, e.body.Error))
}

// withoutWord drops the error word from the ends of an API message, where
// the node's wrapped error carries it ("conflict (409): task … is failed,
// not accepted: conflict"): the line already starts with it.
func withoutWord(msg, word string) string {
	w := strings.ReplaceAll(word, "_", " ")
	if m, ok := strings.CutPrefix(msg, w+": "); ok {
		msg = m
	}
	if m, ok := strings.CutSuffix(msg, ": "+w); ok {
		msg = m
	}
	return msg
}

func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is the node running with --api %s?)", method, path, err, strings.TrimPrefix(c.base, "http://"))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &apiError{status: resp.StatusCode}
		if json.Unmarshal(data, &e.body) != nil || e.body.Error == "" {
			e.body = api.Error{Error: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(data))}
		}
		return e
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the node's answer (%d bytes) is not what was asked for: %w", method, path, len(data), err)
	}
	return nil
}

// watch follows a task's server-sent events, calling onEvent for each
// timeline entry and onWaiting for each new account of the offline
// executors it waits for (TaskView.Waiting; "" when it no longer does),
// until the task ends; it returns the final task.
// errStreamEnded is a task's event stream closed before its end: the node
// went away.
var errStreamEnded = errors.New("event stream ended before the task did")

func (c *client) watch(ctx context.Context, id string, onEvent, onWaiting func(api.Event)) (api.TaskView, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/tasks/"+id+"/events", nil)
	if err != nil {
		return api.TaskView{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return api.TaskView{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return api.TaskView{}, fmt.Errorf("events of %s: %s", id, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var event string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := []byte(strings.TrimPrefix(line, "data: "))
			switch event {
			case "state":
				var e api.Event
				if json.Unmarshal(data, &e) == nil && onEvent != nil {
					onEvent(e)
				}
			case "waiting":
				var e api.Event
				if json.Unmarshal(data, &e) == nil && onWaiting != nil {
					onWaiting(e)
				}
			case "end":
				// The end of this task, and an end: anything else is not
				// taken for a result.
				var t api.TaskView
				if err := json.Unmarshal(data, &t); err != nil {
					return api.TaskView{}, fmt.Errorf("events of %s: the end event is not a task: %w", id, err)
				}
				if t.TaskID != id || !t.State.Terminal() {
					return api.TaskView{}, fmt.Errorf("events of %s: the end event is task %q in state %q, not this task ended", id, cell(t.TaskID), cell(string(t.State)))
				}
				return t, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return api.TaskView{}, err
	}
	return api.TaskView{}, errStreamEnded
}

func peersCmd() *cobra.Command {
	var cf clientFlags
	var status string
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the peers a node sees",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var peers []api.PeerView
			path := "/api/v1/peers"
			if status != "" {
				path += "?status=" + status
			}
			if err := c.do(cmd.Context(), http.MethodGet, path, nil, &peers); err != nil {
				return err
			}
			return printPeers(cmd.OutOrStdout(), peers, time.Now())
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&status, "status", "", "only peers in this status: online, stale, offline, deleted, incompatible (another network or protocol major)")
	return cmd
}

func tasksCmd() *cobra.Command {
	var cf clientFlags
	var state, typ, after string
	var limit int
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "List the tasks a node knows, newest first (--type, --state, --limit, --after for paging)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var ts []api.TaskView
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "type": typ, "after": after} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			path := "/api/v1/tasks"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			if err := c.do(cmd.Context(), http.MethodGet, path, nil, &ts); err != nil {
				return err
			}
			return printTasks(cmd.OutOrStdout(), ts)
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&state, "state", "", "only tasks in this state")
	cmd.Flags().StringVar(&typ, "type", "", "only tasks of this type")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many (default 100, at most 1000)")
	cmd.Flags().StringVar(&after, "after", "", "start after this task id (the last of the page before)")
	return cmd
}

// printPeers prints the peer table for people. Every cell that comes from
// outside passes through cell, so a peer cannot colour the terminal, move
// the cursor or forge a row.
func printPeers(w io.Writer, peers []api.PeerView, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tSTATUS\tTYPE\tREGION\tVERSION\tLOAD\tLAST SEEN\tVERIFIED\tREJECTED")
	for _, p := range peers {
		seen := "-"
		if !p.LastSeen.IsZero() {
			seen = now.Sub(p.LastSeen).Round(time.Second).String() + " ago"
		}
		version := p.Version
		if p.Protocol != "" {
			version += " (" + p.Protocol + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%d\t%d\n", cell(p.ID), cell(string(p.Status)), cell(p.NodeType), cell(p.Region), cell(version), p.Load, seen, p.Verified, p.Rejected)
	}
	return tw.Flush()
}

// printTasks prints the task table for people, every outside cell escaped.
func printTasks(w io.Writer, ts []api.TaskView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tTYPE\tSTATE\tCREATED\tREASON")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cell(t.TaskID), cell(t.Type), cell(string(t.State)), t.Created.Local().Format(time.TimeOnly), cell(t.Reason))
	}
	return tw.Flush()
}

// cell makes a string from outside safe to print in a table: control
// characters (escape, carriage return, newline, tab, DEL, C1), Unicode
// format characters (bidirectional overrides) and invalid UTF-8 print as
// Go escapes (\x1b, \u202e), so nothing reaches the terminal as a control
// sequence and no value can end a row or a column.
func cell(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, needsEscape) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				fmt.Fprintf(&b, "\\x%02x", s[i]) // a byte that is not UTF-8
				continue
			}
		}
		switch {
		case needsEscape(r) && r < 0x100:
			fmt.Fprintf(&b, "\\x%02x", r)
		case needsEscape(r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func needsEscape(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

func taskCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "task ID",
		Short: "Show one task as JSON: state, timeline, result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var raw []byte
			if err := c.do(cmd.Context(), http.MethodGet, "/api/v1/tasks/"+args[0], nil, &raw); err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(raw)
			return err
		},
	}
	cf.add(cmd)
	return cmd
}

func submitCmd() *cobra.Command {
	var cf clientFlags
	var typ, input, inputFile, moduleFile string
	var replicas int
	var args, env []string
	var timeout time.Duration
	var fuel uint64
	var detach, rawOut bool
	var files, outputs []string
	var outputDir string
	cmd := &cobra.Command{
		Use:   "submit --type TYPE (--input JSON | --input-file FILE | --input-file -)",
		Short: "Submit a task, follow it, print it as JSON; exit 0 only if accepted",
		Long: `Submit a task to a node and follow it: progress goes to stderr, the final
task (task_id, state, output, timeline, …) to stdout as JSON. The exit code
is 0 only if the task was accepted with a verified result.

Inputs: mimc.chain.v1 takes {"x": "<decimal>"}, mlp.infer.v1 {"x": [16 ints
in -128..127]}; wasm.exec.v1 takes raw bytes (--input-file) and --module.

Examples:
  proofmesh submit --type mimc.chain.v1 --input '{"x": "42"}'
  echo hello | proofmesh submit --type wasm.exec.v1 --module echo.wasm --input-file -
  proofmesh submit --type wasm.exec.v1 --module app.wasm --input-file in.txt \
      --arg --verbose --env MODE=fast --timeout 5s --fuel 1000000000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case typ == "":
				return errors.New("--type is required (GET /api/v1/task-types lists the network's types: mimc.chain.v1, mlp.infer.v1, wasm.exec.v1 on devnet)")
			case typ == "wasm.exec.v1" && moduleFile == "":
				return errors.New("--module is required for wasm.exec.v1: it runs the submitter's own module (a .wasm file)")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			req := api.SubmitRequest{Type: typ, Replicas: replicas, Args: args}
			for _, kv := range env {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--env %q: want NAME=VALUE", kv)
				}
				if req.Env == nil {
					req.Env = map[string]string{}
				}
				if _, dup := req.Env[k]; dup {
					return fmt.Errorf("--env %s given twice: which value the module should see is unclear", k)
				}
				req.Env[k] = v
			}
			if timeout < 0 || (timeout > 0 && timeout < time.Millisecond) {
				return fmt.Errorf("--timeout %s: want a whole number of milliseconds or more, such as 5s", timeout)
			}
			if timeout > 0 || fuel > 0 {
				req.Limits = &protocol.JobLimits{TimeoutMS: timeout.Milliseconds(), Fuel: fuel}
			}
			for _, spec := range files {
				local, guest, ok := strings.Cut(spec, "=")
				if !ok || local == "" || !strings.HasPrefix(guest, protocol.JobInDir+"/") {
					return fmt.Errorf("--file %q: want LOCAL=/in/PATH", spec)
				}
				b, err := readLimited(local, 16<<20)
				if err != nil {
					return err
				}
				if req.Files == nil {
					req.Files = map[string]json.RawMessage{}
				}
				if _, dup := req.Files[guest]; dup {
					return fmt.Errorf("--file: %s given twice: one path holds one file", guest)
				}
				req.Files[guest], _ = json.Marshal(b) // base64
			}
			req.Outputs = outputs
			if outputDir != "" && len(outputs) == 0 {
				return errors.New("--output-dir needs --output /out/PATH for each file to collect")
			}
			var raw []byte
			given := cmd.Flags().Changed("input") // --input '' is an empty input
			switch {
			case given && inputFile != "":
				return errors.New("give --input or --input-file, not both")
			case given:
				raw = []byte(input)
			case inputFile != "":
				if raw, err = readLimited(inputFile, 16<<20); err != nil {
					return err
				}
			default:
				return errors.New("--input or --input-file is required")
			}
			if moduleFile != "" {
				if req.Module, err = readLimited(moduleFile, 16<<20); err != nil {
					return err
				}
				// wasm.exec.v1 input is raw bytes, sent as base64.
				b, _ := json.Marshal(raw)
				req.Input = b
			} else {
				if !json.Valid(raw) {
					return fmt.Errorf("the input of %s is JSON, such as {\"x\": \"42\"}; this is not JSON: %q (raw bytes go to --type wasm.exec.v1 with --module)", typ, clipArg(raw))
				}
				req.Input = raw
			}
			return submitAndFollow(cmd.Context(), c, req, cmd.OutOrStdout(), cmd.ErrOrStderr(), followOpts{detach: detach, raw: rawOut, outputDir: outputDir})
		},
	}
	cf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "task type (see GET /api/v1/task-types)")
	f.StringVar(&input, "input", "", "the input as JSON (wasm.exec.v1: its bytes as given; --input '' is an empty input)")
	f.StringVar(&inputFile, "input-file", "", "read the input from a file ('-' for stdin)")
	f.StringVar(&moduleFile, "module", "", "WASM module for wasm.exec.v1")
	f.IntVar(&replicas, "replicas", 0, "candidates that start it at once (default: the type's); a replicated type is accepted when its quorum agrees (wasm.exec.v1: 2 in the default network), and the other runs stop")
	f.StringArrayVar(&args, "arg", nil, "an argument for the module (repeatable; wasm.exec.v1)")
	f.StringArrayVar(&env, "env", nil, "an environment variable NAME=VALUE for the module (repeatable; wasm.exec.v1)")
	f.DurationVar(&timeout, "timeout", 0, "the job's time limit, at most the type's (wasm.exec.v1)")
	f.Uint64Var(&fuel, "fuel", 0, "the job's fuel budget, at most the type's (wasm.exec.v1)")
	f.StringArrayVar(&files, "file", nil, "LOCAL=/in/PATH: a file the module reads, read-only (repeatable; wasm.exec.v1)")
	f.StringArrayVar(&outputs, "output", nil, "/out/PATH: a file the module writes, collected after it exits (repeatable)")
	f.StringVar(&outputDir, "output-dir", "", "where to write the collected output files (default: not written)")
	f.BoolVar(&detach, "detach", false, "print {\"task_id\"} and return at once instead of following the task")
	f.BoolVar(&rawOut, "raw", false, "print the accepted output's bytes (decoded for wasm.exec.v1) instead of the task's JSON")
	return cmd
}

// submitAndFollow submits, shows progress on progress, prints the final
// task to out, and returns exitError{1} unless it was accepted.
// followOpts are submit's --detach and --raw.
type followOpts struct {
	detach    bool   // print {"task_id"} and return at once
	raw       bool   // print the accepted output's bytes, not the task's JSON
	outputDir string // write the accepted task's output files here
}

func submitAndFollow(ctx context.Context, c *client, req api.SubmitRequest, out, progress io.Writer, o followOpts) error {
	var res struct {
		TaskID string `json:"task_id"`
	}
	start := time.Now()
	err := c.do(ctx, http.MethodPost, "/api/v1/tasks", req, &res)
	var ae *apiError
	if errors.As(err, &ae) && ae.body.TaskID != "" {
		fmt.Fprintf(progress, "task %s refused: %s\n", ae.body.TaskID, ae.body.Message)
		res.TaskID = ae.body.TaskID
	} else if err != nil {
		return err
	} else {
		fmt.Fprintf(progress, "task %s submitted\n", res.TaskID)
		if o.detach {
			return json.NewEncoder(out).Encode(res)
		}
	}
	final, err := c.watch(ctx, res.TaskID, func(e api.Event) {
		fmt.Fprintf(progress, "  %6.2fs  %-9s %s\n", e.Time.Sub(start).Seconds(), cell(string(e.State)), cell(e.Detail))
	}, func(e api.Event) {
		if e.Detail != "" {
			fmt.Fprintf(progress, "  %6.2fs  %-9s %s\n", e.Time.Sub(start).Seconds(), "waiting", cell(e.Detail))
		}
	})
	if err != nil {
		var ne *net.OpError
		if ctx.Err() != nil || !errors.Is(err, errStreamEnded) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &ne) {
			return err
		}
		// The node went away mid-task (a new user's walkthrough of
		// 2026-12-07 saw a bare "unexpected EOF"): the task lives on in
		// the network.
		return fmt.Errorf("lost the node at %s while following task %s: %w; the task goes on in the network: follow it from another node with proofmesh task %s --api HOST:PORT", c.base, res.TaskID, err, res.TaskID)
	}
	if o.raw && final.State == protocol.StateAccepted {
		if err := writeRaw(out, final.Output); err != nil {
			return err
		}
	} else {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(final); err != nil {
			return err
		}
	}
	if final.State != protocol.StateAccepted {
		fmt.Fprintf(progress, "task %s %s: %s\n", res.TaskID, final.State, cell(final.Reason))
		return exitError{1}
	}
	if o.outputDir != "" {
		return downloadFiles(ctx, c, final, req.Outputs, o.outputDir, progress)
	}
	return nil
}

// downloadFiles writes an accepted task's output files under dir, each at
// its path below /out (checked again here: nothing lands outside dir).
func downloadFiles(ctx context.Context, c *client, v api.TaskView, outputs []string, dir string, progress io.Writer) error {
	for _, f := range v.Files {
		rel, ok := strings.CutPrefix(f.Path, protocol.JobOutDir+"/")
		if !ok || protocol.CheckJobPath(protocol.JobOutDir, f.Path) != nil {
			return fmt.Errorf("output file %q is not a path under /out", f.Path)
		}
		var b []byte
		if err := c.do(ctx, http.MethodGet, "/api/v1/tasks/"+v.TaskID+"/files"+f.Path, nil, &b); err != nil {
			return fmt.Errorf("output file %s: %w", f.Path, err)
		}
		if protocol.HashHex(b) != f.Hash {
			return fmt.Errorf("output file %s: the node sent bytes whose sha256 is not %s", f.Path, f.Hash)
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(progress, "wrote %s (%d bytes)\n", dst, len(b))
	}
	// A declared output the module did not write is not an error of the
	// task (replicas agree on what was written), but say so (a new user's
	// walkthrough of 2026-12-07 was told nothing).
	for _, want := range outputs {
		if !slices.ContainsFunc(v.Files, func(f protocol.OutputFile) bool { return f.Path == want }) {
			fmt.Fprintf(progress, "%s: not written by the module (declared with --output)\n", want)
		}
	}
	return nil
}

// writeRaw writes an accepted output as bytes: a wasm.exec.v1 output (a
// base64 JSON string) decoded, a typed task's JSON as it is.
func writeRaw(w io.Writer, output json.RawMessage) error {
	var s string
	if err := json.Unmarshal(output, &s); err == nil {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("output is not base64: %v", err)
		}
		_, err = w.Write(b)
		return err
	}
	_, err := fmt.Fprintf(w, "%s\n", output)
	return err
}

func logsCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Show what each executor of a task reported: exit code or trap, the end of stderr",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var v api.TaskView
			if err := c.do(cmd.Context(), http.MethodGet, "/api/v1/tasks/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			return printLogs(cmd.OutOrStdout(), v)
		},
	}
	cf.add(cmd)
	return cmd
}

// printLogs prints each executor's report; stderr comes from the module,
// so every line of it passes through cell.
func printLogs(w io.Writer, v api.TaskView) error {
	fmt.Fprintf(w, "task %s (%s): %s", v.TaskID, cell(v.Type), v.State)
	if v.Reason != "" {
		fmt.Fprintf(w, ": %s", cell(v.Reason))
	}
	fmt.Fprintln(w)
	if v.Waiting != "" {
		fmt.Fprintf(w, "waiting: %s\n", cell(v.Waiting))
	}
	if len(v.Results) == 0 {
		fmt.Fprintln(w, "no executor has reported yet")
	}
	for _, r := range v.Results {
		what := fmt.Sprintf("exit code %d", r.ExitCode)
		if r.Trap != "" {
			what = protocol.TrapLabel(r.Trap)
		}
		settled := ""
		if r.Settled {
			settled = ", settled the task"
		}
		fmt.Fprintf(w, "\n== executor %s: %s, %d ms, fuel %d%s\n", cell(r.Executor), cell(what), r.WallMS, r.FuelUsed, settled)
		if len(r.Stderr) == 0 {
			fmt.Fprintln(w, "(no stderr)")
			continue
		}
		for _, line := range strings.Split(strings.TrimRight(string(r.Stderr), "\n"), "\n") {
			fmt.Fprintln(w, cell(line))
		}
	}
	return nil
}

// clipArg shortens what a person typed for an error message.
func clipArg(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}

func cancelCmd() *cobra.Command {
	var cf clientFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a task submitted through this node (admin, or the key that submitted it)",
		Long: `Ask the node a task was submitted to for a signed cancel: executors stop
its run and every node marks it canceled within seconds.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			path := "/api/v1/tasks/" + url.PathEscape(args[0])
			if reason != "" {
				path += "?reason=" + url.QueryEscape(reason)
			}
			if err := c.do(cmd.Context(), http.MethodDelete, path, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "cancel of %s published\n", args[0])
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the task's timeline")
	return cmd
}

func httpClient() *http.Client { return &http.Client{} }
