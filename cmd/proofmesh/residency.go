package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/proofmesh/proofmesh/internal/residency"
	"github.com/proofmesh/proofmesh/node"
)

// startupSettle is how long after start a node gives back the pages only
// its start-up used: by then it has listened, met its bootstrap peers,
// published its first heartbeat and served its first API calls.
var startupSettle = 10 * time.Second

// releaseStartupPages waits for start-up to settle, then gives the kernel
// back the binary's pages and the heap that start-up alone used
// (internal/residency). Best effort: a system that cannot is logged at
// debug and the node runs as before.
func releaseStartupPages(ctx context.Context, log *slog.Logger) {
	t := time.NewTimer(startupSettle)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	rel, err := residency.ReleaseStartupPages()
	switch {
	case errors.Is(err, residency.ErrUnsupported):
		log.Debug("start-up pages kept resident", "why", err)
	case err != nil:
		log.Warn("could not give start-up pages back to the kernel", "err", err)
	default:
		log.Debug("start-up pages given back to the kernel", "advised", rel.String())
	}
}

// procsPolicy and procsTick drive leanProcs (tests shorten them);
// newNode starts the node of `proofmesh node` (tests see its Config).
var (
	procsPolicy = residency.DefaultProcsPolicy
	procsTick   = time.Second
	newNode     = node.New
)

// leanProcs keeps one P while the node only gossips and every core while
// it computes or is busy (internal/residency.Procs), unless the operator
// set GOMAXPROCS: then theirs holds. The claimer it returns is nil when
// the policy does not run.
func leanProcs(ctx context.Context, log *slog.Logger) (node.CoreClaimer, func()) {
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 { // what the runtime heeds
			log.Debug("GOMAXPROCS kept as the environment sets it", "GOMAXPROCS", n)
			return nil, func() {}
		}
	}
	g, stop, err := residency.StartProcs(ctx, procsPolicy, procsTick, log)
	switch {
	case err != nil:
		log.Debug("every core kept", "why", err)
		return nil, stop
	case g == nil:
		log.Debug("every core kept", "why", "one core")
		return nil, stop
	}
	return g, stop
}
