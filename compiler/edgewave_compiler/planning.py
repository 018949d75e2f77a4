"""Which engine each target agent needs, where it is built, and the distinct builds. Pure.

Input: the agents' reported platforms (compute capability, runtimes and versions), what a
rollout asks for (model digest, allowed backends in preference order, precision, shape
profiles) and the builders available centrally. Output: one `BuildKey` per agent and the
deduplicated builds, so a thousand agents sharing a GPU class and runtime cost one build.

Per agent, the first allowed backend that the agent has a runtime for (and, for a GPU
backend, a GPU that supports the precision) serves it. A central builder builds it when it
can target that compute capability and its engines load on the agent's runtime version
(TensorRT-RTX: same release; TensorRT: same version, or same major and not older with
version compatibility; ONNX Runtime: same minor). Otherwise the agent builds it itself
with its local toolchain (`BuildLocation.AGENT`): Jetson or Hopper GPUs that no central
builder targets, or a runtime version the central builder does not match. An engine built
on an agent never leaves it, so each such agent builds its own copy.

No I/O, no toolchain imports (import-linter enforces it).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from edgewave_api import edgeagent, modelrollout
from edgewave_compiler import keys

JETSON_COMPUTE_CAPABILITIES = frozenset({"5.3", "6.2", "7.2", "8.7", "10.1", "11.0"})
"""Integrated (Jetson / DRIVE) GPUs: never served by hardware-compatible (Ampere+) engines."""

BF16_MIN_COMPUTE_CAPABILITY = (8, 0)


class BuildLocation(enum.StrEnum):
    CENTRAL = "central"
    AGENT = "agent"


@dataclass(frozen=True)
class TargetPlatform:
    """What one agent reported: its GPU's compute capability (None: no GPU) and runtimes."""

    compute_capability: str | None
    runtimes: Mapping[str, str] = field(default_factory=dict)
    """Runtime name -> version, e.g. {"tensorrt-rtx": "1.7.1.116", "onnxruntime": "1.32.0"}."""

    def runtime_version(self, backend: keys.Backend) -> str | None:
        for name, version in self.runtimes.items():
            if keys.runtime_backend(name) is backend:
                return version
        return None

    def signature(self) -> tuple[str | None, tuple[tuple[str, str], ...]]:
        """A hashable summary: agents with equal signatures get equal decisions."""
        cc = (
            None
            if self.compute_capability is None
            else keys.normalize_compute_capability(self.compute_capability)
        )
        runtimes = sorted(
            (backend.value, version)
            for name, version in self.runtimes.items()
            if (backend := keys.runtime_backend(name)) is not None
        )
        return cc, tuple(runtimes)


@dataclass(frozen=True)
class CentralBuilder:
    """A builder the operator can run itself (see `edgewave_compiler.backends.central_builders`)."""

    backend: keys.Backend
    version: str
    compute_capabilities: frozenset[str] = frozenset()
    """Targets it can build for (normalized, `8.6`); ignored for ONNX Runtime."""
    hardware_compatibility: bool = False
    """A TensorRT builder on an Ampere-or-newer GPU can emit Ampere+ hardware-compatible engines."""


@dataclass(frozen=True)
class BuildRequest:
    """What a rollout asks for (`spec.model.sha256` and `spec.build`)."""

    model_sha256: str
    backends: Sequence[keys.Backend]
    precision: keys.Precision = keys.Precision.FP32
    profiles: Sequence[keys.ShapeProfile] = ()
    workspace_bytes: int | None = None


@dataclass(frozen=True)
class PlanOptions:
    allow_agent_builds: bool = True
    tensorrt_hardware_compatible: bool = False
    """Build one Ampere+ TensorRT engine for all non-Jetson GPUs of compute capability >= 8.0."""
    tensorrt_version_compatible: bool = False
    """Build TensorRT engines that load on later runtimes of the same major version."""


@dataclass(frozen=True)
class Decision:
    key: keys.BuildKey
    location: BuildLocation


@dataclass(frozen=True)
class Refusal:
    reason: str


@dataclass(frozen=True)
class PlannedBuild:
    key: keys.BuildKey
    location: BuildLocation
    agents: tuple[str, ...]
    """Agents this engine serves; with `AGENT` location each of them builds its own copy."""

    @property
    def digest(self) -> str:
        return self.key.digest()

    @property
    def build_count(self) -> int:
        return 1 if self.location is BuildLocation.CENTRAL else len(self.agents)


