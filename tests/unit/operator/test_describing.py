"""An agent's Describe answer becomes an EdgeAgent status the API server accepts."""

from __future__ import annotations

import datetime

from edgewave_api import conditions as api_conditions
from edgewave_api import edgeagent
from edgewave_operator.agents import describing
from edgewave_proto.agent.v1 import agent_pb2 as pb

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
LATER = T0 + datetime.timedelta(minutes=1)
HEX = "c" * 64


def answer(**overrides: object) -> pb.DescribeResponse:
    fields: dict[str, object] = {
        "agent_id": "edge-7",
        "region": "eu-west",
        "jurisdiction": "EU",
        "gpus": [
            pb.Gpu(
                name="NVIDIA RTX 4000 Ada", compute_capability_major=8,
                compute_capability_minor=9, memory_bytes=20 << 30, driver_version="560.1",
            )
        ],
        "runtimes": [
            pb.Runtime(name="tensorrt-rtx", version="1.7"),
            pb.Runtime(name="onnxruntime", version="1.32"),
        ],
        "disk_free_bytes": 10_000,
        "store_quota_bytes": 5_000,
        "store_used_bytes": 1_000,
        "models": [
            pb.ModelStatus(
                model="resnet",
                versions=[
                    pb.VersionStatus(
                        version="2", digest=HEX, backend="onnxruntime",
                        state=pb.VERSION_STATE_ACTIVE,
                        health=pb.HealthMetrics(requests=200, errors=10, latency_p95_seconds=0.012),
                    ),
                    pb.VersionStatus(
                        version="1", digest="d" * 64, backend="onnxruntime",
                        state=pb.VERSION_STATE_PREVIOUS,
                    ),
                    pb.VersionStatus(
                        version="3", digest="e" * 64, backend="onnxruntime",
                        state=pb.VERSION_STATE_FAILED,
                    ),
                ],
            )
        ],
        "agent_version": "0.1.0",
    }  # fmt: skip
    fields.update(overrides)
    return pb.DescribeResponse(**fields)  # type: ignore[arg-type]


def test_describe_maps_hardware_models_and_location() -> None:
    status = describing.from_describe(answer(), previous=None, generation=3, now=T0)
    assert status.gpu is not None
    assert (status.gpu.compute_capability, status.gpu.memory_mib) == ("8.9", 20 << 10)
    assert [(r.name, r.version) for r in status.runtimes] == [
        ("ONNXRuntime", "1.32"), ("TensorRTRTX", "1.7"),
    ]  # fmt: skip
    assert status.free_disk_bytes == 4_000  # the store quota binds before the disk
    held = {m.version: m for m in status.models}
    assert held["2"].state is edgeagent.HeldModelState.ACTIVE
    assert held["2"].digest == "sha256:" + HEX
    assert held["2"].p95_latency_ms == 12.0 and held["2"].error_rate == 0.05
    assert held["1"].state is edgeagent.HeldModelState.STANDBY
    assert held["3"].state is edgeagent.HeldModelState.FAILED
    assert (status.reported_region, status.reported_jurisdiction) == ("eu-west", "EU")
    assert status.last_seen == T0 and status.observed_generation == 3
    assert api_conditions.is_true(status.conditions, "Reachable")
    assert api_conditions.is_true(status.conditions, "Ready")
    # What the operator writes must validate against the API's own model.
    edgeagent.EdgeAgentStatus.model_validate(status.model_dump(by_alias=True, mode="json"))


def test_claims_that_are_not_valid_names_never_match_a_spec() -> None:
    status = describing.from_describe(
        answer(region="EU West!", jurisdiction="eu"), previous=None, generation=1, now=T0
    )
    assert status.reported_region == describing.UNKNOWN_REGION
    assert status.reported_jurisdiction == describing.UNKNOWN_JURISDICTION
    silent = describing.from_describe(answer(region="", jurisdiction=""), previous=None,
                                      generation=1, now=T0)  # fmt: skip
    assert silent.reported_region is None and silent.reported_jurisdiction is None


def test_unreachable_keeps_what_was_known_and_flips_conditions_once() -> None:
    known = describing.from_describe(answer(), previous=None, generation=1, now=T0)
    down = describing.unreachable(
        previous=known, error="connection refused", generation=1, now=LATER
    )
    assert down.models == known.models and down.gpu == known.gpu
    assert down.last_seen == T0
    reachable = api_conditions.find_condition(down.conditions, "Reachable")
    assert reachable is not None and reachable.status is api_conditions.ConditionStatus.FALSE
    assert reachable.last_transition_time == LATER and "refused" in reachable.message
    again = describing.unreachable(
        previous=down,
        error="deadline exceeded",
        generation=1,
        now=LATER + datetime.timedelta(hours=1),
    )
    still = api_conditions.find_condition(again.conditions, "Reachable")
    assert still is not None and still.last_transition_time == LATER


def test_backend_names() -> None:
    assert describing.runtime_of("TensorRTRTX") == "tensorrt-rtx"
    assert describing.runtime_of("ONNXRuntime") == "onnxruntime"
    assert describing.backend_of("tensorrt_rtx") is not None
    assert describing.backend_of("cuda") is None


def test_connection_since_is_the_session_start_and_moves_only_on_a_change() -> None:
    session = T0 - datetime.timedelta(seconds=30)
    first = describing.connection(
        None, connected=True, gateway="gw-eu", session_since=session, now=T0
    )
    assert (first.connected, first.gateway, first.since) == (True, "gw-eu", session)
    status = edgeagent.EdgeAgentStatus(connection=first)
    lost = describing.connection(
        status, connected=False, gateway="gw-eu", session_since=None, now=LATER
    )
    assert (lost.connected, lost.since) == (False, LATER)
    still = describing.connection(
        edgeagent.EdgeAgentStatus(connection=lost),
        connected=False, gateway="gw-eu", session_since=None, now=LATER + LATER.resolution * 10**7,
    )  # fmt: skip
    assert still.since == LATER
    moved = describing.connection(
        edgeagent.EdgeAgentStatus(connection=lost),
        connected=False, gateway="gw-us", session_since=None, now=LATER + datetime.timedelta(1),
    )  # fmt: skip
    assert moved.since == LATER + datetime.timedelta(1)


def test_a_direct_agent_keeps_its_since_while_it_keeps_answering() -> None:
    up = describing.connection(None, connected=True, gateway=None, session_since=None, now=T0)
    again = describing.connection(
        edgeagent.EdgeAgentStatus(connection=up),
        connected=True, gateway=None, session_since=None, now=LATER,
    )  # fmt: skip
    assert (again.gateway, again.since) == (None, T0)


def test_the_certificate_expiry_an_agent_reports_is_in_its_status() -> None:
    expires = datetime.datetime(2027, 3, 1, tzinfo=datetime.UTC)
    reported = answer(certificate_not_after_unix_seconds=int(expires.timestamp()))
    status = describing.from_describe(reported, previous=None, generation=1, now=T0)
    assert status.certificate_expires == expires
    # Unset, or a number no date can hold (a broken or hostile agent): left unset.
    for seconds in (0, -5, 2**62):
        odd = answer(certificate_not_after_unix_seconds=seconds)
        assert (
            describing.from_describe(odd, previous=None, generation=1, now=T0).certificate_expires
            is None
        )
