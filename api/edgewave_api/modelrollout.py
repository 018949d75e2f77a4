"""ModelRollout: one model version, compiled per GPU class, rolled out to edge agents in waves.

Pure. The spec is what a platform team writes (model, targets, build, strategy, residency);
the status is what the operator reports (phase, conditions, engines, per-wave and per-region
counts). Per-agent detail lives on EdgeAgent status, so a rollout to thousands of agents
stays a small object. Cross-field rules are CEL on the models (enforced by the API server)
mirrored by validators here (enforced wherever a manifest is parsed).
"""

from __future__ import annotations

import enum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from edgewave_api import markers, names
from edgewave_api.conditions import Conditions
from edgewave_api.meta import ApiModel, CrdInfo, CustomResource, PrinterColumn, Timestamp
from edgewave_api.names import (
    ComputeCapability,
    Digest,
    DnsLabel,
    DnsSubdomain,
    JurisdictionName,
    ModelName,
    ModelVersion,
    Reason,
    RegionName,
    Sha256Hex,
)
from edgewave_api.quantities import IntOrPercent
from edgewave_api.selectors import LabelSelector

MAX_RANK = 8
"""Most dimensions an input profile may have (TensorRT's limit)."""

Regions = Annotated[list[RegionName], markers.ListSet(), Field(min_length=1, max_length=64)]
Jurisdictions = Annotated[
    list[JurisdictionName], markers.ListSet(), Field(min_length=1, max_length=32)
]
Count = Annotated[int, Field(ge=0)]


class ModelFormat(enum.StrEnum):
    """The format of the source model file."""

    ONNX = "ONNX"


class Precision(enum.StrEnum):
    """Numeric precision engines are built for."""

    FP32 = "FP32"
    FP16 = "FP16"
    BF16 = "BF16"
    INT8 = "INT8"


class Backend(enum.StrEnum):
    """An inference runtime an engine is built for and served by."""

    TENSORRT = "TensorRT"
    TENSORRT_RTX = "TensorRTRTX"
    ONNX_RUNTIME = "ONNXRuntime"


class ModelSource(ApiModel):
    """Which model to roll out and where to fetch it."""

    name: ModelName
    """The model's name; agents serve it under this name."""
    version: ModelVersion
    """The version label; changing it starts a new rollout that supersedes a running one."""
    uri: Annotated[str, Field(max_length=2048, pattern=names.MODEL_URI)]
    """Where the operator fetches the model: `file://`, `http://` or `https://`."""
    sha256: Sha256Hex
    """SHA-256 of the model file (64 lower-case hex digits); a mismatch fails the rollout."""
    format: ModelFormat = ModelFormat.ONNX
    """The model file's format."""


class Targets(ApiModel):
    """Which EdgeAgents receive the model: those in `regions` and matching `selector`."""

    model_config = ConfigDict(
        json_schema_extra=markers.on_model(
            markers.Rule(
                rule="has(self.regions) || has(self.selector)",
                message="targets must set regions, selector, or both",
                reason="FieldValueRequired",
            )
        )
    )

    regions: Regions | None = None
    """Regions (EdgeAgent `spec.region`) to roll out to; all regions when unset."""
    selector: LabelSelector | None = None
    """Label selector over EdgeAgents; `{}` selects every agent (in `regions`, when set)."""

    @model_validator(mode="after")
    def _regions_or_selector(self) -> Self:
        if self.regions is None and self.selector is None:
            raise ValueError("targets must set regions, selector, or both")
        return self


def _elementwise_rule() -> str:
    checks = [
        f"(size(self.min) <= {i} || size(self.opt) <= {i} || size(self.max) <= {i}"
        f" || (self.min[{i}] <= self.opt[{i}] && self.opt[{i}] <= self.max[{i}]))"
        for i in range(MAX_RANK)
    ]
    return " && ".join(checks)


Dims = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1, max_length=MAX_RANK)]


