#!/usr/bin/env bash
# The NAT scenario, on a running testnet (make e2e runs it last): a node on
# a LAN of its own behind a NAT box (iptables MASQUERADE; only replies come
# back in), reachable only through a relay (boot runs the relay service).
# See docker-compose.nat.yml. Asserts:
#   - it joins: every node sees it online;
#   - it holds a relay reservation: `proofmesh id` inside it labels a
#     /p2p-circuit address relayed, and no LAN address is advertised;
#   - it is dialed back through the relay: n3, which it cannot reach
#     directly (the NAT box rejects the LAN's packets to n3), meets it
#     through the rendezvous and connects to it through boot
#     (n3's /api/v1/peers says conn "relayed");
#   - it receives a task and its result is accepted: with n1-n3 stopped it
#     is the only compute node, and n4 submits a mimc.chain.v1 task.
# n1-n3 are started again at the end. SKIP_BUILD=1 reuses the NAT image.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"
DIALER=n3
t0=$(now)

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
	bash "$TESTNET_DIR/nat/build.sh" || { fail "nat: the NAT image did not build"; exit 1; }
fi
uid=$(id -u) gid=$(id -g)
if [[ $uid == 0 ]]; then uid=65532 gid=65532; fi
rm -rf "${DATA_DIR:?}/$NAT"
"$PM" init --data-dir "$DATA_DIR/$NAT" | sed -n 's/^peer id: *//p' >"$DATA_DIR/$NAT.id"
[[ $(id -u) == 0 ]] && chown -R "$uid:$gid" "$DATA_DIR/$NAT"
ip_of() { docker inspect -f "{{(index .NetworkSettings.Networks \"$NETWORK\").IPAddress}}" "$(container "$1")"; }
boot_ip=$(ip_of boot) dialer_ip=$(ip_of "$DIALER")
[[ -n $boot_ip && -n $dialer_ip ]] || { fail "nat: boot or $DIALER has no address on $NETWORK"; exit 1; }
export PM_BOOT_ADDR="/ip4/$boot_ip/tcp/4001/p2p/$(peer_id boot)" PM_NAT_BLOCK=$dialer_ip
compose_nat up -d --no-build natbox nat 2>&1 | sed 's/^/   /'
info "natbox and nat started $(since "$t0") in (bootstrap $PM_BOOT_ADDR; $DIALER $dialer_ip blocked from the LAN)"

# nat_pm ARGS: a proofmesh client command inside the NAT'd node's container
# (nothing on its LAN is published to the host).
nat_pm() { docker exec -u "$uid:$gid" -e PROOFMESH_API_TOKEN="$(token "$NAT")" "$(container "$NAT")" /proofmesh "$@" --api 127.0.0.1:8080 --data-dir /data; }

t1=$(now)
if wait_for 90 all_see "$NAT" "${NODES[*]}" online; then
	pass "nat: joined from behind the NAT, online on every node $(since "$t1") after start"
else
	fail "nat: not online everywhere after 90 s ($(statuses "$NAT" "${NODES[*]}"))"
	docker logs --tail 30 "$(container "$NAT")" 2>&1 | sed 's/^/      /'
	exit 1
fi

relayed_addr() { nat_pm id 2>/dev/null | grep -q '^relayed .*/p2p-circuit/p2p/'; }
if wait_for 60 relayed_addr; then
	ids=$(nat_pm id 2>/dev/null)
	if grep -q '10\.213\.77\.' <<<"$ids"; then
		fail "nat: advertises its LAN address despite --no-announce: $(tr '\n' ' ' <<<"$ids")"
	else
		pass "nat: relay reservation on boot; proofmesh id inside it: $(grep -c . <<<"$ids") lines, $(grep -m1 '^relayed' <<<"$ids" | cut -c1-60)…"
	fi
else
	fail "nat: no relayed address after 60 s: $(nat_pm id 2>&1 | tr '\n' ' ')"
fi

conn_of() { api "$1" /api/v1/peers 2>/dev/null | jq -r --arg id "$(peer_id "$2")" 'map(select(.id == $id))[0].conn // "none"'; }
dialed_back() { [[ $(conn_of "$DIALER" "$NAT") == relayed ]]; }
# n3 meets it through its rendezvous lookups (every 30 s once it has met
# everyone) and connects through the relay address it finds there.
t1=$(now)
if wait_for 75 dialed_back; then
	pass "nat: dialed back through the relay: $DIALER (unreachable from the LAN) holds a relayed connection to it $(since "$t1") after it joined"
else
	fail "nat: $DIALER's connection to it is '$(conn_of "$DIALER" "$NAT")', want relayed"
fi

# The only compute node left: the task must go to the NAT'd node.
docker stop -t 15 pm-n1 pm-n2 pm-n3 >/dev/null &
stopper=$!
wait "$stopper"
t1=$(now)
id=""
submitted() {
	id=$(submit_api "$SUBMITTER" '{"type": "mimc.chain.v1", "input": {"x": "7"}}' 2>/dev/null)
	[[ -n $id && $id != null ]]
}
if wait_for 30 submitted && wait_for 120 task_ended "$SUBMITTER" "$id"; then
	task=$(api "$SUBMITTER" "/api/v1/tasks/$id")
	st=$(jq -r .state <<<"$task") ex=$(jq -r '.executors[0] // ""' <<<"$task")
	if [[ $st == accepted && $ex == "$(peer_id "$NAT")" ]]; then
		pass "nat: ran task ${id:0:12} and its result was accepted $(since "$t1") after submission ($(jq -r .verification <<<"$task" | cut -c1-60))"
	else
		fail "nat: task ${id:0:12} $st, executor ${ex: -8} (want accepted, by ${NAT}) $(jq -r .reason <<<"$task")"
	fi
else
	fail "nat: task ${id:0:12} not submitted or not ended in 120 s ($(task_field "$SUBMITTER" "$id" .state 2>/dev/null))"
fi
docker start pm-n1 pm-n2 pm-n3 >/dev/null
info "nat scenario: $(since "$t0") in all"
((FAILED == 0))
