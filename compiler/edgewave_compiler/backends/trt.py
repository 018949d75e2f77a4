"""TensorRT (data-center and Jetson): builds for the GPU it runs on, through the shared path.

The full builder needs a GPU of the target's compute capability (or, with hardware
compatibility, any Ampere-or-newer discrete GPU), so centrally it serves only the classes
of the operator's own GPU; everything else is built on an agent that has that GPU. Engines
are bound to the TensorRT version unless built version-compatible.
"""

from __future__ import annotations

from typing import Any

from edgewave_compiler import backends, errors, keys, planning
from edgewave_compiler.backends import trt_common

MODULE = "tensorrt"
PACKAGE = "tensorrt"


def local_compute_capability() -> str | None:
    """The first GPU's compute capability through NVML, or None without a GPU or NVML."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            return None
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(
            pynvml.nvmlDeviceGetHandleByIndex(0)
        )
        return f"{int(major)}.{int(minor)}"
    finally:
        pynvml.nvmlShutdown()


class TensorRTBuilder(trt_common.TensorRTFamilyBuilder):
    backend = keys.Backend.TENSORRT

    def central(self) -> planning.CentralBuilder | None:
        cc = local_compute_capability()
        if cc is None:
            return None
        return planning.CentralBuilder(
            backend=self.backend,
            version=self.version,
            compute_capabilities=frozenset({cc}),
            hardware_compatibility=cc not in planning.JETSON_COMPUTE_CAPABILITIES
            and keys.compute_capability_tuple(cc) >= (8, 0),
        )

    def configure_target(self, config: Any, *, key: keys.BuildKey, log: backends.BuildLog) -> None:
        trt = self.trt
        local = local_compute_capability()
        if key.hardware_compatibility is keys.HardwareCompatibility.AMPERE_PLUS:
            config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
            log.write("hardware compatibility: Ampere and newer")
        elif key.compute_capability is not None and local not in (None, key.compute_capability):
            raise errors.BuildFailed(
                f"TensorRT builds for the GPU it runs on ({local}) but this engine is for"
                f" compute capability {key.compute_capability}: build it on an agent with that"
                " GPU (the planner does this when allowed)"
            )
        if key.version_compatible:
            config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
            log.write("version compatible: loads on later TensorRT runtimes of this major version")


def create() -> TensorRTBuilder:
    return TensorRTBuilder(backends.import_toolchain(MODULE, package=PACKAGE))
