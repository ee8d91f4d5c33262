#!/usr/bin/env bash
# Starts N real `proofmesh node` processes on loopback (node 0 is every
# other's bootstrap peer), lets them settle, then measures over a window
# each node's CPU (user+system from /proc/<pid>/stat) and the heartbeats it
# accepted (proofmesh_heartbeats_received_total from its /metrics), and
# prints the median VmRSS (and RssAnon, the node's own memory, and Pss,
# its share of the pages the nodes share), the median connected peers (and
# the most, and the bootstrap node's: node 0), the CPU of all
# nodes together, the CPU per heartbeat received, and a node's median
# goroutines, Go heap in use and goroutine stacks (its /metrics), the
# probes a node pinged and the random ones it spared a second, and how
# many nodes ran at one P (a calm node's GOMAXPROCS, internal/residency).
# Then it stops them with SIGTERM. Two builds compare best side by side, at the
# same time (the VM's speed drifts between runs made one after another):
#   BIN=a bench/scale.sh 20 & BIN=b bench/scale.sh 20 & wait
#
#   bench/scale.sh 20                      20 nodes, --heartbeat-interval 1s
#   BIN=path/to/proofmesh HB=1s WAIT=60 WINDOW=30 bench/scale.sh 20
#   LISTEN=/ip4/127.0.0.1/udp/0/quic-v1 bench/scale.sh 20   over QUIC, not TCP
#   LISTEN="/ip4/127.0.0.1/tcp/0 /ip4/127.0.0.1/udp/0/quic-v1" bench/scale.sh 20   both, as a node's defaults
#
# Linux only (/proc). CPU time is each process's own, so other load on a
# shared machine inflates it less than wall time, but contention (caches,
# the scheduler) still shows: compare runs made one after the other.
# Around that window it also times, by polling every node's API every
# 0.25 s: the full view (from the start of the last node until every node
# lists every other online), the detection of a killed node (SIGKILL of
# the last node until no survivor lists it online) and a late joiner (a
# new node started after the kill, until it lists every survivor online
# and every survivor lists it).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:?usage: bench/scale.sh N}"
hb="${HB:-1s}"
wait_s="${WAIT:-60}"
window_s="${WINDOW:-30}"
listen=()
for a in ${LISTEN:-/ip4/127.0.0.1/tcp/0}; do listen+=(--listen "$a"); done # LISTEN="A B": both
tmp="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
bin="${BIN:-}"
if [ -z "$bin" ]; then
	bin="$tmp/proofmesh"
	# the release build (make build, the docker image): no cgo, so no libc
	# mapped into the process
	CGO_ENABLED=0 go build -o "$bin" ./cmd/proofmesh
fi
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ports=()
start() { # index, extra args...
	local i="$1"
	shift
	local port
	port="$(freeport)"
	ports[i]="$port"
	"$bin" node --data-dir "$tmp/node-$i" "${listen[@]}" --api "127.0.0.1:$port" \
		--heartbeat-interval "$hb" --allow-colocation --log-level warn "$@" >"$tmp/out-$i" 2>&1 &
	pids[i]=$!
}
start 0
boot=""
for _ in $(seq 100); do
	boot="$(awk '/listening /{print $2; exit}' "$tmp/out-0")"
	[ -n "$boot" ] && break
	sleep 0.1
done
[ -n "$boot" ] || { cat "$tmp/out-0"; exit 1; }
for i in $(seq 1 $((n - 1))); do
	start "$i" --bootstrap "$boot"
done
started="$(date +%s.%N)"

