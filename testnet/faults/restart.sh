#!/usr/bin/env bash
# Fault: a node restarts (docker restart: SIGTERM, Leave, start again on
# the same data volume).
# Asserts:
#   - it comes back with the same peer id (identity.key on its volume);
#   - every task it had accepted is still there, still accepted, with the
#     same output, and one of their bundles still verifies offline (its
#     bbolt store survived);
#   - it is online again on every other node.
# If the node has accepted nothing yet, a mimc.chain.v1 task is submitted
# through it first.
# Usage: testnet/faults/restart.sh [NODE]   (default n4, the submitter of the e2e tasks)
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
T=${1:-n4}
OBS=$(others "$T" "${ALL[*]}")
WORK=$TESTNET_DIR/.e2e
mkdir -p "$WORK"

accepted() { api "$T" '/api/v1/tasks?state=accepted' | jq -c '[.[] | {task_id, output}] | sort_by(.task_id)'; }

wait_for 60 mesh_online "${NODES[*]}" || { fail "restart $T: the mesh is not online to begin with"; exit 1; }
before=$(accepted) || { fail "restart $T: cannot list its tasks"; exit 1; }
if [[ $(jq length <<<"$before") == 0 ]]; then
	pm "$T" submit --type mimc.chain.v1 --input '{"x": "5"}' >/dev/null 2>&1 || { fail "restart $T: could not get a task accepted first"; exit 1; }
	before=$(accepted)
fi
n=$(jq length <<<"$before")

t0=$(now)
docker restart "$(container "$T")" >/dev/null
if ! wait_for 60 api_up "$T"; then
	fail "restart $T: API not back within 60 s"
	exit 1
fi
id=$(api "$T" /api/v1/node | jq -r .id)
if [[ $id == "$(peer_id "$T")" ]]; then
	pass "restart $T: back after $(since "$t0") with the same peer id"
else
	fail "restart $T: peer id $id after the restart, want $(peer_id "$T")"
fi
after=$(accepted)
if [[ $after == "$before" ]]; then
	pass "restart $T: its $n accepted task(s) are still there with the same outputs"
else
	fail "restart $T: accepted tasks changed across the restart: before $before, after $after"
fi
first=$(jq -r '.[0].task_id' <<<"$after")
if api "$T" "/api/v1/tasks/$first/bundle" >"$WORK/restart-bundle.json" 2>/dev/null && "$PM" verify "$WORK/restart-bundle.json" >/dev/null; then
	pass "restart $T: the bundle of task ${first:0:12} still verifies offline"
else
	fail "restart $T: the bundle of task ${first:0:12} is gone or does not verify"
fi
if wait_for 60 all_see "$T" "$OBS" online; then
	pass "restart $T: online again on every other node after $(since "$t0")"
else
	fail "restart $T: not online everywhere within 60 s ($(statuses "$T" "$OBS"))"
fi
exit $((FAILED > 0))
