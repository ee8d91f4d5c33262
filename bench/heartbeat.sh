#!/usr/bin/env bash
# Runs BenchmarkHeartbeatDelivery (mesh/bench_test.go) once at 10, 50 and
# 200 nodes on go-libp2p's mocknet and prints its figures: p50/p99 time from
# publication to the last node's receipt, the share of heartbeats that
# reached every node, gossipsub bytes per node per interval, the interval.
#
#   bench/heartbeat.sh              all three sizes (about 2.5 min on 2 cores)
#   bench/heartbeat.sh 50           one size
#   bench/heartbeat.sh 200 -together   start every node at once (no phase spread)
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-}"
shift || true
pattern='BenchmarkHeartbeatDelivery'
if [ -n "$size" ]; then
	pattern="BenchmarkHeartbeatDelivery/nodes=${size}\$"
fi
args=()
if [ "$#" -gt 0 ]; then
	args=(-args "$@")
fi
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) cores, $(go version | cut -d' ' -f3)"
go test -run '^$' -bench "$pattern" -benchtime 1x -timeout 15m ./mesh/ "${args[@]}"