class InputProfile(ApiModel):
    """The shape range one dynamic input accepts: every dimension min <= opt <= max."""

    model_config = ConfigDict(
        json_schema_extra=markers.on_model(
            markers.Rule(
                rule="size(self.min) == size(self.opt) && size(self.opt) == size(self.max)",
                message="min, opt and max must have the same rank (number of dimensions)",
            ),
            markers.Rule(
                rule=_elementwise_rule(),
                message="min <= opt <= max must hold in every dimension",
            ),
        )
    )

    input: Annotated[str, Field(min_length=1, max_length=256)]
    """The model input's name, as in the ONNX graph."""
    min: Dims
    """Smallest shape, one entry per dimension, such as `[1, 3, 224, 224]`."""
    opt: Dims
    """The shape to optimise for."""
    max: Dims
    """Largest shape."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not len(self.min) == len(self.opt) == len(self.max):
            raise ValueError("min, opt and max must have the same rank (number of dimensions)")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max, strict=True)):
            raise ValueError("min <= opt <= max must hold in every dimension")
        return self


class BuildSpec(ApiModel):
    """How engines are built from the model."""

    precision: Precision = Precision.FP16
    """Numeric precision: FP32, FP16, BF16 or INT8 (INT8 needs a quantized model)."""
    backends: Annotated[list[Backend], markers.ListSet(), Field(min_length=1, max_length=3)] = [
        Backend.TENSORRT,
        Backend.TENSORRT_RTX,
        Backend.ONNX_RUNTIME,
    ]
    """Allowed backends in order of preference; each agent gets the first one it supports."""
    profiles: (
        Annotated[list[InputProfile], markers.ListMap("input"), Field(max_length=16)] | None
    ) = None
    """Shape ranges for dynamic inputs, one per input; static inputs need none."""
    max_workspace_mib: Annotated[int, Field(ge=1, le=1048576)] | None = Field(
        default=None, alias="maxWorkspaceMiB"
    )
    """Most scratch memory (MiB) the engine builder may use; the backend's default when unset."""


class HealthGate(ApiModel):
    """What a wave's agents must show during the gate window before the next wave starts."""

    max_p95_latency_ms: Annotated[float, Field(gt=0)] | None = None
    """Highest tolerated p95 inference latency in milliseconds; no latency gate when unset."""
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    """Highest tolerated fraction of failed inference requests, from 0 to 1."""
    min_samples: Annotated[int, Field(ge=0)] = 20
    """Fewest requests per wave the gate needs before it can pass."""
    window_seconds: Annotated[int, Field(ge=1, le=86400)] = 60
    """How long health is watched after a wave is activated."""


class Wave(ApiModel):
    """One step of the rollout: the targets in `regions` and matching `selector`.

    A wave that sets neither takes every target not taken by an earlier wave; only the last
    wave may do so.
    """

    name: DnsLabel
    """The wave's name, unique within the rollout."""
    regions: Regions | None = None
    """Regions this wave covers (a subset of `targets.regions` when that is set)."""
    selector: LabelSelector | None = None
    """Label selector over EdgeAgents further narrowing this wave."""
    max_unavailable: IntOrPercent = "25%"
    """Most agents of the wave updating at once: a count or a percentage (rounded down, at
    least 1)."""
    max_failed: IntOrPercent = 0
    """Failed activations, and agents offline past `unreachableTimeoutSeconds`, tolerated
    before the wave fails: a count or a percentage (rounded down: 10% of 5 agents is 0)."""


_UNIQUE_WAVES = markers.Rule(
    rule="self.all(w, self.exists_one(x, x.name == w.name))",
    message="wave names must be unique",
    reason="FieldValueInvalid",
)


class Strategy(ApiModel):
    """How the rollout proceeds: waves in order, each gated on the health of the last."""

    model_config = ConfigDict(
        json_schema_extra=markers.on_model(
            markers.Rule(
                rule="self.waves.filter(w, !has(w.regions) && !has(w.selector))"
                ".all(w, w.name == self.waves[size(self.waves) - 1].name)",
                message="only the last wave may omit both regions and selector"
                " (it takes every remaining target)",
                field_path=".waves",
            )
        )
    )

    waves: Annotated[
        list[Wave], markers.ListMap("name"), _UNIQUE_WAVES, Field(min_length=1, max_length=32)
    ]
    """Waves in rollout order; at least one."""
    pause_between_waves_seconds: Annotated[int, Field(ge=0, le=604800)] = 0
    """Wait after a wave passes its gate before the next wave starts."""
    health_gate: Annotated[HealthGate, markers.Default({})] = Field(default_factory=HealthGate)
    """The health every wave must show before the next one starts."""
    auto_rollback: bool = True
    """Re-activate the previous version on every updated agent when a wave fails."""
    paused: bool = False
    """Stop before the next batch; set back to false to resume."""
    progress_deadline_seconds: Annotated[int, Field(ge=1, le=604800)] = 600
    """Most time a wave may take to activate on its agents before the rollout fails."""
    unreachable_timeout_seconds: Annotated[int, Field(ge=1, le=604800)] = 600
    """How long a wave waits for an agent that is not connected (from when the wave reached
    it, or from when the agent went offline if later) before counting it against
    `maxFailed` as offline. It still receives the version when it reconnects."""

    @model_validator(mode="after")
    def _catch_all_last(self) -> Self:
        catch_all = [w.name for w in self.waves if w.regions is None and w.selector is None]
        if any(name != self.waves[-1].name for name in catch_all):
            raise ValueError(
                "only the last wave may omit both regions and selector"
                " (it takes every remaining target)"
            )
        return self


