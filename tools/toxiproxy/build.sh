#!/usr/bin/env bash
# Builds (or reuses) the pinned toxiproxy server from its Go module; prints its path.
# Cached outside the repo, keyed by a hash of this module, like tools/helm/build.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${EDGEWAVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgewave}"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
bin="$cache_root/toxiproxy/$key/bin"
if [[ -x "$bin/toxiproxy-server" ]]; then echo "$bin/toxiproxy-server"; exit 0; fi
version="$(awk '{for (i = 1; i < NF; i++) if ($i == "github.com/Shopify/toxiproxy/v2") { print $(i + 1); exit }}' "$here/go.mod")"
[[ -n "$version" ]] || { echo "github.com/Shopify/toxiproxy/v2 is not required in $here/go.mod" >&2; exit 1; }
mkdir -p "$bin"
echo "building toxiproxy $version (first run only)" >&2
cd "$here"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
  -ldflags "-s -w -X github.com/Shopify/toxiproxy/v2.Version=$version" \
  -o "$bin/toxiproxy-server.partial" github.com/Shopify/toxiproxy/v2/cmd/server >&2
mv "$bin/toxiproxy-server.partial" "$bin/toxiproxy-server"
echo "$bin/toxiproxy-server"