@dataclass(frozen=True)
class BuildPlan:
    assignments: Mapping[str, Decision]
    builds: tuple[PlannedBuild, ...]
    unservable: Mapping[str, str]
    """Agent -> why none of the allowed backends can serve it."""

    def key_for(self, agent: str) -> keys.BuildKey | None:
        decision = self.assignments.get(agent)
        return None if decision is None else decision.key

    def location_for(self, agent: str) -> BuildLocation | None:
        decision = self.assignments.get(agent)
        return None if decision is None else decision.location

    @property
    def central(self) -> tuple[PlannedBuild, ...]:
        return tuple(b for b in self.builds if b.location is BuildLocation.CENTRAL)

    @property
    def on_agents(self) -> tuple[PlannedBuild, ...]:
        return tuple(b for b in self.builds if b.location is BuildLocation.AGENT)

    @property
    def build_count(self) -> int:
        return sum(b.build_count for b in self.builds)


def request_from_rollout(spec: modelrollout.ModelRolloutSpec) -> BuildRequest:
    """The build request a ModelRollout's `spec.model` and `spec.build` make."""
    build = spec.build
    return BuildRequest(
        model_sha256=spec.model.sha256,
        backends=tuple(keys.Backend(backend.value) for backend in build.backends),
        precision=keys.Precision(build.precision.value),
        profiles=tuple(
            keys.ShapeProfile(input=p.input, min=tuple(p.min), opt=tuple(p.opt), max=tuple(p.max))
            for p in build.profiles or ()
        ),
        workspace_bytes=None if build.max_workspace_mib is None else build.max_workspace_mib << 20,
    )


def platform_from_agent(status: edgeagent.EdgeAgentStatus | None) -> TargetPlatform:
    """What an EdgeAgent's status reports (no status yet: no GPU and no runtimes)."""
    if status is None:
        return TargetPlatform(compute_capability=None)
    return TargetPlatform(
        compute_capability=None if status.gpu is None else status.gpu.compute_capability,
        runtimes={runtime.name: runtime.version for runtime in status.runtimes},
    )


