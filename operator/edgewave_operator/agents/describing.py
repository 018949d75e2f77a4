"""An agent's `Describe` answer (or its silence) as an EdgeAgent status (the API model).

Digests become `sha256:<hex>`, runtime names the API's backend spelling, health numbers
milliseconds and ratios. Conditions keep their transition times unless they flip. When
the agent does not answer, what was known stays and only the conditions change.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable

from edgewave_api import conditions as api_conditions
from edgewave_api import edgeagent, modelrollout
from edgewave_operator.planning import parsing
from edgewave_proto.agent.v1 import agent_pb2 as pb
from edgewave_proto.agent.v1 import wire

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_JURISDICTION = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$")
UNKNOWN_REGION = "invalid-region"
UNKNOWN_JURISDICTION = "INVALID"

RUNTIME_TO_BACKEND = {
    "onnxruntime": modelrollout.Backend.ONNX_RUNTIME,
    "tensorrt": modelrollout.Backend.TENSORRT,
    "tensorrt-rtx": modelrollout.Backend.TENSORRT_RTX,
}
BACKEND_TO_RUNTIME = {backend: name for name, backend in RUNTIME_TO_BACKEND.items()}

_STATES = {
    wire.VersionState.STORED: edgeagent.HeldModelState.STAGED,
    wire.VersionState.ACTIVE: edgeagent.HeldModelState.ACTIVE,
    wire.VersionState.PREVIOUS: edgeagent.HeldModelState.STANDBY,
    wire.VersionState.FAILED: edgeagent.HeldModelState.FAILED,
}
"""The agent's states as the EdgeAgent API (and the planner) name them."""


def backend_of(runtime: str) -> modelrollout.Backend | None:
    """The API backend for a runtime name the agent uses (`tensorrt-rtx`, ...)."""
    squashed = runtime.lower().replace("_", "-")
    return RUNTIME_TO_BACKEND.get(squashed) or next(
        (b for b in modelrollout.Backend if b.value.lower() == runtime.lower()), None
    )


def runtime_of(backend: str) -> str:
    """The agent's runtime name for an API backend (`ONNXRuntime` -> `onnxruntime`)."""
    return BACKEND_TO_RUNTIME[modelrollout.Backend(backend)]


prefixed = parsing.prefixed


def _claimed(value: str, *, pattern: re.Pattern[str], invalid: str) -> str | None:
    if not value:
        return None
    return value if pattern.match(value) else invalid


def _conditions(
    previous: edgeagent.EdgeAgentStatus | None,
    *,
    reachable: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime.datetime,
) -> list[api_conditions.Condition]:
    conditions = list(previous.conditions) if previous else []
    conditions = api_conditions.set_condition(
        conditions,
        type=edgeagent.AgentConditionType.REACHABLE,
        status=reachable,
        reason=reason,
        message=message,
        observed_generation=generation,
        now=now,
    )
    return api_conditions.set_condition(
        conditions,
        type=edgeagent.AgentConditionType.READY,
        status=reachable,
        reason="AgentReady" if reachable else "AgentUnreachable",
        message="answering Describe" if reachable else message,
        observed_generation=generation,
        now=now,
    )


def _state(value: int) -> edgeagent.HeldModelState | None:
    """The API state of a wire `VersionState` (None: unspecified or unknown to us)."""
    try:
        name = pb.VersionState.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return None
    wired = wire.VersionState.from_wire_name(name)
    return _STATES[wired] if wired is not None else None


def held_models(models: Iterable[pb.ModelStatus]) -> list[edgeagent.HeldModel]:
    held: list[edgeagent.HeldModel] = []
    for model in models:
        for version in model.versions:
            backend = backend_of(version.backend)
            state = _state(version.state)
            if backend is None or state is None or not version.digest:
                continue
            health = version.health
            error_rate = health.errors / health.requests if health.requests else None
            held.append(
                edgeagent.HeldModel(
                    name=model.model,
                    version=version.version,
                    digest=prefixed(version.digest),
                    backend=backend,
                    state=state,
                    rollout=f"{model.owner.namespace}/{model.owner.name}"[:317]
                    if model.HasField("owner")
                    else None,
                    p95_latency_ms=health.latency_p95_seconds * 1000 if health.requests else None,
                    error_rate=min(1.0, error_rate) if error_rate is not None else None,
                )
            )
    return held


