#!/usr/bin/env bash
# make testnet-up: build the static binary and the FROM-scratch image,
# initialise each node's data dir on the host (identity and API token),
# start the compose testnet and wait until every node sees all the others
# online.
#   SKIP_BUILD=1   reuse testnet/.build/proofmesh and the image
#   WAIT=0         do not wait for the mesh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need docker curl jq
need_compose
cd "$ROOT_DIR"

t0=$(now)
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
	echo "== building the static binary (CGO_ENABLED=0, stripped) into testnet/.build"
	mkdir -p "$BUILD_DIR/rootfs/data" "$BUILD_DIR/rootfs/tmp"
	chmod 0700 "$BUILD_DIR/rootfs/data"
	chmod 1777 "$BUILD_DIR/rootfs/tmp"
	CGO_ENABLED=0 ${GO:-go} build -trimpath \
		-ldflags "-s -w -X github.com/proofmesh/proofmesh/internal/buildinfo.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev) -X github.com/proofmesh/proofmesh/internal/buildinfo.commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
		-o "$BUILD_DIR/proofmesh" ./cmd/proofmesh
	echo "== building the image ${PM_IMAGE:-proofmesh-testnet:dev} (FROM scratch)"
	# The legacy builder: it needs no buildx plugin and pulls nothing.
	if ! DOCKER_BUILDKIT=0 docker build -t "${PM_IMAGE:-proofmesh-testnet:dev}" \
		-f "$TESTNET_DIR/Dockerfile" "$BUILD_DIR" >"$BUILD_DIR/docker-build.log" 2>&1; then
		cat "$BUILD_DIR/docker-build.log" >&2
		exit 1
	fi
	# The image this one replaced, now untagged.
	docker image prune -f --filter label=org.proofmesh.testnet >/dev/null 2>&1 || true
	docker image ls --format '   image {{.Repository}}:{{.Tag}}  {{.Size}}' "${PM_IMAGE:-proofmesh-testnet:dev}"
	echo "   built in $(since "$t0")"
fi

# Data dirs: created on the host so the host knows every peer id and token
# before the containers start. The containers never run as root: as the
# host user when it is not root, else as 65532 (the image's user), which
# then owns the dirs.
uid=$(id -u) gid=$(id -g)
if [[ $uid == 0 ]]; then uid=65532 gid=65532; fi
mkdir -p "$DATA_DIR"
for n in "${ALL[@]}"; do
	"$PM" init --data-dir "$DATA_DIR/$n" | sed -n 's/^peer id: *//p' >"$DATA_DIR/$n.id"
	[[ $(id -u) == 0 ]] && chown -R "$uid:$gid" "$DATA_DIR/$n"
done
cat >"$ENV_FILE" <<ENV
# Written by testnet/up.sh; read by docker-compose.yml. Dev testnet only.
PM_BOOT_ID=$(peer_id boot)
PM_UID=$uid
PM_GID=$gid
PM_IMAGE=${PM_IMAGE:-proofmesh-testnet:dev}
PM_HEARTBEAT=${PM_HEARTBEAT:-1s}
PM_LOG_LEVEL=${PM_LOG_LEVEL:-info}
ENV

echo "== starting the testnet (bootstrap $(peer_id boot))"
t1=$(now)
compose up -d --no-build 2>&1 | sed 's/^/   /'
[[ ${PIPESTATUS[0]} == 0 ]] || { echo "testnet: compose up failed" >&2; exit 1; }
# compose returns once the bootstrap node is healthy and the others started.
echo "   containers up in $(since "$t1") (the nodes wait for the bootstrap node's health check)"
t1=$(now)

if [[ ${WAIT:-1} == 1 ]]; then
	if wait_for 120 mesh_online "${NODES[*]}"; then
		echo "== every node sees the $((${#NODES[@]} - 1)) others online $(since "$t1") after their start"
	else
		echo "testnet: the mesh did not come online within 120 s:" >&2
		for n in "${NODES[@]}"; do echo "   seen by $n: $(for t in "${NODES[@]}"; do [[ $t != "$n" ]] && printf '%s:%s ' "$t" "$(peer_status "$n" "$t")"; done)" >&2; done
		exit 1
	fi
fi
printf '\n%-5s %-54s %-22s %s\n' NODE "PEER ID" API TOKEN
for n in "${ALL[@]}"; do
	printf '%-5s %-54s %-22s %s\n' "$n" "$(peer_id "$n")" "127.0.0.1:${PORT[$n]}" "testnet/.data/$n/api.token"
done
cat <<MSG

Try:  $PM peers --api 127.0.0.1:18081 --data-dir testnet/.data/n1
      $PM submit --api 127.0.0.1:18084 --data-dir testnet/.data/n4 --type mimc.chain.v1 --input '{"x": "42"}'
      make testnet-logs     make testnet-down
MSG