# watch MODE NODES... polls the nodes' APIs until the mode's condition holds
# or WAIT seconds pass, and prints the seconds it took since $since (or
# "never"). Modes: full (every listed node sees every other listed node
# online), gone:ID (no listed node sees ID online).
watch() {
	local mode="$1"
	shift
	local args=()
	for i in "$@"; do
		for _ in $(seq 100); do [ -s "$tmp/node-$i/api.token" ] && break; sleep 0.1; done # written at start
		args+=("${ports[i]}" "$(cat "$tmp/node-$i/api.token")")
	done
	python3 - "$mode" "$since" "$wait_s" "${args[@]}" <<'PY'
import json, sys, time, urllib.request
mode, since, limit = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
nodes = list(zip(sys.argv[4::2], sys.argv[5::2]))
def get(port, token, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)
ids = {}
while time.time() - since < limit:
    try:
        for port, token in nodes:
            if port not in ids:
                ids[port] = get(port, token, "/api/v1/node")["id"]
        online = {port: {p["id"] for p in get(port, token, "/api/v1/peers?status=online")} for port, token in nodes}
    except OSError:
        time.sleep(0.25)
        continue
    if mode == "full":
        done = all(set(ids.values()) - {ids[p]} <= seen for p, seen in online.items())
    else:
        gone = mode.split(":", 1)[1]
        done = all(gone not in seen for seen in online.values())
    if done:
        print(f"{time.time() - since:.1f} s")
        sys.exit(0)
    time.sleep(0.25)
print(f"never within {limit:.0f} s")
PY
}
node_id() { curl -sf -H "Authorization: Bearer $(cat "$tmp/node-$1/api.token")" "http://127.0.0.1:${ports[$1]}/api/v1/node" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
since="$started"
full="$(watch full $(seq 0 $((n - 1))))"
if [[ "$full" != never* ]]; then
	rest=$((wait_s - ${full%%.*}))
	if [ "$rest" -gt 0 ]; then sleep "$rest"; fi # settle as long as without the watch
fi

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
received() { # index: heartbeats received, probes pinged (answered or not), random probes spared
	curl -sf -H "Authorization: Bearer $(cat "$tmp/node-$1/api.token")" "http://127.0.0.1:${ports[$1]}/metrics" |
		awk '/^proofmesh_heartbeats_received_total /{h=$2} /^proofmesh_liveness_events_total\{event="probe_(ok|failed)"\}/{p+=$2} /^proofmesh_liveness_events_total\{event="probe_spared"\}/{s=$2} END{printf "%s %d %d", h, p, s}'
}
gauges() { # index: connected peers, goroutines, Go heap in use, goroutine stacks (bytes), GOMAXPROCS
	curl -sf -H "Authorization: Bearer $(cat "$tmp/node-$1/api.token")" "http://127.0.0.1:${ports[$1]}/metrics" |
		awk '/^proofmesh_connected_peers /{c=$2} /^go_goroutines /{g=$2} /^go_memstats_heap_inuse_bytes /{h=$2} /^go_memstats_stack_inuse_bytes /{s=$2} /^go_sched_gomaxprocs_threads /{m=$2} END{printf "%s %s %s %s %s", c, g, h, s, m}'
}
declare -a t0 h0 s0
for i in $(seq 0 $((n - 1))); do
	s0[i]="$(date +%s.%N)"
	t0[i]="$(ticks "${pids[i]}")"
	h0[i]="$(received "$i")" # three fields
done
sleep "$window_s"
hz="$(getconf CLK_TCK)"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) cores, $n nodes, --heartbeat-interval $hb, ${wait_s}s settle, ${window_s}s window"
# Each node's figures are over its own window, from its first reading to
# its second: reading 100 nodes one after another on a loaded machine
# takes seconds, which a window common to all would miscount.
for i in $(seq 0 $((n - 1))); do
	s1="$(date +%s.%N)"
	t1="$(ticks "${pids[i]}")"
	h1="$(received "$i")"
	rss="$(awk '/^VmRSS/{print $2}' "/proc/${pids[i]}/status")"
	anon="$(awk '/^RssAnon/{print $2}' "/proc/${pids[i]}/status")"
	pss="$(awk '/^Pss:/{print $2}' "/proc/${pids[i]}/smaps_rollup" 2>/dev/null || echo 0)"
	echo "$i ${s0[i]} $s1 $((t1 - t0[i])) ${h0[i]} $h1 $rss $anon $pss $(gauges "$i")"
done | python3 -c '
import sys, statistics
hz, n = float(sys.argv[1]), int(sys.argv[2])
rows = []
for l in sys.stdin:
    f = list(map(float, l.split()))
    # index, s0, s1, ticks, then (heartbeats, pings, spared) at s0 and at s1
    rows.append(f[:5] + [f[7]] + f[10:] + [f[8] - f[5], f[9] - f[6]])
# per node: seconds of its window, CPU seconds, heartbeats received
per = [(r[2] - r[1], r[3] / hz, r[5] - r[4]) for r in rows]
pings = sum(r[14] / (r[2] - r[1]) for r in rows) / n
spared = sum(r[15] / (r[2] - r[1]) for r in rows) / n
lean = sum(1 for r in rows if r[13] == 1)
cores = sum(c / w for w, c, _ in per)
hbps = sum(h / w for w, _, h in per) / n
cpu = sum(c for _, c, _ in per)
hbs = sum(h for _, _, h in per)
rss = statistics.median(r[6] for r in rows) / 1024
anon = statistics.median(r[7] for r in rows) / 1024
pss = statistics.median(r[8] for r in rows) / 1024
conns = statistics.median(r[9] for r in rows)
gor = statistics.median(r[10] for r in rows)
heap = statistics.median(r[11] for r in rows) / 2**20
stacks = statistics.median(r[12] for r in rows) / 2**20
per_hb = 1000 * cpu / hbs if hbs else float("nan")
print(f"VmRSS median {rss:.1f} MB (RssAnon {anon:.1f} MB, Pss {pss:.1f} MB); connected peers median {conns:.0f} (max {max(r[9] for r in rows):.0f}; the bootstrap node {rows[0][9]:.0f}); CPU of all nodes {cores:.3f} cores ({100 * cores / n:.2f}% of a core per node); "
      f"heartbeats received {hbps:.1f}/s per node; CPU per heartbeat received {per_hb:.2f} ms")
print(f"per node, median: {gor:.0f} goroutines, Go heap in use {heap:.1f} MiB, goroutine stacks {stacks:.1f} MiB; "
      f"probes per node per second: {pings:.2f} pinged, {spared:.2f} random ones spared (the peer heard from within the second); "
      f"{lean} of {n} nodes at one P (GOMAXPROCS 1) at the end")
' "$hz" "$n"
echo "full view: $full after the last node started"

# Detection: kill the last node outright (no Leave).
victim=$((n - 1))
victim_id="$(node_id "$victim")"
kill -9 "${pids[victim]}"
{ wait "${pids[victim]}"; } 2>/dev/null || true # reap it without bash's "Killed" line
since="$(date +%s.%N)"
echo "killed node detected by every survivor: $(watch "gone:$victim_id" $(seq 0 $((n - 2))))"

# A late joiner: one more node, after the kill.
since="$(date +%s.%N)"
start "$n" --bootstrap "$boot"
survivors=($(seq 0 $((n - 2))) "$n")
echo "late joiner in every view and seeing every survivor: $(watch full "${survivors[@]}")"
