#!/bin/sh
# The GPU machine check (docs/gpu-check.md): the agent's NVML inventory, its fit check refusing
# an engine built for another compute capability, and an ONNX Runtime inference. Needs an
# NVIDIA GPU, its driver, python3 with numpy, onnxruntime and nvidia-ml-py; no network, no
# pydantic/cryptography/grpc (the agent's light modules are imported from this source tree).
# Exit status 0 only when every check passed; at most 5 minutes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
# -P: do not put the working directory on sys.path; -I would also drop PYTHONPATH, which a
# wheels directory ($EDGEWAVE_GPU_WHEELS, e.g. tensorrt-rtx) may need.
export PYTHONPATH="${EDGEWAVE_GPU_WHEELS:+$EDGEWAVE_GPU_WHEELS:}${PYTHONPATH:-}"
echo "== $(date -u +%FT%TZ) $(uname -n): $("$python" -V 2>&1)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader || true
flags=""
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' && flags=-P
exec timeout --kill-after=10 300 "$python" $flags "$here/check.py" "$@"
