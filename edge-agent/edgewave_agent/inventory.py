"""What this node has: its GPUs (NVML), the runtimes installed, for Describe.

NVML is queried through nvidia-ml-py when a driver is present; a node without one reports
no GPU. Labs and simulated fleets override the GPU list in the config.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgewave_agent.backends import GpuInfo

if TYPE_CHECKING:  # no pydantic at run time: e2e/gpu/check.sh runs this module without it
    from edgewave_agent.settings import GpuOverride

log = logging.getLogger(__name__)

# Runtime name reported in Describe -> Python module that provides it.
RUNTIME_MODULES = {
    "onnxruntime": "onnxruntime",
    "tensorrt": "tensorrt",
    "tensorrt-rtx": "tensorrt_rtx",
}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_gpus() -> list[GpuInfo]:
    """GPUs NVML reports; empty when there is no driver (or no nvidia-ml-py)."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            found.append(
                GpuInfo(
                    index=index,
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    compute_capability=(int(major), int(minor)),
                    memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                    uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                    driver_version=driver,
                )
            )
        return found
    except pynvml.NVMLError as error:
        log.warning("NVML failed while listing GPUs (%s); reporting none", error)
        return []
    finally:
        pynvml.nvmlShutdown()


def gpus(overrides: Sequence[GpuOverride] | None) -> list[GpuInfo]:
    if overrides is None:
        return nvml_gpus()
    result = []
    for index, gpu in enumerate(overrides):
        major, minor = gpu.compute_capability.split(".")
        result.append(
            GpuInfo(
                index=index,
                name=gpu.name,
                compute_capability=(int(major), int(minor)),
                memory_bytes=int(gpu.memory_bytes),
                uuid=gpu.uuid,
                driver_version=gpu.driver_version,
            )
        )
    return result


def runtimes() -> dict[str, str]:
    """{runtime: version} of the inference runtimes importable here."""
    found: dict[str, str] = {}
    for name, module_name in RUNTIME_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found[name] = str(getattr(module, "__version__", "unknown"))
    return found


@functools.cache
def agent_version() -> str:
    try:
        return importlib.metadata.version("edgewave")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"
