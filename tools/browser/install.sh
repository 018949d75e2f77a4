#!/usr/bin/env bash
# Installs (or finds) the headless browser the dashboard's browser test drives: Debian's
# chromium (Playwright's own browser download is not used). Prints its path.
set -euo pipefail
browser="${EDGEWAVE_CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$browser" ]]; then echo "$browser"; exit 0; fi
if [[ "$browser" != /usr/bin/chromium ]]; then
  echo "EDGEWAVE_CHROMIUM=$browser is not an executable" >&2; exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "no chromium at $browser and no apt-get: install chromium, or set EDGEWAVE_CHROMIUM" >&2
  exit 1
fi
sudo=""
if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
echo "installing chromium from Debian's packages (first run only)" >&2
$sudo apt-get update >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y chromium >&2
[[ -x "$browser" ]] || { echo "apt-get installed no $browser" >&2; exit 1; }
echo "$browser"
