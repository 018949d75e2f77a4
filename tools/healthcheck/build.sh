#!/usr/bin/env bash
# Builds (or reuses) the health-check probe (main.go: kstatus and Flux's CEL health check, from
# their pinned Go modules); prints its path. Cached outside the repo, keyed like tools/helm.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${EDGEWAVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgewave}"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/build.sh" | sha256sum | cut -c1-16)"
bin="$cache_root/healthcheck/$key/bin"
if [[ -x "$bin/healthcheck" ]]; then echo "$bin/healthcheck"; exit 0; fi
mkdir -p "$bin"
echo "building the kstatus / Flux CEL health-check probe (first run only)" >&2
cd "$here"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$bin/healthcheck.partial" . >&2
mv "$bin/healthcheck.partial" "$bin/healthcheck"
echo "$bin/healthcheck"
