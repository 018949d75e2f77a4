"""TensorRT-RTX: ahead-of-time engine builds for a chosen compute capability, on any host.

A CPU-only operator builds engines for RTX-class GPUs (Turing to Blackwell) because the
builder compiles for the compute capability it is told, not the GPU it runs on. Engines are
bound to the exact TensorRT-RTX release, which the build key records.
"""

from __future__ import annotations

import re
from typing import Any

from edgewave_compiler import backends, keys, planning
from edgewave_compiler.backends import trt_common

MODULE = "tensorrt_rtx"
PACKAGE = "tensorrt-rtx"


class TensorRTRTXBuilder(trt_common.TensorRTFamilyBuilder):
    backend = keys.Backend.TENSORRT_RTX

    def targets(self) -> dict[str, Any]:
        """Compute capability (`8.6`) -> the ComputeCapability member that builds for it."""
        found: dict[str, Any] = {}
        for name, member in self.trt.ComputeCapability.__members__.items():
            match = re.fullmatch(r"SM(\d+)(\d)", name)
            if match:
                found[f"{int(match.group(1))}.{match.group(2)}"] = member
        return found

    def central(self) -> planning.CentralBuilder:
        return planning.CentralBuilder(
            backend=self.backend,
            version=self.version,
            compute_capabilities=frozenset(self.targets()),
        )

    def configure_target(self, config: Any, *, key: keys.BuildKey, log: backends.BuildLog) -> None:
        member = self.targets().get(key.compute_capability or "")
        if member is None:
            # Not an ahead-of-time target of this release: build for the GPU present (agent side).
            log.write(
                f"compute capability {key.compute_capability} is not an ahead-of-time target of"
                f" TensorRT-RTX {self.version}; building for the local GPU"
            )
            member = self.trt.ComputeCapability.CURRENT
        config.num_compute_capabilities = 1
        config.set_compute_capability(member, 0)


def create() -> TensorRTRTXBuilder:
    return TensorRTRTXBuilder(backends.import_toolchain(MODULE, package=PACKAGE))
