#!/usr/bin/env bash
# Fault: a graceful stop (docker stop: SIGTERM, the node publishes a
# signed Leave, then exits).
# Asserts:
#   - the container exits with code 0 (a clean shutdown) well within the
#     grace period;
#   - every other node marks it deleted (a tombstone): status "deleted"
#     in GET /api/v1/peers, 404 from GET /api/v1/peers/{id};
#   - started again, its heartbeats bring it back online everywhere.
# Usage: testnet/faults/stop.sh [NODE]   (default n2)
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
T=${1:-n2}
OBS=$(others "$T" "${ALL[*]}")

not_found_everywhere() {
	local o code
	for o in $OBS; do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $(token "$o")" \
			"http://127.0.0.1:${PORT[$o]}/api/v1/peers/$(peer_id "$T")")
		[[ $code == 404 ]] || return 1
	done
}

wait_for 60 mesh_online "${NODES[*]}" || { fail "stop $T: the mesh is not online to begin with"; exit 1; }
t0=$(now)
docker stop "$(container "$T")" >/dev/null
took=$(since "$t0")
code=$(docker inspect -f '{{.State.ExitCode}}' "$(container "$T")")
if [[ $code == 0 ]]; then
	pass "stop $T: SIGTERM, clean exit (code 0) after $took"
else
	fail "stop $T: exit code $code after $took (want 0: a clean shutdown)"
fi
if watch_transition "$T" "$OBS" 10 deleted && not_found_everywhere; then
	pass "stop $T: deleted (signed Leave) on every observer $T_FINAL after the exit; GET /peers/{id} is 404"
else
	fail "stop $T: not deleted everywhere within 10 s ($(statuses "$T" "$OBS"))"
fi

t0=$(now)
docker start "$(container "$T")" >/dev/null
if wait_for 60 all_see "$T" "$OBS" online; then
	pass "stop $T: started again, online on every observer after $(since "$t0")"
else
	fail "stop $T: not online again within 60 s ($(statuses "$T" "$OBS"))"
fi
exit $((FAILED > 0))
