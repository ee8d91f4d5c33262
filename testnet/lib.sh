# shellcheck shell=bash
# Helpers shared by the testnet scripts: sourced, never run.
#
# Every assertion goes through a node's HTTP API on the host's loopback,
# with the node's bearer token from testnet/.data/<node>/api.token.

TESTNET_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(dirname "$TESTNET_DIR")
DATA_DIR=$TESTNET_DIR/.data
BUILD_DIR=$TESTNET_DIR/.build
ENV_FILE=$TESTNET_DIR/.env
PM=${PM:-$BUILD_DIR/proofmesh}        # the host binary: same build as the image's
NETWORK=proofmesh-testnet              # docker network (docker-compose.yml)
PROJECT=proofmesh-testnet              # compose project name

BOOT=boot
NODES=(n1 n2 n3 n4)                    # everything but the bootstrap node
ALL=("$BOOT" "${NODES[@]}")
declare -A PORT=([boot]=18080 [n1]=18081 [n2]=18082 [n3]=18083 [n4]=18084)
SUBMITTER=n4                           # the verifier: executes nothing

# compose runs docker compose (v2) or docker-compose (v1) on our file.
compose() {
	local args=(-p "$PROJECT" -f "$TESTNET_DIR/docker-compose.yml")
	[[ -f $ENV_FILE ]] && args+=(--env-file "$ENV_FILE")
	if docker compose version >/dev/null 2>&1; then
		docker compose "${args[@]}" "$@"
	else
		docker-compose "${args[@]}" "$@"
	fi
}

# compose_nat: compose with the NAT scenario's services added
# (docker-compose.nat.yml: natbox, nat, the natlan network).
compose_nat() {
	local args=(-p "$PROJECT" -f "$TESTNET_DIR/docker-compose.yml" -f "$TESTNET_DIR/docker-compose.nat.yml")
	[[ -f $ENV_FILE ]] && args+=(--env-file "$ENV_FILE")
	if docker compose version >/dev/null 2>&1; then
		docker compose "${args[@]}" "$@"
	else
		docker-compose "${args[@]}" "$@"
	fi
}
NAT=nat                                # the node behind the NAT box (nat.sh)

container() { echo "pm-$1"; }

need_compose() {
	docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 ||
		{ echo "testnet: docker compose (v2 plugin) or docker-compose is required" >&2; exit 2; }
	docker info >/dev/null 2>&1 || { echo "testnet: the Docker engine does not answer (docker info)" >&2; exit 2; }
}

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || { echo "testnet: $c is required but not installed" >&2; exit 2; }
	done
}

token() { tr -d '\n' <"$DATA_DIR/$1/api.token"; }
peer_id() { cat "$DATA_DIR/$1.id"; }

# node_of PEER_ID: the testnet name (boot, n1, …) of a peer id.
node_of() {
	local n
	for n in "${ALL[@]}"; do
		[[ $(peer_id "$n") == "$1" ]] && { echo "$n"; return 0; }
	done
	echo "?"
}

# api NODE PATH [curl args…]: GET (or what the args say) on a node's API;
# fails on a transport error or an HTTP status >= 400.
api() {
	local n=$1 path=$2
	shift 2
	curl -fsS --max-time 5 -H "Authorization: Bearer $(token "$n")" "$@" "http://127.0.0.1:${PORT[$n]}$path"
}

# pm NODE ARGS…: a proofmesh client command against a node's API.
pm() {
	local n=$1
	shift
	PROOFMESH_API_TOKEN= "$PM" "$@" --api "127.0.0.1:${PORT[$n]}" --data-dir "$DATA_DIR/$n"
}

# peer_status OBSERVER TARGET: the status OBSERVER's peer table gives
# TARGET (online, stale, offline, deleted), "absent", or "unreachable"
# when OBSERVER's API does not answer.
peer_status() {
	local out
	out=$(api "$1" /api/v1/peers 2>/dev/null) || { echo unreachable; return; }
	jq -r --arg id "$(peer_id "$2")" 'map(select(.id == $id))[0].status // "absent"' <<<"$out"
}

# sees OBSERVER TARGET STATUS… : true if OBSERVER sees TARGET in one of STATUS.
sees() {
	local o=$1 t=$2 s got
	shift 2
	got=$(peer_status "$o" "$t")
	for s in "$@"; do [[ $got == "$s" ]] && return 0; done
	return 1
}

# all_see TARGET "OBSERVERS" STATUS…: every observer sees TARGET in one of STATUS.
all_see() {
	local t=$1 o
	shift
	local observers=$1
	shift
	for o in $observers; do
		[[ $o == "$t" ]] && continue
		sees "$o" "$t" "$@" || return 1
	done
}

