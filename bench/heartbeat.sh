#!/usr/bin/env bash
# Heartbeat delivery against raw gossipsub, as a ratio in one run.
#
# For each size, runs BenchmarkHeartbeatDelivery (mesh/bench_test.go) once
# on go-libp2p's mocknet, then ../shared/anchors/gsim (plain gossipsub on
# mocknet, nothing of proofmesh) with the same shape read from the
# benchmark's own output: node count, mean degree (gsim dials deg = mean/2
# random peers per node), link latency (20 ms), message size (the
# heartbeat's), and rate (one message per node per the benchmark's
# interval), for as long as the benchmark measures (5 intervals). It prints
# both figures of time from publication to the LAST receiver and the ratio
# proofmesh / raw.
#
#   bench/heartbeat.sh                 10, 50 and 200 nodes (about 8 min on 2 cores)
#   bench/heartbeat.sh 50              one size
#   bench/heartbeat.sh 200 -together   benchmark flags after the size
#
#   GOGC=off GOMEMLIMIT=14GiB bench/heartbeat.sh 200
#                                      both sides with the collector held off:
#                                      the simulated nodes share one heap, and its
#                                      marking sets the tail (bench/README.md)
#
# GSIM=path/to/gsim skips building the anchor (default: built from
# ../shared/anchors/gsim into a temporary dir). The two runs come one after
# the other on the same machine: compare the ratio, not the absolute
# figures, on a shared machine. The benchmark counts a heartbeat that never
# reached every node as infinitely late; gsim's p50/p99 are over the
# messages that reached every node (its line says how many did).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
sizes="${1:-10 50 200}"
shift || true
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

gsim="${GSIM:-}"
if [ -z "$gsim" ]; then
	anchor="$root/../shared/anchors/gsim"
	[ -d "$anchor" ] || { echo "no anchor at $anchor (set GSIM)" >&2; exit 1; }
	gsim="$tmp/gsim"
	(cd "$anchor" && go build -o "$gsim" .)
fi

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) cores, $(go version | cut -d' ' -f3)"
for n in $sizes; do
	args=()
	if [ "$#" -gt 0 ]; then
		args=(-args "$@")
	fi
	go test -run '^$' -bench "BenchmarkHeartbeatDelivery/nodes=${n}\$" -benchtime 1x -timeout 15m ./mesh/ "${args[@]}" | tee "$tmp/bench-$n"
	read -r deg size iv p50 p99 < <(python3 - "$tmp/bench-$n" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
deg = float(re.search(r"mean degree ([0-9.]+)", t).group(1))
size = int(re.search(r"heartbeats of (\d+) B", t).group(1))
iv = re.search(r"steady interval ([0-9.]+m?s)", t).group(1)
p50 = float(re.search(r"([0-9.]+|\+Inf) p50-ms", t).group(1))  # +Inf: not every heartbeat reached every node
p99 = float(re.search(r"([0-9.]+|\+Inf) p99-ms", t).group(1))
print(max(1, round(deg / 2)), size, iv, p50, p99)
EOF
)
	dur="$(python3 -c "import re,sys; v=sys.argv[1]; s=float(v[:-2])/1000 if v.endswith('ms') else float(v[:-1]); print(f'{max(30, 5*s):.0f}s')" "$iv")"
	echo "# gsim -n $n -deg $deg -period $iv -lat 20ms -size $size -dur $dur"
	"$gsim" -n "$n" -deg "$deg" -period "$iv" -lat 20ms -size "$size" -dur "$dur" | tee "$tmp/gsim-$n"
	python3 - "$n" "$p50" "$p99" "$tmp/gsim-$n" <<'EOF'
import re, sys
n, p50, p99, path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
line = [l for l in open(path) if l.startswith("time to the LAST receiver")][-1]
def ms(v):
    m = re.fullmatch(r"([0-9.]+)(ms|s|µs|us|ns)", v)
    x, u = float(m.group(1)), m.group(2)
    return x * {"ms": 1, "s": 1000, "µs": 1e-3, "us": 1e-3, "ns": 1e-6}[u]
g = re.search(r"p50 (\S+) p99 (\S+)", line)
r50, r99 = ms(g.group(1)), ms(g.group(2))
ratio = lambda a, b: f"{a / b:.2f}x" if 0 < b and a != float("inf") else ("never (a heartbeat reached not every node)" if a == float("inf") else "n/a")
print(f"nodes={n}: time to the last receiver, proofmesh vs raw gossipsub: "
      f"p50 {p50:.0f} vs {r50:.0f} ms ({ratio(p50, r50)}), p99 {p99:.0f} vs {r99:.0f} ms ({ratio(p99, r99)})")
EOF
done
