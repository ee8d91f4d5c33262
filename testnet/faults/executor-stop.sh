#!/usr/bin/env bash
# Fault: the executor of a task dies mid-task.
# Submits a mimc.chain.v1 task through the verifier node (which never
# executes, so the submitter survives), waits until a compute node is
# running or proving it, and kills that node (docker kill; FAULT=stop for
# a graceful docker stop).
# Asserts:
#   - the task is still accepted, by another executor that took over after
#     the first one's lease ran out;
#   - its bundle verifies offline (proofmesh verify on the host) and is
#     signed by the new executor, not the dead one;
#   - the dead node, started again, is back online everywhere.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
FAULT=${FAULT:-kill}
WORK=$TESTNET_DIR/.e2e
mkdir -p "$WORK"

wait_for 60 mesh_online "${NODES[*]}" || { fail "executor-stop: the mesh is not online to begin with"; exit 1; }
# try_once: submit, wait for an executor, kill it. Sets id, victim,
# victim_id. False if the executor could not be caught mid-task.
try_once() {
	local x=$1 deadline s
	t0=$(now)
	id=$(submit_api "$SUBMITTER" "{\"type\": \"mimc.chain.v1\", \"input\": {\"x\": \"$x\"}}")
	[[ -n $id && $id != null ]] || { info "submission refused"; return 1; }
	# A tight poll (no sleep): proving takes about 2 s, the window to hit.
	deadline=$(($(date +%s) + 20))
	while s=$(task_field "$SUBMITTER" "$id" .state); [[ $s != running && $s != proving ]]; do
		[[ $s == accepted || $s == failed || $(date +%s) -gt $deadline ]] && { info "task ${id:0:12} $s before an executor was seen"; return 1; }
	done
	victim_id=$(task_field "$SUBMITTER" "$id" '.executors[0]')
	victim=$(node_of "$victim_id")
	[[ $victim != "?" && $victim != "$SUBMITTER" ]] || { info "executor $victim_id is not a testnet compute node"; return 1; }
	local seen
	seen=$(since "$t0")
	docker "$FAULT" "$(container "$victim")" >/dev/null
	info "task ${id:0:12} was $s on $victim $seen after submission: docker $FAULT pm-$victim, dead $(since "$t0") after submission"
	# Too late if the result was already out: then the dead node is the
	# accepted executor, which proves nothing.
	sleep 1
	if [[ $(task_field "$SUBMITTER" "$id" .state) == accepted &&
		$(api "$SUBMITTER" "/api/v1/tasks/$id" | jq -r '.timeline | map(select(.state == "verifying"))[0].detail') == *"${victim_id: -8}"* ]]; then
		info "too late: $victim had published its result before it died; again"
		docker start "$(container "$victim")" >/dev/null
		wait_for 60 mesh_online "${NODES[*]}"
		return 1
	fi
}

caught=0
for attempt in 1 2 3; do
	if try_once "$((4242 + attempt))"; then caught=1; break; fi
done
[[ $caught == 1 ]] || { fail "executor-stop: could not stop an executor mid-task in 3 attempts"; exit 1; }

if wait_for 120 task_ended "$SUBMITTER" "$id"; then
	task=$(api "$SUBMITTER" "/api/v1/tasks/$id")
	st=$(jq -r .state <<<"$task")
	if [[ $st == accepted ]]; then
		takeover=$(jq -r '[.timeline[] | select(.detail | test("taken over"))] | length' <<<"$task")
		pass "executor-stop: accepted $(since "$t0") after submission despite the dead executor ($takeover takeover(s) in the timeline)"
	else
		fail "executor-stop: task ended $st: $(jq -r .reason <<<"$task")"
	fi
else
	fail "executor-stop: task not ended within 120 s (state $(task_field "$SUBMITTER" "$id" .state))"
fi

if api "$SUBMITTER" "/api/v1/tasks/$id/bundle" >"$WORK/takeover-bundle.json" 2>/dev/null &&
	out=$("$PM" verify "$WORK/takeover-bundle.json"); then
	signer=$(sed -n 's/.*signed by executor \([^ ,]*\).*/\1/p' <<<"$out" | head -1)
	if [[ -n $signer && $signer != "$victim_id" ]]; then
		pass "executor-stop: bundle verifies offline, result signed by $(node_of "$signer") (not $victim)"
	else
		fail "executor-stop: bundle signed by ${signer:-nobody}, the dead executor was $victim_id"
	fi
else
	fail "executor-stop: the bundle does not verify offline"
fi

docker start "$(container "$victim")" >/dev/null
if wait_for 60 all_see "$victim" "$(others "$victim" "${ALL[*]}")" online; then
	pass "executor-stop: $victim started again and online everywhere"
else
	fail "executor-stop: $victim not online again within 60 s"
fi
exit $((FAILED > 0))
