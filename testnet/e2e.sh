#!/usr/bin/env bash
# make e2e: the docker compose testnet end to end. Builds the image, brings
# the testnet up, submits a task of every built-in type through the CLI,
# audits the bundles offline, runs every fault script, and tears the
# testnet down at the end, also on failure or Ctrl-C (KEEP=1 keeps it up).
# One PASS/FAIL line per check; exit status non-zero if any failed.
# Not part of `make test`: it takes a few minutes (testnet/README.md).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need docker curl jq
WORK=$TESTNET_DIR/.e2e
START=$(now)
declare -a SUMMARY=()

CHILD=""
# run: a step in the background, so that a signal interrupts the wait at
# once (bash defers traps while a foreground command runs).
run() {
	"$@" &
	CHILD=$!
	wait "$CHILD"
	local rc=$?
	CHILD=""
	return $rc
}

teardown() {
	local rc=$?
	if [[ -n $CHILD ]]; then
		kill -TERM "$CHILD" 2>/dev/null
		wait "$CHILD" 2>/dev/null
	fi
	mkdir -p "$WORK/logs"
	for n in "${ALL[@]}" "$NAT" natbox; do docker logs "$(container "$n")" >"$WORK/logs/$n.log" 2>&1 || true; done
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "== KEEP=1: the testnet stays up (make testnet-down to remove it)"
	else
		echo "== tearing down"
		bash "$TESTNET_DIR/down.sh" >/dev/null 2>&1 || true
	fi
	echo
	echo "== summary ($(since "$START") in all; node logs in testnet/.e2e/logs/)"
	printf '%s\n' "${SUMMARY[@]}"
	if ((rc == 130)); then
		echo "e2e: INTERRUPTED"
		exit 130
	elif ((FAILED > 0 || rc != 0)); then
		echo "e2e: FAILED ($FAILED failed check(s))"
		exit 1
	fi
	echo "e2e: all passed"
}
trap teardown EXIT
trap 'exit 130' INT TERM

section() { echo; echo "== $*"; }
record() { SUMMARY+=("$(printf '%-4s  %-22s %s' "$1" "$2" "$3")"); }

rm -rf "$WORK" && mkdir -p "$WORK"
section "testnet up (a clean one)"
bash "$TESTNET_DIR/down.sh" >/dev/null 2>&1 || true
t0=$(now)
if run bash "$TESTNET_DIR/up.sh"; then
	pass "testnet up: image built, ${#ALL[@]} containers started, mesh online ($(since "$t0") in all)"
	record PASS up "$(since "$t0")"
else
	fail "testnet up"
	record FAIL up "$(since "$t0")"
	exit 1
fi

section "the API beyond loopback: token required"
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
c1=$(code "http://127.0.0.1:${PORT[n1]}/api/v1/health")
c2=$(code "http://127.0.0.1:${PORT[n1]}/api/v1/peers")
c3=$(code -H "Authorization: Bearer $(token n2)" "http://127.0.0.1:${PORT[n1]}/api/v1/peers")
c4=$(code -H "Authorization: Bearer $(token n1)" "http://127.0.0.1:${PORT[n1]}/api/v1/peers")
if [[ $c1/$c2/$c3/$c4 == 200/401/401/200 ]]; then
	pass "api: health 200 without a token; peers 401 without one, 401 with another node's, 200 with its own"
	record PASS api-auth ""
else
	fail "api: health/no token/wrong token/right token gave $c1/$c2/$c3/$c4, want 200/401/401/200"
	record FAIL api-auth ""
fi

