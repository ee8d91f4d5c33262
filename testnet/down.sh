#!/usr/bin/env bash
# make testnet-down: remove the containers and the network, then the data
# dirs (identities, tokens, stores): the next testnet-up is a new network.
#   KEEP_DATA=1   keep testnet/.data (same peer ids and stores next time)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if [[ -f $ENV_FILE ]]; then
	# The NAT override names the natlan network, which only the NAT fault
	# scripts create: compose's "not found" for it says nothing.
	compose_nat down --remove-orphans --timeout 15 2>&1 | sed -e '/Network .*-natlan not found/d' -e 's/^/   /'
else
	# No .env (never started, or already down): remove by name.
	docker rm -f "${ALL[@]/#/pm-}" pm-nat pm-natbox >/dev/null 2>&1 || true
	docker network rm "$NETWORK" "$NETWORK-natlan" >/dev/null 2>&1 || true
fi
if [[ ${KEEP_DATA:-0} != 1 ]]; then
	rm -rf "$DATA_DIR" "$ENV_FILE"
fi
