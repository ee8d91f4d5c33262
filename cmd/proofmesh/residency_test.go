package main

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/internal/logbuf"
	"github.com/proofmesh/proofmesh/internal/residency"
	"github.com/proofmesh/proofmesh/node"
)

// `proofmesh node` gives the kernel back its start-up pages once start-up
// has settled (internal/residency), and says so at debug level.
func TestNodeGivesBackStartupPages(t *testing.T) {
	old := startupSettle
	startupSettle = 100 * time.Millisecond
	t.Cleanup(func() { startupSettle = old })
	const given, kept = "start-up pages given back", "start-up pages kept resident"
	runNodeUntil(t, func(found string) {
		if found == kept {
			t.Skip("this kernel cannot page out on request")
		}
	}, given, kept)
}

// runNodeUntil runs `proofmesh node` with debug logs until its logs hold
// one of wants (or 30 s pass), calls check with it while the node runs,
// then stops it (also when check skips or fails the test).
func runNodeUntil(t *testing.T, check func(found string), wants ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb logbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"node", "--data-dir", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0",
			"--api", "127.0.0.1:0", "--log-level", "debug"}, &out, &errb)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("node exited %d: %s", code, errb.String())
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := errb.String()
		for _, w := range wants {
			if strings.Contains(logs, w) {
				check(w)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("none of %q in the logs 30 s after start; stdout %q, stderr:\n%s", wants, out.String(), logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// `proofmesh node` keeps one P once it is calm (internal/residency.Procs)
// and gives the runtime's default back when it stops; a GOMAXPROCS the
// operator set is left alone.
func TestNodeKeepsOneProcWhileCalm(t *testing.T) {
	// The policy runs where the environment leaves GOMAXPROCS alone, and
	// gives back the runtime's default, not what `go test -cpu` set.
	if v, set := os.LookupEnv("GOMAXPROCS"); set {
		t.Setenv("GOMAXPROCS", v) // restored after the test
		_ = os.Unsetenv("GOMAXPROCS")
	}
	old := runtime.GOMAXPROCS(0)
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	if def < 2 {
		t.Skip("one core: nothing to take back")
	}
	oldPolicy, oldTick, oldNew := procsPolicy, procsTick, newNode
	procsPolicy = residency.ProcsPolicy{Rise: 1e9, Fall: 1e9, Calm: 2, Wait: time.Hour, Queued: 1} // every tick calm
	procsTick = 50 * time.Millisecond
	given := make(chan node.CoreClaimer, 2) // what each node was given
	newNode = func(ctx context.Context, cfg node.Config) (*node.Node, error) {
		given <- cfg.Cores
		return oldNew(ctx, cfg)
	}
	nodeGiven := func() node.CoreClaimer {
		select {
		case c := <-given:
			return c
		case <-time.After(30 * time.Second):
			t.Fatal("no node started")
			return nil
		}
	}
	t.Cleanup(func() { procsPolicy, procsTick, newNode = oldPolicy, oldTick, oldNew })

	runNodeUntil(t, func(string) {
		if got := runtime.GOMAXPROCS(0); got != 1 {
			t.Errorf("calm node: GOMAXPROCS %d, want 1", got)
		}
		cores := nodeGiven()
		if cores == nil {
			t.Fatal("the node was not given the policy to claim cores from")
		}
		release := cores.Claim() // as a guest run does
		if got := runtime.GOMAXPROCS(0); got != def {
			t.Errorf("claimed: GOMAXPROCS %d, want %d", got, def)
		}
		release()
	}, "one P kept")
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("after the node stopped: GOMAXPROCS %d, want %d", got, def)
	}

	t.Setenv("GOMAXPROCS", strconv.Itoa(def))
	runNodeUntil(t, func(string) {
		time.Sleep(10 * procsTick) // a policy, were it running, would have acted
		if got := runtime.GOMAXPROCS(0); got != def {
			t.Errorf("GOMAXPROCS set by the operator: %d, want %d", got, def)
		}
		if nodeGiven() != nil {
			t.Error("the node was given a policy the operator's GOMAXPROCS turned off")
		}
	}, "GOMAXPROCS kept as the environment sets it")
}
