#!/usr/bin/env bash
# Re-pins the control plane to other releases, e.g. `tools/controlplane/pin.sh v1.34.4 v3.6.4`
# (the etcd version defaults to the pinned one), through the Go module proxy only.
# k8s.io/kubernetes, used as a module, replaces every k8s.io/* staging module with
# ./staging/src/..., which a dependent cannot see; each is pinned to its v0.x release instead.
# Then review and commit go.mod and go.sum; build.sh rebuilds because its cache key changes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
kubernetes="${1:?usage: pin.sh KUBERNETES_VERSION [ETCD_VERSION], e.g. pin.sh v1.34.4}"
etcd="${2:-$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' go.mod)}"
staging="v0.${kubernetes#v1.}"
export GOFLAGS=-mod=mod

upstream_gomod="$(go mod download -json "k8s.io/kubernetes@$kubernetes" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
mapfile -t modules < <(sed -n 's|^[[:space:]]*\(k8s.io/[^[:space:]]*\) => \./staging/.*|\1|p' "$upstream_gomod")
[[ ${#modules[@]} -gt 0 ]] || { echo "no staging modules found in $upstream_gomod" >&2; exit 1; }

# Replace the whole replace block (this module has no other replaces) with a fresh one.
awk '/^replace \($/ { skip = 1; next } skip && /^\)$/ { skip = 0; next } !skip && !/^replace / { print }' \
  go.mod > go.mod.new
{
  echo "replace ("
  for module in "${modules[@]}"; do printf '\t%s => %s %s\n' "$module" "$module" "$staging"; done
  echo ")"
} >> go.mod.new
mv go.mod.new go.mod
go mod edit -require "k8s.io/kubernetes@$kubernetes" -require "go.etcd.io/etcd/server/v3@$etcd"
go mod tidy
echo "pinned k8s.io/kubernetes $kubernetes (staging modules $staging) and etcd $etcd" >&2
