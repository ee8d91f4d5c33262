#!/usr/bin/env bash
# Runs every fuzz target of the module for the given time each (default 60s).
#   bash scripts/fuzz.sh 30s
# Found inputs land in the package's testdata/fuzz/ and become regression
# cases that plain `go test` replays.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-60s}"
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "--- $pkg $target ($fuzztime)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
	done
done