class ResidencyPolicyReference(ApiModel):
    """A reference to a (cluster-scoped) ResidencyPolicy by name."""

    name: DnsSubdomain
    """The ResidencyPolicy's name."""


class Residency(ApiModel):
    """Where this model may be: agents elsewhere are never targets (counted as excluded)."""

    allowed_regions: Regions | None = None
    """The only regions the model may reach; unrestricted when unset."""
    allowed_jurisdictions: Jurisdictions | None = None
    """The only jurisdictions (EdgeAgent `spec.jurisdiction`) the model may reach."""
    policy_ref: ResidencyPolicyReference | None = None
    """A ResidencyPolicy this rollout must also satisfy (policies selecting it by label apply
    too)."""


def _within(field: str, allowed: str, *, when: str) -> markers.Rule:
    """Rule: every region of the list `field` is in the list `allowed` (when both are set)."""
    first_outside = f"self.{field}.filter(r, !(r in self.{allowed}))[0]"
    return markers.Rule(
        rule=f"{when} || !has(self.{field}) || self.{field}.all(r, r in self.{allowed})",
        message=f"{field} must be within {allowed}",
        message_expression=f"'{field} names ' + {first_outside} + ', which is not in {allowed}'",
        field_path=f".{field}",
    )


def _waves_within(allowed: str, *, when: str) -> markers.Rule:
    """Rule: every wave's regions are in the list `allowed` (when set).

    No message expression: naming the wave would need a filter over wave objects, which the
    API server's cost estimator prices far above its budget.
    """
    return markers.Rule(
        rule=f"{when} || self.strategy.waves.all(w, !has(w.regions)"
        f" || w.regions.all(r, r in self.{allowed}))",
        message=f"strategy.waves[].regions must be within {allowed}",
        field_path=".strategy.waves",
    )


_NO_ALLOWED_REGIONS = "!has(self.residency) || !has(self.residency.allowedRegions)"


class ModelRolloutSpec(ApiModel):
    """The desired rollout: which model, to which agents, built how, in which waves."""

    model_config = ConfigDict(
        json_schema_extra=markers.on_model(
            _within("targets.regions", "residency.allowedRegions", when=_NO_ALLOWED_REGIONS),
            _waves_within("residency.allowedRegions", when=_NO_ALLOWED_REGIONS),
            _waves_within("targets.regions", when="!has(self.targets.regions)"),
        )
    )

    model: ModelSource
    """The model file and its identity."""
    targets: Targets
    """Which EdgeAgents may receive the model."""
    build: Annotated[BuildSpec, markers.Default({})] = Field(default_factory=BuildSpec)
    """How engines are built."""
    strategy: Strategy
    """Waves, health gates and rollback."""
    residency: Residency | None = None
    """Data-residency limits of this model, on top of any ResidencyPolicy."""

    @model_validator(mode="after")
    def _regions_consistent(self) -> Self:
        allowed = self.residency.allowed_regions if self.residency else None
        targeted = self.targets.regions
        if allowed is not None:
            outside = [r for r in targeted or [] if r not in allowed]
            if outside:
                raise ValueError(
                    f"targets.regions names {outside[0]}, which is not in residency.allowedRegions"
                )
        for bound, what in ((allowed, "residency.allowedRegions"), (targeted, "targets.regions")):
            for wave in self.strategy.waves if bound is not None else []:
                outside = [r for r in wave.regions or [] if r not in (bound or [])]
                if outside:
                    raise ValueError(
                        f"strategy.waves[].regions must be within {what}:"
                        f" wave {wave.name} names {outside[0]}"
                    )
        return self


