#!/usr/bin/env bash
# Fault: a network partition. `docker network disconnect` cuts one node
# off the testnet network (its container keeps running), then
# `docker network connect` heals it.
# Asserts:
#   - every other node sees it stale, then offline;
#   - the node itself (asked from inside its container with docker exec,
#     since its published API port is cut off too) sees every other node
#     offline: both sides of the partition notice;
#   - after the reconnect it is online again on every node, and it sees
#     every other node online.
# Usage: testnet/faults/partition.sh [NODE]   (default n3)
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
T=${1:-n3}
OBS=$(others "$T" "${ALL[*]}")
PEERS=$(others "$T" "${NODES[*]}")

cut_off_sees_all_offline() {
	local p
	for p in $PEERS; do [[ $(inside_status "$T" "$p") == offline ]] || return 1; done
}
sees_all_online() {
	local p
	for p in $PEERS; do sees "$T" "$p" online || return 1; done
}
inside_line() {
	local p line=""
	for p in $PEERS; do line+="$p:$(inside_status "$T" "$p") "; done
	echo "${line% }"
}

wait_for 60 mesh_online "${NODES[*]}" || { fail "partition $T: the mesh is not online to begin with"; exit 1; }
docker network disconnect "$NETWORK" "$(container "$T")"
info "docker network disconnect $NETWORK pm-$T"
if watch_transition "$T" "$OBS" 30 offline; then
	first=""
	for o in $OBS; do first+="$o:${FIRST[$o]} "; done
	if [[ $first == *offline* || $first == *absent* ]]; then
		fail "partition $T: not stale before offline on every observer ($first)"
	else
		pass "partition $T: stale on every other node after $T_FIRST, offline after $T_FINAL"
	fi
else
	fail "partition $T: not offline everywhere within 30 s ($(statuses "$T" "$OBS"))"
fi
if wait_for 20 cut_off_sees_all_offline; then
	pass "partition $T: the cut-off node sees every other node offline"
else
	fail "partition $T: the cut-off node still sees $(inside_line)"
fi

t0=$(now)
docker network connect --alias "$T" "$NETWORK" "$(container "$T")"
info "docker network connect $NETWORK pm-$T"
if wait_for 60 all_see "$T" "$OBS" online && wait_for 30 sees_all_online; then
	pass "partition $T: healed, online on every node and seeing all online after $(since "$t0")"
else
	fail "partition $T: not healed within 60 s (others see $(statuses "$T" "$OBS"); it sees $(inside_line))"
fi
exit $((FAILED > 0))
