"""EdgeAgent: one edge inference node, where it is and what it holds.

Pure. The spec is what a person (or the agent chart) declares: how to reach the agent, its
region, zone and jurisdiction, whether it is cordoned. The status is what the operator last
learned from the agent over gRPC: hardware, runtimes, the models it holds with their health,
and what the agent itself claims about its location (compared with the spec to catch
residency drift). Per-agent rollout detail lives here, not on ModelRollout.
"""

from __future__ import annotations

import enum
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from edgewave_api import markers
from edgewave_api.conditions import Conditions
from edgewave_api.meta import ApiModel, CrdInfo, CustomResource, PrinterColumn, Timestamp
from edgewave_api.modelrollout import Backend
from edgewave_api.names import (
    ENDPOINT,
    ComputeCapability,
    Digest,
    DnsLabel,
    DnsSubdomain,
    JurisdictionName,
    ModelName,
    ModelVersion,
    RegionName,
)

_PORT_RULE = markers.Rule(
    rule="!self.matches(':[0-9]{1,5}$') || (int(self.substring(self.lastIndexOf(':') + 1)) >= 1"
    " && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535)",
    message="endpoint port must be from 1 to 65535",
)


def _port_in_range(endpoint: str) -> str:
    # Runs after the pattern, so a port of 1 to 5 digits is there.
    if not 1 <= int(endpoint.rsplit(":", 1)[1]) <= 65535:
        raise ValueError(_PORT_RULE.message)
    return endpoint


class SecretReference(ApiModel):
    """A Secret by namespace and name."""

    name: DnsSubdomain
    """The Secret's name."""
    namespace: DnsLabel
    """The Secret's namespace."""


class EdgeAgentSpec(ApiModel):
    """How to reach an edge agent and where it stands (its labels serve target selectors)."""

    endpoint: (
        Annotated[
            str,
            Field(max_length=261, pattern=ENDPOINT),
            AfterValidator(_port_in_range),
            _PORT_RULE,
        ]
        | None
    ) = None
    """The agent's gRPC address, `host:port` (IPv6 as `[addr]:port`), for agents on a flat
    network the operator dials directly. Unset: the agent dials a gateway (`--gateway`) and
    is reached only through its session there."""
    region: RegionName
    """The region the agent is in, such as `eu-west`; rollouts and residency select on it."""
    zone: DnsLabel | None = None
    """The zone or site within the region."""
    jurisdiction: JurisdictionName | None = None
    """The legal jurisdiction the agent is in, such as `EU`; residency rules select on it."""
    tls_secret_ref: SecretReference | None = None
    """A `kubernetes.io/tls` Secret (with `ca.crt`) for mTLS to this agent; the operator's own
    CA when unset."""
    cordoned: bool = False
    """Receive no new models (models already active keep serving)."""


class GpuInfo(ApiModel):
    """The agent's GPU as it reports it."""

    name: Annotated[str, Field(max_length=256)]
    """Product name, such as `NVIDIA RTX 4000 Ada Generation`."""
    compute_capability: ComputeCapability
    """CUDA compute capability, `major.minor`, such as `8.9`."""
    memory_mib: Annotated[int, Field(ge=0)] = Field(alias="memoryMiB")
    """Total GPU memory in MiB."""
    driver_version: Annotated[str, Field(max_length=64)] | None = None
    """NVIDIA driver version."""


class RuntimeInfo(ApiModel):
    """An inference runtime available on the agent."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    """The runtime, such as TensorRT, TensorRTRTX, ONNXRuntime or CUDA."""
    version: Annotated[str, Field(max_length=64)]
    """Its version."""


class HeldModelState(enum.StrEnum):
    """What the agent does with a model version it holds."""

    STAGED = "Staged"
    LOADING = "Loading"
    ACTIVE = "Active"
    STANDBY = "Standby"
    FAILED = "Failed"


class HeldModel(ApiModel):
    """One model version stored on the agent, with its serving health."""

    name: ModelName
    """The model's name."""
    version: ModelVersion
    """The version."""
    digest: Digest
    """Digest of the engine the agent holds."""
    backend: Backend
    """The runtime serving it."""
    state: HeldModelState
    """Staged (stored), Loading, Active (serving), Standby (kept for rollback) or Failed."""
    rollout: Annotated[str, Field(max_length=317)] | None = None
    """The ModelRollout (`namespace/name`) that placed it."""
    p95_latency_ms: Annotated[float, Field(ge=0)] | None = None
    """Recent p95 inference latency in milliseconds."""
    error_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    """Recent fraction of failed inference requests."""
    activated_at: Timestamp | None = None
    """When this version last became Active."""


