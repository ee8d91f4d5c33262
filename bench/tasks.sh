#!/usr/bin/env bash
# Runs BenchmarkTaskEndToEnd once on a 5-node loopback testnet and prints
# the time from submit to accepted against execute+prove+verify alone (the
# mesh's overhead as a ratio) and tasks per second with 10 in flight.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) cores, $(go version | cut -d' ' -f3)"
go test -run '^$' -bench BenchmarkTaskEndToEnd -benchtime 1x -timeout 15m ./node/
