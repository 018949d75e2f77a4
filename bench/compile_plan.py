"""Build dedupe at fleet scale: 1,000 agents, 4 GPU classes, 2 runtimes, one build per key.

Simulated agents (no processes) report one of four RTX-class GPUs (SM75, SM86, SM89,
SM120) and either the TensorRT-RTX runtime this host builds for or only ONNX Runtime. The
real planner turns them into build keys and the real engine cache serves them: the first
plan must build exactly one engine per distinct key (one TensorRT-RTX engine per GPU class
plus one ONNX Runtime model), and a second plan must build nothing.

By default the builds are real (TensorRT-RTX ahead of time and ONNX Runtime, in worker
processes); `--fake-build` swaps in an instant build function that writes a stand-in file
through the same cache, which isolates planning and cache costs. Prints
`compile_dedupe builds=<n> expected=<m>` and the cached plan's time as a ratio of the first.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edgewave_compiler import backends, building, cache, compiling, keys, planning, samples

CLASSES = ("7.5", "8.6", "8.9", "12.0")
PROFILE = keys.ShapeProfile(input="x", min=(1, 8), opt=(4, 8), max=(16, 8))


def fleet(count: int, *, rtx_version: str, ort_version: str) -> dict[str, planning.TargetPlatform]:
    """Agents cycling through the 4 GPU classes x 2 runtime sets."""
    agents: dict[str, planning.TargetPlatform] = {}
    for i in range(count):
        runtimes = (
            {"tensorrt-rtx": rtx_version, "onnxruntime": ort_version}
            if (i // len(CLASSES)) % 2 == 0
            else {"onnxruntime": ort_version}
        )
        agents[f"edge-{i:05d}"] = planning.TargetPlatform(
            compute_capability=CLASSES[i % len(CLASSES)], runtimes=runtimes
        )
    return agents


def expected_builds(targets: dict[str, planning.TargetPlatform]) -> int:
    """Counted without the planner: one per RTX class present, one ONNX Runtime model."""
    rtx_classes = {
        t.compute_capability
        for t in targets.values()
        if t.runtime_version(keys.Backend.TENSORRT_RTX)
    }
    ort_only = any(t.runtime_version(keys.Backend.TENSORRT_RTX) is None for t in targets.values())
    return len(rtx_classes) + int(ort_only)


def fake_build(key: keys.BuildKey) -> Callable[[Path], building.BuildOutput]:
    def build(staging: Path) -> building.BuildOutput:
        artifact = staging / "engine.bin"
        data = key.canonical_json().encode()
        artifact.write_bytes(data)
        return building.BuildOutput(
            artifact=artifact,
            digest=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            build_seconds=0.0,
            log="fake build (bench/compile_plan.py --fake-build)",
        )

    return build


async def rollout(
    *,
    targets: dict[str, planning.TargetPlatform],
    request: planning.BuildRequest,
    builders: tuple[planning.CentralBuilder, ...],
    engines: cache.EngineCache,
    model: Path,
    fake: bool,
    uid: str,
) -> tuple[int, int]:
    """Plan and make sure every central engine exists; returns (builds run, planned keys)."""
    plan = planning.plan_builds(targets=targets, request=request, builders=builders)
    if fake:
        before = engines.builds
        for build in plan.central:
            engines.get_or_build(build.key, fake_build(build.key), rollout_uid=uid)
        return engines.builds - before, len(plan.central)
    compiler = compiling.Compiler(engines, max_workers=2)
    await asyncio.gather(
        *(compiler.ensure_engine(b.key, model, rollout_uid=uid) for b in plan.central)
    )
    return compiler.workers_started, len(plan.central)


async def run(args: argparse.Namespace) -> int:
    central = backends.central_builders()
    rtx = next((b for b in central if b.backend is keys.Backend.TENSORRT_RTX), None)
    ort = next((b for b in central if b.backend is keys.Backend.ONNXRUNTIME), None)
    if rtx is None or ort is None:
        print("compile_dedupe needs tensorrt-rtx and onnxruntime installed", file=sys.stderr)
        return 2
    targets = fleet(args.agents, rtx_version=rtx.version, ort_version=ort.version)
    expected = expected_builds(targets)
    with tempfile.TemporaryDirectory(prefix="compile-plan-") as scratch:
        root = Path(scratch)
        model = root / "model.onnx"
        model.write_bytes(samples.matmul_relu().SerializeToString())
        request = planning.BuildRequest(
            model_sha256=hashlib.sha256(model.read_bytes()).hexdigest(),
            backends=(keys.Backend.TENSORRT_RTX, keys.Backend.ONNXRUNTIME),
            precision=keys.Precision.FP16,
            profiles=(PROFILE,),
        )
        engines = cache.EngineCache(root / "cache")

        async def once(uid: str) -> tuple[int, int]:
            return await rollout(
                targets=targets,
                request=request,
                builders=central,
                engines=engines,
                model=model,
                fake=args.fake_build,
                uid=uid,
            )

        started = time.perf_counter()
        builds, planned = await once("rollout-1")
        first = time.perf_counter() - started
        started = time.perf_counter()
        rebuilt, _ = await once("rollout-2")
        cached = time.perf_counter() - started
    mode = "fake instant builds" if args.fake_build else "real TensorRT-RTX and ONNX Runtime builds"
    print(f"compile_dedupe builds={builds} expected={expected}")
    print(
        f"compile_dedupe cached_plan_ratio={cached / first:.4f} second_plan_builds={rebuilt}"
        f" first_s={first:.3f} cached_s={cached:.3f} planned_keys={planned}"
        f" agents={len(targets)} ({len(CLASSES)} GPU classes x 2 runtimes; {mode})"
    )
    return 0 if builds == expected == planned and rebuilt == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000, help="simulated agents (default 1000)")
    parser.add_argument(
        "--fake-build",
        action="store_true",
        help="instant stand-in builds through the real planner and cache",
    )
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
