#!/usr/bin/env bash
# Builds (or reuses) the pinned helm binary from its Go module; prints its path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${EDGEWAVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgewave}"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" "$here/../controlplane/go.mod" | sha256sum | cut -c1-16)"
bin="$cache_root/helm/$key/bin"
if [[ -x "$bin/helm" ]]; then echo "$bin/helm"; exit 0; fi
# Matches both `require helm.sh/helm/v3 vX` and the same line inside a require block.
version="$(awk '{for (i = 1; i < NF; i++) if ($i == "helm.sh/helm/v3") { print $(i + 1); exit }}' "$here/go.mod")"
[[ -n "$version" ]] || { echo "helm.sh/helm/v3 is not required in $here/go.mod" >&2; exit 1; }
# helm's default cluster version (for template/lint without --kube-version) is the one we test against.
kube_minor="$(awk '$1=="k8s.io/kubernetes"{split($2, v, "."); print v[2]}' "$here/../controlplane/go.mod")"
mkdir -p "$bin"
echo "building helm $version (first run only)" >&2
cd "$here"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kube_minor \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kube_minor" \
  -o "$bin/helm.partial" helm.sh/helm/v3/cmd/helm >&2
mv "$bin/helm.partial" "$bin/helm"
echo "$bin/helm"
