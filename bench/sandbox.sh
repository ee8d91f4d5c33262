#!/usr/bin/env bash
# Runs the sandbox benchmarks once and prints their figures: each built-in
# guest in the sandbox against the same function in native Go, the cost of
# fuel metering (a tight loop and a real guest), compile times (cold, disk
# cache, memory cache) and how late the wall-clock limit stops a loop.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) cores, $(go version | cut -d' ' -f3)"
go test -run '^$' -bench . -benchtime 1x -timeout 15m ./sandbox/
