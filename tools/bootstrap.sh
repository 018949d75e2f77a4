#!/usr/bin/env bash
# Installs the pinned uv (outside the repo, once per machine) and prints its path.
# uv then creates .venv from uv.lock; nothing else is assumed on a fresh machine.
set -euo pipefail
uv_version="0.13.8"
cache_root="${EDGEWAVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgewave}"
tool_venv="$cache_root/uv-$uv_version"
if [[ ! -x "$tool_venv/bin/uv" ]]; then
  python3 -m venv "$tool_venv" >&2
  "$tool_venv/bin/python" -m pip install -q --disable-pip-version-check "uv==$uv_version" >&2
fi
echo "$tool_venv/bin/uv"