class AgentConditionType(enum.StrEnum):
    """Condition types an EdgeAgent reports."""

    READY = "Ready"
    REACHABLE = "Reachable"


class AgentConnection(ApiModel):
    """How the operator reaches the agent now: through a gateway session, or directly."""

    connected: bool
    """The agent has a live session on a gateway (or, direct, answered its last Describe)."""
    gateway: Annotated[str, Field(max_length=253)] | None = None
    """The gateway holding the agent's session; unset for an agent dialled directly."""
    since: Timestamp | None = None
    """When `connected` last became what it is: connected since, or disconnected since."""


class EdgeAgentStatus(ApiModel):
    """What the operator last learned from the agent."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The `.metadata.generation` this status describes."""
    gpu: GpuInfo | None = None
    """The agent's GPU; unset on agents without one (they serve with ONNX Runtime on CPU)."""
    runtimes: Annotated[list[RuntimeInfo], markers.ListMap("name")] = Field(default_factory=list)
    """Inference runtimes available and their versions."""
    models: Annotated[list[HeldModel], markers.ListMap("name", "version")] = Field(
        default_factory=list
    )
    """Model versions the agent holds."""
    free_disk_bytes: Annotated[int, Field(ge=0)] | None = None
    """Free space in the agent's engine store, in bytes."""
    last_seen: Timestamp | None = None
    """When the agent last answered (refreshed on a coarse period, not every probe)."""
    connection: AgentConnection | None = None
    """The gateway, session state and since when (written when it changes)."""
    reported_region: RegionName | None = None
    """The region the agent itself claims; differing from `spec.region` is residency drift."""
    reported_jurisdiction: JurisdictionName | None = None
    """The jurisdiction the agent itself claims."""
    agent_version: Annotated[str, Field(max_length=64)] | None = None
    """The edgewave-agent version."""
    certificate_expires: Timestamp | None = None
    """When the certificate the agent serves and dials with expires (renewed over its
    connection when a third of its life is left; a Warning Event says when that fails)."""
    platform: Annotated[str, Field(max_length=64)] | None = None
    """Operating system and architecture, such as `linux/x86_64`."""
    conditions: Conditions = Field(default_factory=list)
    """Ready and Reachable."""


class EdgeAgent(CustomResource):
    """An edge inference node that Edgewave rolls models out to."""

    crd: ClassVar[CrdInfo] = CrdInfo(
        kind="EdgeAgent",
        plural="edgeagents",
        singular="edgeagent",
        scope="Cluster",
        short_names=("eag",),
        printer_columns=(
            PrinterColumn("Region", "string", ".spec.region", "Where the agent is."),
            PrinterColumn("Zone", "string", ".spec.zone", "Zone within the region.", 1),
            PrinterColumn("GPU", "string", ".status.gpu.name", "GPU product name."),
            PrinterColumn("CC", "string", ".status.gpu.computeCapability", "Compute capability."),
            PrinterColumn(
                "Ready",
                "string",
                '.status.conditions[?(@.type=="Ready")].status',
                "Whether the agent is ready.",
            ),
            PrinterColumn(
                "Connected", "boolean", ".status.connection.connected", "Has a live session."
            ),
            PrinterColumn(
                "Gateway", "string", ".status.connection.gateway", "Gateway holding its session."
            ),
            PrinterColumn("Cordoned", "boolean", ".spec.cordoned", "Receives nothing new.", 1),
            PrinterColumn("Endpoint", "string", ".spec.endpoint", "gRPC address.", 1),
            PrinterColumn("Last Seen", "date", ".status.lastSeen", "When it last answered."),
        ),
        selectable_fields=(".spec.region", ".spec.jurisdiction"),
    )

    kind: Literal["EdgeAgent"] = "EdgeAgent"
    """The object's kind."""
    spec: EdgeAgentSpec
    """How to reach the agent and where it stands."""
    status: EdgeAgentStatus | None = None
    """What the operator last learned from the agent."""