def _expires(unix_seconds: int) -> datetime.datetime | None:
    if unix_seconds <= 0:
        return None
    try:
        return datetime.datetime.fromtimestamp(unix_seconds, datetime.UTC)
    except (OverflowError, ValueError, OSError):  # a hostile or broken agent's number
        return None


def from_describe(
    answer: pb.DescribeResponse,
    *,
    previous: edgeagent.EdgeAgentStatus | None,
    generation: int | None,
    now: datetime.datetime,
) -> edgeagent.EdgeAgentStatus:
    """The status an agent's Describe answer says, at `now`."""
    gpu = None
    if answer.gpus:
        first = answer.gpus[0]
        gpu = edgeagent.GpuInfo(
            name=first.name[:256] or "unknown",
            compute_capability=f"{first.compute_capability_major}.{first.compute_capability_minor}",
            memory_mib=first.memory_bytes // (1 << 20),
            driver_version=first.driver_version[:64] or None,
        )
    runtimes = []
    for runtime in answer.runtimes:
        backend = backend_of(runtime.name)
        runtimes.append(
            edgeagent.RuntimeInfo(
                name=backend.value if backend else runtime.name[:64], version=runtime.version[:64]
            )
        )
    free = answer.disk_free_bytes
    if answer.store_quota_bytes:
        free = min(free, max(0, answer.store_quota_bytes - answer.store_used_bytes))
    return edgeagent.EdgeAgentStatus(
        observed_generation=generation,
        gpu=gpu,
        runtimes=sorted({r.name: r for r in runtimes}.values(), key=lambda r: r.name),
        models=held_models(answer.models),
        free_disk_bytes=free,
        last_seen=now,
        reported_region=_claimed(answer.region, pattern=_DNS_LABEL, invalid=UNKNOWN_REGION),
        reported_jurisdiction=_claimed(
            answer.jurisdiction, pattern=_JURISDICTION, invalid=UNKNOWN_JURISDICTION
        ),
        agent_version=answer.agent_version[:64] or None,
        certificate_expires=_expires(answer.certificate_not_after_unix_seconds),
        conditions=_conditions(
            previous,
            reachable=True,
            reason="DescribeSucceeded",
            message=f"agent {answer.agent_id} answered",
            generation=generation,
            now=now,
        ),
    )


def unreachable(
    *,
    previous: edgeagent.EdgeAgentStatus | None,
    error: str,
    generation: int | None,
    now: datetime.datetime,
) -> edgeagent.EdgeAgentStatus:
    """What is known about an agent that did not answer: the same, but not Reachable."""
    base = previous or edgeagent.EdgeAgentStatus()
    return base.model_copy(
        update={
            "observed_generation": generation,
            "conditions": _conditions(
                previous,
                reachable=False,
                reason="DescribeFailed",
                message=error[:1024],
                generation=generation,
                now=now,
            ),
        }
    )


def connection(
    previous: edgeagent.EdgeAgentStatus | None,
    *,
    connected: bool,
    gateway: str | None,
    session_since: datetime.datetime | None,
    now: datetime.datetime,
) -> edgeagent.AgentConnection:
    """The agent's connection now; `since` moves only when it connects, drops or moves.

    `session_since` is when its live gateway session began (None: direct, or no session).
    """
    before = previous.connection if previous else None
    if connected and session_since is not None:
        since = session_since
    elif before is not None and before.connected == connected and before.gateway == gateway:
        since = before.since or now
    else:
        since = now
    return edgeagent.AgentConnection(
        connected=connected, gateway=gateway, since=since.replace(microsecond=0)
    )
