#!/usr/bin/env bash
# Fault: a node crashes (docker kill: SIGKILL, no Leave).
# Asserts, through every other node's API (the bootstrap node's included):
#   - each observer sees it stale first (3 missed heartbeat intervals),
#     then offline (10 missed), within bounds;
#   - restarted (docker start), it comes back online on every observer,
#     with the same peer id.
# Usage: testnet/faults/kill.sh [NODE]   (default n1)
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
T=${1:-n1}
OBS=$(others "$T" "${ALL[*]}")

wait_for 60 mesh_online "${NODES[*]}" || { fail "kill $T: the mesh is not online to begin with"; exit 1; }
docker kill "$(container "$T")" >/dev/null
info "docker kill pm-$T"
if watch_transition "$T" "$OBS" 30 offline; then
	first=""
	for o in $OBS; do first+="$o:${FIRST[$o]} "; done
	if [[ $first == *offline* || $first == *absent* || $first == *unreachable* ]]; then
		fail "kill $T: not stale before offline on every observer ($first)"
	else
		pass "kill $T: stale on every observer after $T_FIRST, offline after $T_FINAL"
	fi
else
	fail "kill $T: not offline everywhere within 30 s ($(statuses "$T" "$OBS"))"
fi

t0=$(now)
docker start "$(container "$T")" >/dev/null
if wait_for 60 all_see "$T" "$OBS" online; then
	id=$(api "$T" /api/v1/node | jq -r .id)
	if [[ $id == "$(peer_id "$T")" ]]; then
		pass "kill $T: restarted, online again on every observer after $(since "$t0"), same peer id"
	else
		fail "kill $T: restarted with peer id $id, want $(peer_id "$T")"
	fi
else
	fail "kill $T: not online again within 60 s of docker start ($(statuses "$T" "$OBS"))"
fi
exit $((FAILED > 0))
