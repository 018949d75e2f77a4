#!/usr/bin/env bash
# Builds (or reuses) the pinned kube-score binary from its Go module; prints its path.
# Cached outside the repo, keyed by a hash of this module, like tools/helm/build.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${EDGEWAVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgewave}"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
bin="$cache_root/kube-score/$key/bin"
if [[ -x "$bin/kube-score" ]]; then echo "$bin/kube-score"; exit 0; fi
version="$(awk '{for (i = 1; i < NF; i++) if ($i == "github.com/zegl/kube-score") { print $(i + 1); exit }}' "$here/go.mod")"
[[ -n "$version" ]] || { echo "github.com/zegl/kube-score is not required in $here/go.mod" >&2; exit 1; }
mkdir -p "$bin"
echo "building kube-score $version (first run only)" >&2
cd "$here"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X main.version=$version" \
  -o "$bin/kube-score.partial" github.com/zegl/kube-score/cmd/kube-score >&2
mv "$bin/kube-score.partial" "$bin/kube-score"
echo "$bin/kube-score"
