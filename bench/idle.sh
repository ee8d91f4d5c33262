#!/usr/bin/env bash
# Starts one `proofmesh node` with default flags on a fresh data dir (its
# own ports: libp2p on ephemeral loopback ports, the API on a free one, no
# bootstrap peer), lets it idle, and prints its resident memory (VmRSS at
# the end of the wait, as the issue counts it, and VmRSS, VmHWM, RssAnon,
# RssFile at the end of the window) and the CPU it used (user+system, from /proc/<pid>/stat) over the
# idle window, then stops it with SIGTERM.
#
#   bench/idle.sh                 build ./cmd/proofmesh, wait 30 s, measure 30 s
#   bench/idle.sh BIN             use the binary BIN
#   WAIT=30 WINDOW=60 bench/idle.sh
#
# Linux only (/proc). CPU on a shared machine is what this process used,
# not wall time, so other load does not inflate it much; memory is exact.
set -euo pipefail
cd "$(dirname "$0")/.."
wait_s="${WAIT:-30}"
window_s="${WINDOW:-30}"
tmp="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
bin="${1:-}"
if [ -z "$bin" ]; then
	bin="$tmp/proofmesh"
	# the release build (make build, the docker image): no cgo, so no libc
	# mapped into the process
	CGO_ENABLED=0 go build -o "$bin" ./cmd/proofmesh
fi
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" node --data-dir "$tmp/data" --listen /ip4/127.0.0.1/tcp/0 --listen /ip4/127.0.0.1/udp/0/quic-v1 \
	--api "127.0.0.1:$port" --log-level warn >"$tmp/out" 2>&1 &
pid=$!
ticks() { awk '{print $14+$15}' "/proc/$pid/stat"; }
hz="$(getconf CLK_TCK)"
sleep "$wait_s"
kill -0 "$pid" || { cat "$tmp/out"; exit 1; }
t0="$(ticks)"
rss_at_wait="$(awk '/^VmRSS/{print $2, $3}' "/proc/$pid/status")"
# Clear the pages' referenced bits: at the end, Referenced is what the
# idle node touched during the window (its working set), as opposed to
# what start-up left mapped.
echo 1 >"/proc/$pid/clear_refs" 2>/dev/null || true
sleep "$window_s"
t1="$(ticks)"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) cores, $bin"
echo "VmRSS ${wait_s}s after start: $rss_at_wait"
grep -E '^(VmRSS|VmHWM|RssAnon|RssFile|Threads)' "/proc/$pid/status" | sed "s/^/$((wait_s + window_s))s after start: /"
# RssFile is mostly the binary's pages, shared by every node process of
# the machine: Pss charges each process its share of them.
grep -E '^Pss:' "/proc/$pid/smaps_rollup" | sed 's/^Pss:/Pss (alone):/' || true
grep -E '^Referenced:' "/proc/$pid/smaps_rollup" | sed "s/^Referenced:/touched over the ${window_s}s window:/" || true
awk -v a="$t0" -v b="$t1" -v hz="$hz" -v w="$window_s" \
	'BEGIN { cpu=(b-a)/hz; printf "cpu over %ds after %ds idle: %.3f s (%.2f%% of a core)\n", w, '"$wait_s"', cpu, 100*cpu/w }'
du -sh "$tmp/data" | awk '{print "data dir: " $1}'
