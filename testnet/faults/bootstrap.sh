#!/usr/bin/env bash
# Fault: the bootstrap node goes away and comes back.
# Asserts:
#   - with the bootstrap node stopped for longer than the offline
#     threshold (10 heartbeat intervals), every other node still sees all
#     the others online: the mesh does not depend on it once formed;
#   - a new task submitted meanwhile (through the CLI) is accepted;
#   - restarted, the bootstrap node has the same peer id and sees every
#     node online again with heartbeats received after its restart: the
#     nodes redialled it (bootstrap keeper, exponential backoff + jitter).
# Usage: testnet/faults/bootstrap.sh [DOWN_SECONDS]   (default 15)
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
DOWN=${1:-15}

# heard_since NODE EPOCH: boot has a heartbeat of NODE newer than EPOCH.
heard_since() {
	local out
	out=$(api boot /api/v1/peers 2>/dev/null) || return 1
	jq -e --arg id "$(peer_id "$1")" --argjson since "$2" \
		'map(select(.id == $id and .status == "online" and ((.last_seen | sub("\\.[0-9]+"; "") | fromdateiso8601) > $since))) | length == 1' \
		<<<"$out" >/dev/null
}
boot_hears_all_since() {
	local n
	for n in "${NODES[@]}"; do heard_since "$n" "$1" || return 1; done
}

wait_for 60 mesh_online "${NODES[*]}" || { fail "bootstrap: the mesh is not online to begin with"; exit 1; }
docker stop "$(container boot)" >/dev/null
info "docker stop pm-boot; waiting ${DOWN}s"
sleep "$DOWN"
if container_running boot; then
	fail "bootstrap: pm-boot is still running"
elif mesh_online "${NODES[*]}"; then
	pass "bootstrap: down for ${DOWN}s, every node still sees all the others online"
else
	fail "bootstrap: the mesh lost peers without its bootstrap node: $(for n in "${NODES[@]}"; do echo -n "[$n sees $(statuses "$n" "${NODES[*]}")] "; done)"
fi
t0=$(now)
out=$(pm "$SUBMITTER" submit --type mimc.chain.v1 --input '{"x": "31337"}' 2>/dev/null)
rc=$?
state=$(jq -r .state <<<"$out" 2>/dev/null)
if [[ $rc == 0 && $state == accepted ]]; then
	pass "bootstrap: a new mimc.chain.v1 task was accepted in $(since "$t0") while it was down"
else
	fail "bootstrap: task without the bootstrap node: exit $rc, state ${state:-?}"
fi

started=$(date +%s)
t0=$(now)
docker start "$(container boot)" >/dev/null
if wait_for 60 boot_hears_all_since "$started"; then
	took=$(since "$t0")
	id=$(api boot /api/v1/node | jq -r .id)
	if [[ $id == "$(peer_id boot)" ]]; then
		pass "bootstrap: restarted with the same peer id; it hears every node's heartbeats again after $took"
	else
		fail "bootstrap: restarted with peer id $id, want $(peer_id boot)"
	fi
	redialled=0
	for n in "${NODES[@]}"; do
		docker logs --since "$started" "$(container "$n")" 2>&1 | grep -q 'reconnected to bootstrap peer' && redialled=$((redialled + 1))
	done
	info "$redialled of ${#NODES[@]} keepers logged a successful redial (a node that finds the bootstrap node already connected, dialled by it or by DHT traffic, logs none)"
else
	fail "bootstrap: after its restart it does not hear every node within 60 s (it sees $(statuses boot "${ALL[*]}"))"
fi
wait_for 30 mesh_online "${NODES[*]}" || fail "bootstrap: the mesh is not all online after the restart"
exit $((FAILED > 0))
