"""targets = selector ∩ regions ∩ residency, split into waves."""

from __future__ import annotations

import pytest

from edgewave_api.selectors import LabelSelector
from edgewave_operator.planning import residency, targeting, views

EU_ONLY = residency.ResidencyRules(
    rules=(
        residency.ResidencyRule(
            source="ResidencyPolicy/eu-only", allowed_regions=frozenset({"eu-west", "eu-central"})
        ),
    )
)


def agent(name: str, region: str, **kwargs: object) -> views.AgentView:
    labels = {"app": "cams", **dict(kwargs.pop("labels", {}))}  # type: ignore[call-overload]
    return views.AgentView(name=name, region=region, labels=labels, **kwargs)  # type: ignore[arg-type]


FLEET = (
    agent("ew-1", "eu-west"),
    agent("ew-2", "eu-west"),
    agent("ec-1", "eu-central"),
    agent("ec-2", "eu-central", labels={"app": "kiosk"}),
    agent("ue-1", "us-east"),
    agent("ue-2", "us-east"),
)
CAMS = LabelSelector(match_labels={"app": "cams"})


@pytest.mark.parametrize(
    ("spec", "rules", "targets", "excluded"),
    [
        (targeting.TargetSpec(), residency.ResidencyRules(), 6, {}),
        (targeting.TargetSpec(selector=CAMS), residency.ResidencyRules(), 5, {}),
        (targeting.TargetSpec(regions=("eu-west", "us-east")), residency.ResidencyRules(), 4, {}),
        (
            targeting.TargetSpec(regions=("eu-central",), selector=CAMS),
            residency.ResidencyRules(),
            1,
            {},
        ),
        # A selector matching three regions under an EU-only policy targets only EU agents,
        # and counts the others as excluded with the reason.
        (targeting.TargetSpec(selector=CAMS), EU_ONLY, 3, {"RegionNotAllowed": 2}),
        (targeting.TargetSpec(regions=("us-east",)), EU_ONLY, 0, {"RegionNotAllowed": 2}),
    ],
)
def test_select_targets(
    *,
    spec: targeting.TargetSpec,
    rules: residency.ResidencyRules,
    targets: int,
    excluded: dict[str, int],
) -> None:
    found = targeting.select_targets(
        spec=spec, rules=rules, fleet=FLEET, model="resnet", version="v2"
    )
    assert len(found.targets) == targets
    assert found.excluded_by_reason() == excluded
    assert (
        all(t.region.startswith("eu") for t in found.targets) or rules == residency.ResidencyRules()
    )


def test_cordoned_agents_get_nothing_new_but_keep_what_they_serve() -> None:
    serving = (views.HeldModel(name="resnet", version="v2", state=views.ModelState.ACTIVE),)
    fleet = [
        agent("a", "eu-west", cordoned=True),
        agent("b", "eu-west", cordoned=True, models=serving),
        agent("c", "eu-west"),
    ]
    found = targeting.select_targets(
        spec=targeting.TargetSpec(),
        rules=residency.ResidencyRules(),
        fleet=fleet,
        model="resnet",
        version="v2",
    )
    assert [t.name for t in found.targets] == ["b", "c"]
    assert [(e.agent, e.reason) for e in found.excluded] == [("a", "Cordoned")]


def test_mismatched_agent_is_excluded_even_without_policy() -> None:
    fleet = [agent("a", "eu-west", reported_region="us-east"), agent("b", "eu-west")]
    found = targeting.select_targets(
        spec=targeting.TargetSpec(),
        rules=residency.ResidencyRules(),
        fleet=fleet,
        model="m",
        version="v",
    )
    assert [t.name for t in found.targets] == ["b"]
    assert found.excluded_by_reason() == {"ReportedRegionMismatch": 1}


def test_waves_take_targets_in_spec_order_first_match_wins() -> None:
    found = targeting.select_targets(
        spec=targeting.TargetSpec(),
        rules=residency.ResidencyRules(),
        fleet=FLEET,
        model="m",
        version="v",
    )
    waves, remaining = targeting.assign_waves(
        waves=[
            targeting.WaveSpec(name="canary", regions=("eu-west",), max_unavailable=1),
            targeting.WaveSpec(name="eu", regions=("eu-west", "eu-central"), max_unavailable="50%"),
            targeting.WaveSpec(
                name="kiosks", selector=LabelSelector(match_labels={"app": "kiosk"})
            ),
        ],
        targeting=found,
    )
    assert [(w.name, w.agent_names, w.max_unavailable) for w in waves] == [
        ("canary", ("ew-1", "ew-2"), 1),
        ("eu", ("ec-1", "ec-2"), 1),
        ("kiosks", (), 1),
    ]
    assert remaining.excluded_by_reason() == {"NotInAnyWave": 2}
    assert [t.name for t in remaining.targets] == ["ec-1", "ec-2", "ew-1", "ew-2"]


def test_no_waves_means_one_wave_of_all_targets() -> None:
    found = targeting.select_targets(
        spec=targeting.TargetSpec(),
        rules=residency.ResidencyRules(),
        fleet=FLEET,
        model="m",
        version="v",
    )
    waves, remaining = targeting.assign_waves(waves=[], targeting=found)
    assert [(w.name, len(w.agents), w.max_unavailable, w.max_failed) for w in waves] == [
        ("all", 6, 1, 0)
    ]
    assert remaining.excluded == ()


@pytest.mark.parametrize(
    ("size", "max_unavailable", "max_failed", "expected"),
    [(4, "50%", "25%", (2, 1)), (3, "25%", 1, (1, 1)), (10, 3, "10%", (3, 1))],
)
def test_wave_limits_resolve_against_wave_size(
    *,
    size: int,
    max_unavailable: str | int,
    max_failed: str | int,
    expected: tuple[int, int],
) -> None:
    fleet = [agent(f"a{i}", "eu-west") for i in range(size)]
    found = targeting.select_targets(
        spec=targeting.TargetSpec(),
        rules=residency.ResidencyRules(),
        fleet=fleet,
        model="m",
        version="v",
    )
    waves, _ = targeting.assign_waves(
        waves=[
            targeting.WaveSpec(name="w", max_unavailable=max_unavailable, max_failed=max_failed)
        ],
        targeting=found,
    )
    assert (waves[0].max_unavailable, waves[0].max_failed) == expected


def test_refused_agents_move_to_excluded() -> None:
    found = targeting.select_targets(
        spec=targeting.TargetSpec(),
        rules=residency.ResidencyRules(),
        fleet=FLEET,
        model="m",
        version="v",
    )
    moved = targeting.exclude(
        found, refused={"ue-1": "no runtime for ONNXRuntime"}, reason="NoCompatibleBackend"
    )
    assert len(moved.targets) == 5
    assert moved.excluded_by_reason() == {"NoCompatibleBackend": 1}
    assert targeting.exclude(found, refused={}, reason="x") is found
