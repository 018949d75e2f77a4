"""Live objects map onto the planner's inputs, and persisted status back onto progress."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from edgewave_api import conditions as api_conditions
from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_operator.planning import parsing, progress, residency, views

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
SHA = "a" * 64


def rollout(**overrides: Any) -> modelrollout.ModelRollout:
    body: dict[str, Any] = {
        "metadata": {"name": "r", "namespace": "ml", "labels": {"team": "vision"}},
        "spec": {
            "model": {"name": "resnet", "version": "2.0.0", "uri": "file:///m.onnx", "sha256": SHA},
            "targets": {
                "regions": ["eu-west", "eu-central"],
                "selector": {"matchLabels": {"a": "b"}},
            },
            "strategy": {
                "waves": [
                    {"name": "canary", "regions": ["eu-west"], "maxUnavailable": 1},
                    {"name": "rest", "maxUnavailable": "50%", "maxFailed": "10%"},
                ],
                "healthGate": {"windowSeconds": 30, "maxP95LatencyMs": 40, "minSamples": 5},
                "pauseBetweenWavesSeconds": 15,
                "paused": True,
                "progressDeadlineSeconds": 120,
                "unreachableTimeoutSeconds": 300,
            },
            "residency": {"allowedRegions": ["eu-west", "eu-central"]},
        },
    }
    body.update(overrides)
    return modelrollout.ModelRollout.model_validate(body)


def policy(name: str, **spec: Any) -> residencypolicy.ResidencyPolicy:
    return residencypolicy.ResidencyPolicy.model_validate(
        {"metadata": {"name": name}, "spec": spec}
    )


def test_intent_and_waves() -> None:
    parsed = rollout()
    intent = parsing.intent(parsed)
    assert (intent.model, intent.version, intent.revision) == ("resnet", "2.0.0", "2.0.0")
    assert intent.gate.window == datetime.timedelta(seconds=30)
    assert intent.gate.max_p95_latency_ms == 40 and intent.gate.min_samples == 5
    assert intent.pause == datetime.timedelta(seconds=15)
    assert intent.paused and intent.auto_rollback
    assert intent.progress_deadline == datetime.timedelta(seconds=120)
    assert intent.offline.timeout == datetime.timedelta(seconds=300)
    waves = parsing.wave_specs(parsed)
    assert [(w.name, w.regions, w.max_unavailable, w.max_failed) for w in waves] == [
        ("canary", ("eu-west",), 1, 0),
        ("rest", (), "50%", "10%"),
    ]
    targets = parsing.target_spec(parsed)
    assert targets.regions == ("eu-west", "eu-central")
    agent = views.AgentView(name="x", region="eu-west", labels={"a": "b"})
    assert targets.selects(agent)
    assert not targets.selects(views.AgentView(name="y", region="eu-west"))


@pytest.mark.parametrize(
    ("candidate", "applies"),
    [
        (policy("all", allowedRegions=["eu-west"]), True),  # {} selects every rollout
        (policy("vision", selector={"matchLabels": {"team": "vision"}}, deniedRegions=["x"]), True),
        (policy("audio", selector={"matchLabels": {"team": "audio"}}, deniedRegions=["x"]), False),
        (policy("ns", namespaces=["other"], deniedRegions=["x"]), False),
        (policy("ns-ok", namespaces=["ml"], deniedRegions=["x"]), True),
    ],
)
def test_policy_applies(candidate: residencypolicy.ResidencyPolicy, applies: bool) -> None:
    assert parsing.policy_applies(candidate, rollout()) is applies


def test_policy_ref_binds_even_without_selector_match() -> None:
    spec = rollout().spec.model_dump(by_alias=True, exclude_none=True)
    spec["residency"]["policyRef"] = {"name": "audio"}
    parsed = rollout(spec=spec)
    audio = policy("audio", selector={"matchLabels": {"team": "audio"}}, deniedRegions=["eu-west"])
    assert parsing.policy_applies(audio, parsed)
    assert parsing.missing_policy(parsed, [audio]) is None
    assert parsing.missing_policy(parsed, []) == "audio"


def test_residency_rules_name_their_sources() -> None:
    rules = parsing.residency_rules(
        rollout(),
        [
            policy("eu-only", allowedJurisdictions=["EU"]),
            policy("no", selector={"matchLabels": {"z": "z"}}, deniedRegions=["q"]),
        ],
    )
    assert rules.sources == ("spec.residency", "ResidencyPolicy/eu-only")
    agent = views.AgentView(name="a", region="eu-west", jurisdiction="US")
    violation = rules.violation(agent)
    assert violation is not None
    assert violation.reason is residency.Reason.JURISDICTION_NOT_ALLOWED
    assert violation.source == "ResidencyPolicy/eu-only"


def _agent(status: dict[str, Any] | None = None, **spec: Any) -> edgeagent.EdgeAgent:
    return edgeagent.EdgeAgent.model_validate(
        {
            "metadata": {"name": "ew-1", "labels": {parsing.REGION_LABEL: "eu-west", "k": "v"}},
            "spec": {
                "endpoint": "10.0.0.1:7443",
                "region": "eu-west",
                "jurisdiction": "EU",
                **spec,
            },
            "status": status,
        }
    )


def _status(reachable: bool = True) -> edgeagent.EdgeAgentStatus:
    return edgeagent.EdgeAgentStatus(
        reported_region="eu-west",
        models=[
            edgeagent.HeldModel(
                name="m", version="1", digest="sha256:" + SHA, backend="ONNXRuntime", state="Active"
            ),
            edgeagent.HeldModel(
                name="m",
                version="0",
                digest="sha256:" + "b" * 64,
                backend="ONNXRuntime",
                state="Standby",
            ),
        ],
        conditions=api_conditions.set_condition(
            [],
            type="Reachable",
            status=reachable,
            reason="X",
            message="",
            observed_generation=1,
            now=T0,
        ),
    )


def test_agent_view_prefers_the_live_answer() -> None:
    persisted = _agent(status=_status(reachable=False).model_dump(by_alias=True, mode="json"))
    stale = parsing.agent_view(persisted)
    assert not stale.observed and not stale.reachable
    live = parsing.agent_view(persisted, status=_status(), observed=True)
    assert live.observed and live.reachable
    assert live.label_region == "eu-west" and live.labels["k"] == "v"
    assert live.active_version("m") == "1"
    assert live.active("m") is not None and live.active("m").digest == SHA  # type: ignore[union-attr]
    assert [h.state for h in live.versions_of("m")] == [
        views.ModelState.ACTIVE,
        views.ModelState.STANDBY,
    ]


def test_progress_round_trips_through_status() -> None:
    status = modelrollout.ModelRolloutStatus(
        phase="RollingBack",
        current_version="2.0.0",
        previous_version="1.0.0",
        waves=[
            modelrollout.WaveStatus(
                name="canary", phase="Succeeded", started_at=T0, finished_at=T0
            ),
            modelrollout.WaveStatus(name="rest", phase="Verifying", started_at=T0),
        ],
        conditions=api_conditions.set_condition(
            [],
            type="Degraded",
            status=True,
            reason="LatencyTooHigh",
            message="p95 90 ms",
            observed_generation=3,
            now=T0,
        ),
        started_at=T0,
    )
    now = T0 + datetime.timedelta(minutes=5)
    restored = parsing.progress_of(status, now=now)
    assert restored.revision == "2.0.0" and restored.previous_version == "1.0.0"
    assert restored.phase is progress.Phase.ROLLING_BACK
    assert restored.wave("canary").state is progress.WaveState.PASSED
    # The gate watch of a wave that was verifying restarts when the operator does.
    assert restored.wave("rest").verifying_since == now
    assert restored.failure is not None
    assert (restored.failure.reason, restored.failure.at) == ("LatencyTooHigh", T0)
    assert parsing.progress_of(None, now=now) == progress.Progress()


def _bare_agent(status: edgeagent.EdgeAgentStatus | None) -> edgeagent.EdgeAgent:
    return edgeagent.EdgeAgent.model_validate(
        {"metadata": {"name": "a"}, "spec": {"region": "eu-west"}, "status": status}
    )


def test_unreachable_since_is_when_reachable_flipped_false_and_none_while_reachable() -> None:
    def status(reachable: bool, at: datetime.datetime) -> edgeagent.EdgeAgentStatus:
        return edgeagent.EdgeAgentStatus(
            conditions=api_conditions.set_condition(
                [], type=edgeagent.AgentConditionType.REACHABLE, status=reachable,
                reason="R", message="m", observed_generation=1, now=at,
            )
        )  # fmt: skip

    lost = T0 + datetime.timedelta(minutes=3)
    offline = parsing.agent_view(_bare_agent(None), status=status(False, lost), observed=True)
    assert (offline.reachable, offline.unreachable_since) == (False, lost)
    online = parsing.agent_view(_bare_agent(None), status=status(True, lost), observed=True)
    assert (online.reachable, online.unreachable_since) == (True, None)
    never = parsing.agent_view(_bare_agent(None))
    assert (never.reachable, never.unreachable_since) == (False, None)


def test_an_agent_without_endpoint_is_valid_and_a_bad_endpoint_is_still_refused() -> None:
    assert _bare_agent(None).spec.endpoint is None
    with pytest.raises(ValueError, match="endpoint"):
        edgeagent.EdgeAgent.model_validate(
            {"metadata": {"name": "a"}, "spec": {"region": "eu-west", "endpoint": "host:99999"}}
        )
