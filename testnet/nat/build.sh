#!/usr/bin/env bash
# Builds the NAT scenario's image (testnet/nat/Dockerfile) from this
# machine's dash, sleep, iptables, ip and setpriv: each binary with the
# shared libraries ldd lists, and iptables' xtables modules. Needs the
# node image (make testnet-up builds it) and iptables and iproute2 on the
# host (apt-get install iptables iproute2).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
ctx=$BUILD_DIR/nat
rm -rf "$ctx" && mkdir -p "$ctx/rootfs"
root=$ctx/rootfs
copy() { # copy SRC DEST-in-rootfs: the file itself, symlinks resolved
	mkdir -p "$root$(dirname "$2")"
	cp -L "$1" "$root$2"
}
declare -A tools=([/bin/sh]=/usr/bin/dash [/bin/sleep]=/usr/bin/sleep
	[/usr/sbin/iptables]=/usr/sbin/iptables [/usr/sbin/ip]=/usr/sbin/ip [/usr/bin/setpriv]=/usr/bin/setpriv)
for dest in "${!tools[@]}"; do
	src=${tools[$dest]}
	[[ -e $src ]] || { echo "nat image: $src is missing on this machine (apt-get install iptables iproute2 util-linux)" >&2; exit 2; }
	copy "$src" "$dest"
	# Shared libraries, and the loader, at the paths the binary asks for.
	ldd "$src" | awk '/=>/ { print $3 } /^\t\// { print $1 }' | while read -r lib; do
		[[ -n $lib && -e $lib ]] && copy "$lib" "$lib"
	done
done
# iptables is xtables-nft-multi: it picks its mode from argv[0] (iptables)
# and loads matches and targets from the xtables directory.
xt=$(readlink -f "$(dirname "$(ldd /usr/sbin/iptables | awk '/libxtables/ { print $3 }')")/xtables")
for m in libxt_MASQUERADE libxt_conntrack libxt_standard libxt_tcp libxt_udp libipt_REJECT libxt_comment; do
	[[ -e $xt/$m.so ]] && copy "$xt/$m.so" "$xt/$m.so"
done
for lib in $(ldd "$xt"/libxt_conntrack.so | awk '/=>/ { print $3 }'); do copy "$lib" "$lib"; done
mkdir -p "$root/run" "$root/etc"
echo "$xt" >"$root/xtables-libdir"
cp "$(dirname "$0")/natbox.sh" "$(dirname "$0")/natnode.sh" "$root/"
DOCKER_BUILDKIT=0 docker build --build-arg "BASE=${PM_IMAGE:-proofmesh-testnet:dev}" \
	-t "${PM_NAT_IMAGE:-proofmesh-nat:dev}" -f "$(dirname "$0")/Dockerfile" "$ctx" >"$ctx/docker-build.log" 2>&1 ||
	{ cat "$ctx/docker-build.log" >&2; exit 1; }
docker image ls --format '   image {{.Repository}}:{{.Tag}}  {{.Size}}' "${PM_NAT_IMAGE:-proofmesh-nat:dev}"
