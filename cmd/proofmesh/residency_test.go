package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/proofmesh/proofmesh/internal/logbuf"
)

// `proofmesh node` gives the kernel back its start-up pages once start-up
// has settled (internal/residency), and says so at debug level.
func TestNodeGivesBackStartupPages(t *testing.T) {
	old := startupSettle
	startupSettle = 100 * time.Millisecond
	t.Cleanup(func() { startupSettle = old })
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb logbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"node", "--data-dir", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0",
			"--api", "127.0.0.1:0", "--log-level", "debug"}, &out, &errb)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := errb.String()
		if strings.Contains(logs, "start-up pages given back") {
			break
		}
		if strings.Contains(logs, "start-up pages kept resident") {
			cancel()
			<-done
			t.Skip("this kernel cannot page out on request")
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no word of the start-up pages 30 s after start; stdout %q, stderr:\n%s", out.String(), logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("node exited %d: %s", code, errb.String())
	}
}