def _version_parts(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def runtime_accepts(
    *, backend: keys.Backend, built_with: str, runtime: str, version_compatible: bool = False
) -> bool:
    """Whether an engine built with `built_with` loads on an agent runtime of version `runtime`."""
    built, running = _version_parts(built_with), _version_parts(runtime)
    if backend is keys.Backend.ONNXRUNTIME:
        return built[:2] == running[:2]
    if backend is keys.Backend.TENSORRT and version_compatible:
        return built[:1] == running[:1] and running >= built
    return built[:3] == running[:3]


def effective_precision(backend: keys.Backend, requested: keys.Precision) -> keys.Precision:
    """ONNX Runtime on CPU serves FP32 for FP16/BF16 requests (few CPU kernels exist for them)."""
    if backend is keys.Backend.ONNXRUNTIME and requested in (
        keys.Precision.FP16,
        keys.Precision.BF16,
    ):
        return keys.Precision.FP32
    return requested


def _central_key(
    *,
    builders: Iterable[CentralBuilder],
    backend: keys.Backend,
    runtime: str,
    cc: str | None,
    base: dict[str, object],
    options: PlanOptions,
) -> keys.BuildKey | None:
    version_compatible = backend is keys.Backend.TENSORRT and options.tensorrt_version_compatible
    for builder in builders:
        if builder.backend is not backend or not runtime_accepts(
            backend=backend,
            built_with=builder.version,
            runtime=runtime,
            version_compatible=version_compatible,
        ):
            continue
        common = {**base, "backend_version": builder.version}
        if backend is keys.Backend.ONNXRUNTIME:
            return keys.BuildKey.model_validate({**common, "compute_capability": None})
        common["version_compatible"] = version_compatible
        if cc in builder.compute_capabilities:
            return keys.BuildKey.model_validate({**common, "compute_capability": cc})
        if (
            backend is keys.Backend.TENSORRT
            and options.tensorrt_hardware_compatible
            and builder.hardware_compatibility
            and cc is not None
            and cc not in JETSON_COMPUTE_CAPABILITIES
            and keys.compute_capability_tuple(cc) >= (8, 0)
        ):
            return keys.BuildKey.model_validate(
                {
                    **common,
                    "compute_capability": None,
                    "hardware_compatibility": keys.HardwareCompatibility.AMPERE_PLUS,
                }
            )
    return None


def decide(
    *,
    platform: TargetPlatform,
    request: BuildRequest,
    builders: Sequence[CentralBuilder],
    options: PlanOptions = PlanOptions(),
) -> Decision | Refusal:
    """The engine one agent needs and where it is built, or why none of the backends fits."""
    cc, _ = platform.signature()
    notes: list[str] = []
    for backend in request.backends:
        runtime = platform.runtime_version(backend)
        if runtime is None:
            notes.append(f"{backend.value}: the agent reports no such runtime")
            continue
        if backend.needs_gpu and cc is None:
            notes.append(f"{backend.value}: the agent reports no GPU")
            continue
        precision = effective_precision(backend, request.precision)
        if (
            backend.needs_gpu
            and precision is keys.Precision.BF16
            and cc is not None
            and keys.compute_capability_tuple(cc) < BF16_MIN_COMPUTE_CAPABILITY
        ):
            notes.append(
                f"{backend.value}: BF16 needs compute capability 8.0 or newer, GPU is {cc}"
            )
            continue
        base: dict[str, object] = {
            "model_sha256": request.model_sha256,
            "backend": backend,
            "precision": precision,
            # ONNX Runtime handles dynamic shapes itself: profiles would only split the key.
            "profiles": () if backend is keys.Backend.ONNXRUNTIME else tuple(request.profiles),
            "workspace_bytes": None
            if backend is keys.Backend.ONNXRUNTIME
            else request.workspace_bytes,
        }
        key = _central_key(
            builders=builders,
            backend=backend,
            runtime=runtime,
            cc=None if backend is keys.Backend.ONNXRUNTIME else cc,
            base=base,
            options=options,
        )
        if key is not None:
            return Decision(key=key, location=BuildLocation.CENTRAL)
        if options.allow_agent_builds:
            local = keys.BuildKey.model_validate(
                {
                    **base,
                    "backend_version": runtime,
                    "compute_capability": None if backend is keys.Backend.ONNXRUNTIME else cc,
                }
            )
            return Decision(key=local, location=BuildLocation.AGENT)
        target = (
            "this runtime version"
            if backend is keys.Backend.ONNXRUNTIME
            else f"compute capability {cc} with this runtime version"
        )
        notes.append(
            f"{backend.value} {runtime}: no central builder targets {target}"
            " and agent builds are disabled"
        )
    runtimes = ", ".join(f"{n} {v}" for n, v in sorted(platform.runtimes.items())) or "none"
    allowed = ", ".join(b.value for b in request.backends) or "none"
    return Refusal(
        reason=f"no allowed backend ({allowed}) can serve this agent (GPU {cc or 'none'},"
        f" runtimes {runtimes}): "
        + "; ".join(notes)
        + ". Allow a backend the agent runs, or install that runtime on the agent"
    )


def plan_builds(
    *,
    targets: Mapping[str, TargetPlatform],
    request: BuildRequest,
    builders: Sequence[CentralBuilder],
    options: PlanOptions = PlanOptions(),
) -> BuildPlan:
    """Decide every target (once per distinct platform) and dedupe the builds by key."""
    decided: dict[object, Decision | Refusal] = {}
    assignments: dict[str, Decision] = {}
    unservable: dict[str, str] = {}
    for agent in sorted(targets):
        platform = targets[agent]
        signature = platform.signature()
        outcome = decided.get(signature)
        if outcome is None:
            outcome = decide(platform=platform, request=request, builders=builders, options=options)
            decided[signature] = outcome
        if isinstance(outcome, Refusal):
            unservable[agent] = outcome.reason
        else:
            assignments[agent] = outcome
    grouped: dict[tuple[keys.BuildKey, BuildLocation], list[str]] = {}
    for agent, decision in assignments.items():
        grouped.setdefault((decision.key, decision.location), []).append(agent)
    builds = tuple(
        sorted(
            (
                PlannedBuild(key=key, location=location, agents=tuple(agents))
                for (key, location), agents in grouped.items()
            ),
            key=lambda build: (build.location.value, build.digest),
        )
    )
    return BuildPlan(assignments=assignments, builds=builds, unservable=unservable)


def plan_rollout(
    spec: modelrollout.ModelRolloutSpec,
    *,
    statuses: Mapping[str, edgeagent.EdgeAgentStatus | None],
    builders: Sequence[CentralBuilder],
    options: PlanOptions = PlanOptions(),
) -> BuildPlan:
    """The builds a ModelRollout needs for agents reporting `statuses` (name -> status).

    The one derivation of platforms and build request from API objects, used by the
    operator (`edgewave_operator.compiling.engines`) and by `edgewave plan`.
    """
    return plan_builds(
        targets={name: platform_from_agent(status) for name, status in statuses.items()},
        request=request_from_rollout(spec),
        builders=builders,
        options=options,
    )