section "a task of every built-in type, through the CLI of $SUBMITTER (a verifier: it executes nothing)"
declare -A TASK
submit() { # NAME CHECK(jq) CLI-ARGS…
	local name=$1 check=$2 out rc t
	shift 2
	t=$(now)
	out=$(pm "$SUBMITTER" submit "$@" 2>"$WORK/$name.progress")
	rc=$?
	local took
	took=$(since "$t")
	echo "$out" >"$WORK/$name.task.json"
	if [[ $rc == 0 ]] && jq -e "$check" <<<"$out" >/dev/null 2>&1; then
		TASK[$name]=$(jq -r .task_id <<<"$out")
		pass "submit $name: accepted in $took, output $(jq -c .output <<<"$out"), executors $(jq -r '[.executors[]] | map(.[-8:]) | join(",")' <<<"$out"), $(jq -r .verification <<<"$out")"
		record PASS "submit $name" "$took"
	else
		fail "submit $name: exit $rc, state $(jq -r .state <<<"$out" 2>/dev/null) $(jq -r .reason <<<"$out" 2>/dev/null) (progress: testnet/.e2e/$name.progress)"
		record FAIL "submit $name" "$took"
	fi
}
submit mimc.chain.v1 '.state == "accepted" and (.output.y | test("^[0-9]+$"))' \
	--type mimc.chain.v1 --input '{"x": "20261123"}'
submit mlp.infer.v1 '.state == "accepted" and (.output.scores | length) > 0 and (.output.class | type) == "number"' \
	--type mlp.infer.v1 --input '{"x": [12,-7,33,0,5,-128,127,9,-1,44,-60,3,8,-19,25,70]}'
printf 'hello from the docker testnet\n' >"$WORK/echo.in"
submit wasm.exec.v1 ".state == \"accepted\" and .output == \"$(base64 -w0 <"$WORK/echo.in")\" and (.executors | length) == 2" \
	--type wasm.exec.v1 --module "$ROOT_DIR/tasks/examples/echo.wasm" --input-file "$WORK/echo.in" --replicas 2

section "offline audit of the bundles with the host binary (proofmesh verify)"
for name in mimc.chain.v1 mlp.infer.v1 wasm.exec.v1; do
	id=${TASK[$name]:-}
	[[ -n $id ]] || { fail "verify $name: no accepted task"; record FAIL "verify $name" ""; continue; }
	if api "$SUBMITTER" "/api/v1/tasks/$id/bundle" >"$WORK/$name.bundle.json" && "$PM" verify "$WORK/$name.bundle.json" >"$WORK/$name.verify" 2>&1; then
		pass "verify $name: $(tail -1 "$WORK/$name.verify" | cut -c1-100)…"
		record PASS "verify $name" ""
	else
		fail "verify $name: $(tail -1 "$WORK/$name.verify")"
		record FAIL "verify $name" ""
	fi
done
if [[ -f $WORK/mimc.chain.v1.bundle.json ]]; then
	# Another input under the same result: the task id no longer matches.
	jq --arg in "$(printf '{"x":"20261124"}' | base64 -w0)" '.task.input = $in' \
		"$WORK/mimc.chain.v1.bundle.json" >"$WORK/tampered.bundle.json"
	if "$PM" verify "$WORK/tampered.bundle.json" >"$WORK/tampered.verify" 2>&1; then
		fail "verify tampered: a bundle with another input verified"
		record FAIL "verify tampered" ""
	else
		pass "verify tampered: refused ($(grep FAIL "$WORK/tampered.verify" | cut -c1-90))"
		record PASS "verify tampered" ""
	fi
fi

for f in executor-stop kill stop partition bootstrap restart; do
	section "fault: $f"
	t0=$(now)
	if run bash "$TESTNET_DIR/faults/$f.sh"; then
		record PASS "fault $f" "$(since "$t0")"
	else
		FAILED=$((FAILED + 1))
		record FAIL "fault $f" "$(since "$t0")"
		info "healing the testnet before the next fault"
		heal || { fail "heal: the mesh did not recover; stopping"; exit 1; }
	fi
done

section "NAT: a node behind a NAT box, reached through a relay (testnet/nat.sh)"
t0=$(now)
if run bash "$TESTNET_DIR/nat.sh"; then
	record PASS "nat" "$(since "$t0")"
else
	FAILED=$((FAILED + 1))
	record FAIL "nat" "$(since "$t0")"
fi