class RolloutPhase(enum.StrEnum):
    """Where the rollout as a whole stands."""

    PENDING = "Pending"
    COMPILING = "Compiling"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


TERMINAL_PHASES = frozenset({RolloutPhase.SUCCEEDED, RolloutPhase.ROLLED_BACK, RolloutPhase.FAILED})
"""Phases in which nothing more happens until the spec changes."""


class WavePhase(enum.StrEnum):
    """Where one wave stands."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    VERIFYING = "Verifying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ROLLED_BACK = "RolledBack"


class RolloutConditionType(enum.StrEnum):
    """Condition types a ModelRollout reports.

    Reconciling and Stalled are kstatus' "abnormal-true" pair (sigs.k8s.io/cli-utils): while
    Reconciling is True kstatus reads InProgress, while Stalled is True it reads Failed.
    """

    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    COMPILED = "Compiled"
    RESIDENCY_COMPLIANT = "ResidencyCompliant"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class BuildLocation(enum.StrEnum):
    """Where an engine was built."""

    CENTRAL = "Central"
    AGENT = "Agent"


class ExclusionReason(enum.StrEnum):
    """Usual reasons an agent selected by `targets` is not updated (others may appear)."""

    CORDONED = "Cordoned"
    REGION_NOT_ALLOWED = "RegionNotAllowed"
    JURISDICTION_NOT_ALLOWED = "JurisdictionNotAllowed"
    REGION_DENIED = "RegionDenied"
    REPORTED_REGION_MISMATCH = "ReportedRegionMismatch"
    NO_COMPATIBLE_BACKEND = "NoCompatibleBackend"
    NOT_IN_ANY_WAVE = "NotInAnyWave"


class EngineStatus(ApiModel):
    """One built engine: the artifact agents of one target key receive."""

    key: Annotated[str, Field(min_length=1, max_length=253)]
    """The build target key (backend, compute capability, precision, runtime version)."""
    backend: Backend
    """The runtime the engine is for."""
    compute_capability: ComputeCapability | None = None
    """The GPU compute capability it was built for; unset for portable engines."""
    digest: Digest
    """Content digest of the engine file."""
    size_bytes: Count
    """Engine file size in bytes."""
    build_seconds: Annotated[float, Field(ge=0)] | None = None
    """How long the build took; unset when it came from the cache."""
    built_on: BuildLocation = BuildLocation.CENTRAL
    """Central (built by the operator's compiler) or Agent (built on an edge agent)."""
    agent: DnsSubdomain | None = None
    """The EdgeAgent that built it, when `builtOn` is Agent."""


class GateMeasurement(ApiModel):
    """The health a wave's agents showed during its gate window."""

    p95_latency_ms: Annotated[float, Field(ge=0)] | None = None
    """Observed p95 inference latency in milliseconds."""
    error_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    """Observed fraction of failed inference requests."""
    samples: Count = 0
    """Requests observed."""
    passed: bool | None = None
    """Whether the gate passed; unset while it is still being evaluated."""


class AgentCounts(ApiModel):
    """Agent counts of one slice of the rollout."""

    targets: Count = 0
    """Agents this slice covers."""
    updated: Count = 0
    """Agents that have activated the new version."""
    healthy: Count = 0
    """Updated agents that are healthy."""
    failed: Count = 0
    """Agents whose push or activation failed, or that stayed offline past
    `unreachableTimeoutSeconds`."""
    offline: Count = 0
    """Agents not connected that do not serve the version yet: it is delivered when they
    reconnect."""


class WaveStatus(AgentCounts):
    """Progress of one wave."""

    name: DnsLabel
    """The wave's name, as in `spec.strategy.waves`."""
    phase: WavePhase = WavePhase.PENDING
    """Pending, Progressing, Verifying, Succeeded, Failed or RolledBack."""
    started_at: Timestamp | None = None
    """When the wave's first push started."""
    finished_at: Timestamp | None = None
    """When the wave passed or failed its gate."""
    gate: GateMeasurement | None = None
    """Health measured against the gate."""


class RegionStatus(AgentCounts):
    """Progress in one region."""

    region: RegionName
    """The region."""
    excluded: Count = 0
    """Agents in the region selected by `targets` but not updated (residency, cordon...)."""


class RolloutTotals(AgentCounts):
    """Progress over all targets."""

    excluded: Count = 0
    """Agents selected by `targets` but not updated (see `exclusions` for why)."""
    converging: Count = 0
    """Agents being brought to the version after their wave passed (they reconnected or
    joined a targeted region later); no wave runs again for them."""


class ExclusionSummary(ApiModel):
    """How many agents were excluded for one reason, with a few of their names."""

    reason: Reason
    """Why, such as RegionNotAllowed, JurisdictionNotAllowed, Cordoned or NoCompatibleBackend."""
    count: Count
    """How many agents."""
    examples: Annotated[list[DnsSubdomain], Field(max_length=5)] | None = None
    """Up to five of the excluded agents' names."""


class ModelRolloutStatus(ApiModel):
    """What the operator observed and did, as of `observedGeneration`."""

    observed_generation: Annotated[int, Field(ge=0), markers.Default(0)] | None = None
    """The `.metadata.generation` this status describes; 0 until the operator has observed one.

    The API server serves 0 before the operator's first status write (this default and the one
    on `status`), so kstatus and Flux read a rollout nobody has reconciled yet as InProgress
    rather than Current (see docs/gitops/README.md).
    """
    phase: RolloutPhase | None = None
    """Pending, Compiling, Progressing, Paused, Succeeded, RollingBack, RolledBack or Failed."""
    message: Annotated[str, Field(max_length=4096)] | None = None
    """A one-line human summary of the current state."""
    ready: Annotated[str, Field(max_length=32)] | None = None
    """Healthy updated agents out of targets, such as `4/6` (shown by `kubectl get`)."""
    current_version: ModelVersion | None = None
    """The model version this rollout is moving agents to (or last moved them to)."""
    previous_version: ModelVersion | None = None
    """The version agents served before; a rollback re-activates it."""
    current_wave: DnsLabel | None = None
    """The wave in progress."""
    conditions: Conditions = Field(default_factory=list)
    """Ready, Progressing, Degraded, Compiled, ResidencyCompliant, and kstatus' Reconciling
    (mirrors Progressing) and Stalled (True once the rollout failed or rolled back)."""
    engines: Annotated[list[EngineStatus], markers.ListMap("key")] = Field(default_factory=list)
    """Engines built for this version, one per build target key."""
    waves: Annotated[list[WaveStatus], markers.ListMap("name")] = Field(default_factory=list)
    """Per-wave progress, in wave order."""
    regions: Annotated[list[RegionStatus], markers.ListMap("region")] = Field(default_factory=list)
    """Per-region progress."""
    totals: RolloutTotals | None = None
    """Progress over all targets."""
    exclusions: Annotated[list[ExclusionSummary], markers.ListMap("reason")] = Field(
        default_factory=list
    )
    """Why selected agents were not updated, counted per reason."""
    started_at: Timestamp | None = None
    """When the operator began rolling out `currentVersion`."""
    finished_at: Timestamp | None = None
    """When the rollout of `currentVersion` reached a terminal phase."""


class ModelRollout(CustomResource):
    """Rolls one ONNX model version out to edge agents, compiled per GPU class, in waves."""

    crd: ClassVar[CrdInfo] = CrdInfo(
        kind="ModelRollout",
        plural="modelrollouts",
        singular="modelrollout",
        scope="Namespaced",
        short_names=("mro",),
        printer_columns=(
            PrinterColumn("Model", "string", ".spec.model.name", "The model's name."),
            PrinterColumn("Version", "string", ".spec.model.version", "The desired version."),
            PrinterColumn("Phase", "string", ".status.phase", "Where the rollout stands."),
            PrinterColumn("Ready", "string", ".status.ready", "Healthy updated / targets."),
            PrinterColumn("Wave", "string", ".status.currentWave", "Wave in progress.", 1),
            PrinterColumn("Message", "string", ".status.message", "Summary.", 1),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since creation."),
        ),
        selectable_fields=(".spec.model.name",),
    )

    kind: Literal["ModelRollout"] = "ModelRollout"
    """The object's kind."""
    spec: ModelRolloutSpec
    """The desired rollout."""
    status: Annotated[ModelRolloutStatus, markers.Default({})] | None = None
    """The observed state, written by the operator (served as `{observedGeneration: 0}` before)."""
