#!/usr/bin/env bash
# Rebuilds the built-in WASM task modules reproducibly with the standard Go
# toolchain:
#   bash tasks/build.sh          # writes tasks/mimc.wasm, tasks/mlp.wasm,
#                                # tasks/SHA256SUMS and tasks/TOOLCHAIN
#   bash tasks/build.sh OUTDIR   # writes only the two modules into OUTDIR
#
# The bytes depend only on the sources, go.mod/go.sum and the Go toolchain
# version (recorded in tasks/TOOLCHAIN): every setting that could change them
# is pinned here, and paths, build ids and VCS stamps are left out.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$here/.."

for m in mimc mlp; do
	env CGO_ENABLED=0 GOOS=wasip1 GOARCH=wasm GOWASM= GOEXPERIMENT= GOFLAGS= \
		go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' \
		-o "$out/$m.wasm" "./tasks/$m"
done

if [ "$out" = "$here" ]; then
	go env GOVERSION > "$here/TOOLCHAIN"
	(cd "$here" && sha256sum mimc.wasm mlp.wasm > SHA256SUMS)
fi
(cd "$out" && sha256sum mimc.wasm mlp.wasm)