# mesh_online "NODES": every node of the list sees every other one online.
mesh_online() {
	local t
	for t in $1; do
		all_see "$t" "$1" online || return 1
	done
}

# statuses TARGET "OBSERVERS": one line, what each observer sees of TARGET.
statuses() {
	local t=$1 o line=""
	for o in $2; do
		[[ $o == "$t" ]] && continue
		line+="$o:$(peer_status "$o" "$t") "
	done
	echo "${line% }"
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# wait_for TIMEOUT_S CMD…: polls CMD every 0.25 s until it succeeds;
# false after TIMEOUT_S seconds.
wait_for() {
	local deadline
	deadline=$(awk -v t="$(now)" -v d="$1" 'BEGIN { printf "%.3f", t + d }')
	shift
	while true; do
		"$@" && return 0
		awk -v t="$(now)" -v d="$deadline" 'BEGIN { exit !(t > d) }' && return 1
		sleep 0.25
	done
}

# Results of the steps of a script: pass/fail lines, and the exit code.
FAILED=0
pass() { printf '\033[32mPASS\033[0m  %s\n' "$*"; }
fail() { printf '\033[31mFAIL\033[0m  %s\n' "$*"; FAILED=$((FAILED + 1)); }
info() { printf '      %s\n' "$*"; }

# task_field NODE TASK_ID JQ: a field of a task as NODE's API shows it.
task_field() { api "$1" "/api/v1/tasks/$2" 2>/dev/null | jq -r "$3"; }

task_ended() {
	local s
	s=$(task_field "$1" "$2" .state) || return 1
	[[ $s == accepted || $s == failed ]]
}

# submit_api NODE JSON: POST a task, print its id.
submit_api() {
	api "$1" /api/v1/tasks -X POST -H 'Content-Type: application/json' --data "$2" | jq -r .task_id
}

container_running() { [[ $(docker inspect -f '{{.State.Running}}' "$(container "$1")" 2>/dev/null) == true ]]; }
api_up() { curl -fsS --max-time 2 "http://127.0.0.1:${PORT[$1]}/api/v1/health" >/dev/null 2>&1; }
attached() { docker inspect -f '{{json .NetworkSettings.Networks}}' "$(container "$1")" 2>/dev/null | grep -q "\"$NETWORK\""; }

# heal: every container running and on the network, and the mesh online
# again (used between fault scripts so that one failure does not cascade).
heal() {
	local n
	for n in "${ALL[@]}"; do
		container_running "$n" || docker start "$(container "$n")" >/dev/null
		attached "$n" || docker network connect --alias "$n" "$NETWORK" "$(container "$n")"
	done
	wait_for 120 mesh_online "${NODES[*]}"
}

# inside_status NODE TARGET: what NODE sees of TARGET, asked from inside
# NODE's container (docker exec, its own loopback): works while NODE is cut
# off the docker network, when its published port is unreachable too.
inside_status() {
	local out
	out=$(docker exec "$(container "$1")" /proofmesh peers --api 127.0.0.1:8080 --data-dir /data 2>/dev/null) || { echo unreachable; return; }
	awk -v id="$(peer_id "$2")" '$1 == id { print $2; found = 1 } END { if (!found) print "absent" }' <<<"$out"
}

# others OF "LIST": LIST without OF.
others() {
	local n out=()
	for n in $2; do [[ $n != "$1" ]] && out+=("$n"); done
	echo "${out[*]}"
}

# watch_transition TARGET "OBSERVERS" TIMEOUT_S FINAL: polls until every
# observer sees TARGET in status FINAL. Sets FIRST[observer] to the first
# status other than online each observer reported, T_FIRST to the time
# (s since the call) at which all observers had left online, and T_FINAL
# to when all saw FINAL. False on timeout.
declare -A FIRST
T_FIRST="" T_FINAL=""
watch_transition() {
	local t=$1 observers=$2 timeout=$3 final=$4 start o s all_left all_final
	start=$(now)
	FIRST=() T_FIRST="" T_FINAL=""
	while true; do
		all_left=1 all_final=1
		for o in $observers; do
			s=$(peer_status "$o" "$t")
			[[ $s != online && -z ${FIRST[$o]:-} ]] && FIRST[$o]=$s
			[[ -z ${FIRST[$o]:-} ]] && all_left=0
			[[ $s != "$final" ]] && all_final=0
		done
		[[ $all_left == 1 && -z $T_FIRST ]] && T_FIRST=$(since "$start")
		[[ $all_final == 1 ]] && { T_FINAL=$(since "$start"); return 0; }
		awk -v a="$start" -v b="$(now)" -v d="$timeout" 'BEGIN { exit !(b - a > d) }' && return 1
		sleep 0.2
	done
}
