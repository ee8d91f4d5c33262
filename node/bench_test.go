package node

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/node/api"
	"github.com/proofmesh/proofmesh/protocol"
	"github.com/proofmesh/proofmesh/sandbox"
	"github.com/proofmesh/proofmesh/tasks"
	"github.com/proofmesh/proofmesh/zk"
)

// BenchmarkTaskEndToEnd runs mimc.chain.v1 tasks on a 5-node loopback
// testnet and prints, in one run: the median time from submit to
// accepted; the median of execute, prove and verify measured alone on the
// same machine; their ratio (the mesh's overhead: gossip, ranking, claims,
// result validation on every node); and tasks per second with many in
// flight.
func BenchmarkTaskEndToEnd(b *testing.B) {
	ctx := context.Background()
	tn, err := StartTestnet(ctx, TestnetConfig{
		Nodes: 5, DataDir: b.TempDir(), HeartbeatInterval: 500 * time.Millisecond,
		Configure: func(_ int, c *Config) { c.WasmCacheDir = wasmCache },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer tn.Close(ctx)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	if err := tn.WaitConnected(wctx); err != nil {
		b.Fatal(err)
	}
	cancel()
	sub := tn.Nodes[0]
	const sequential, parallel = 5, 10
	input := func(i int) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"x":"%d"}`, 1000+i)) }

	// Alone: the three stages on this machine, outside the mesh.
	tt := sub.reg["mimc.chain.v1"]
	sb, err := sandbox.New(ctx, sandbox.Config{CacheDir: wasmCache, Workers: 1, CachedModules: 4, StderrTail: 1024})
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close(ctx)
	keys, _ := zk.DefaultKeys()
	prover := zk.NewProver(keys, 1)
	mod, _ := tasks.Module(tt.ID)
	lim := sandbox.Limits{MaxMemoryPages: tt.Profile.MaxMemoryPages, Timeout: time.Minute, Fuel: tt.Profile.Fuel,
		MaxInputBytes: tt.Profile.MaxInputBytes, MaxOutputBytes: tt.Profile.MaxOutputBytes}
	var alone []time.Duration
	for i := range sequential {
		in := []byte(fmt.Sprintf(`{"x":"%d"}`, 1000+i))
		t0 := time.Now()
		out, _, err := sb.Run(ctx, mod, in, lim)
		if err != nil {
			b.Fatal(err)
		}
		bind := zk.Binding([]byte("bench"), []byte(sub.ID().String()))
		proof, err := prover.Prove(ctx, tt.ID, in, out, bind)
		if err != nil {
			b.Fatal(err)
		}
		if err := keys.Verify(tt.ID, proof, in, out, bind); err != nil {
			b.Fatal(err)
		}
		alone = append(alone, time.Since(t0))
	}

	b.ResetTimer()
	var e2e []time.Duration
	for range b.N {
		e2e = e2e[:0]
		for i := range sequential {
			t0 := time.Now()
			id, err := sub.Submit(ctx, api.SubmitRequest{Type: tt.ID, Input: input(i)})
			if err != nil {
				b.Fatal(err)
			}
			if st := waitDone(sub, id); st != protocol.StateAccepted {
				b.Fatalf("task %s", st)
			}
			e2e = append(e2e, time.Since(t0))
		}
	}
	b.StopTimer()
	// Many in flight.
	t0 := time.Now()
	var wg sync.WaitGroup
	failed := make(chan string, parallel)
	for i := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := sub.Submit(ctx, api.SubmitRequest{Type: tt.ID, Input: input(100 + i)})
			if err != nil {
				failed <- err.Error()
				return
			}
			if st := waitDone(sub, id); st != protocol.StateAccepted {
				failed <- fmt.Sprintf("task %s: %s", id, st)
			}
		}()
	}
	wg.Wait()
	tps := float64(parallel) / time.Since(t0).Seconds()
	close(failed)
	for f := range failed {
		b.Fatalf("task in flight not accepted: %s", f) // tasks/s counts accepted tasks only
	}

	m, a := median(e2e), median(alone)
	b.ReportMetric(m.Seconds(), "submit-to-accepted-s")
	b.ReportMetric(a.Seconds(), "execute+prove+verify-alone-s")
	b.ReportMetric(m.Seconds()/a.Seconds(), "overhead-ratio")
	b.ReportMetric(tps, "tasks/s")
}

func waitDone(n *Node, id string) protocol.TaskState {
	for {
		v, err := n.Task(id)
		if err != nil || v.State.Terminal() {
			return v.State
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
