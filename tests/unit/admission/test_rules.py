"""Residency rules at admission, table by table: regions against rules, policies themselves."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from edgewave_operator.admission import rules
from edgewave_operator.planning import residency

FLEET = rules.jurisdictions_by_region(
    [
        ("eu-west", "EU"),
        ("eu-west", "EU"),
        ("eu-central", "EU"),
        ("us-east", "US"),
        ("ch-zurich", "CH"),
        ("split", "EU"),
        ("split", "US"),
        ("nowhere", None),
    ]
)


def rule(
    source: str,
    *,
    allowed: Collection[str] | None = None,
    jurisdictions: Collection[str] | None = None,
    denied: Collection[str] = (),
) -> residency.ResidencyRule:
    return residency.ResidencyRule(
        source=source,
        allowed_regions=None if allowed is None else frozenset(allowed),
        allowed_jurisdictions=None if jurisdictions is None else frozenset(jurisdictions),
        denied_regions=frozenset(denied),
    )


def policy(
    name: str,
    *,
    allowed: Collection[str] | None = None,
    jurisdictions: Collection[str] | None = None,
    denied: Collection[str] = (),
) -> rules.Binding:
    source = rules.policy_source(name)
    return rules.Binding(
        rule=rule(source, allowed=allowed, jurisdictions=jurisdictions, denied=denied),
        policy=name,
    )


EU_ONLY = policy("eu-only", allowed=("eu-west", "eu-central"))
EU_LAW = policy("eu-law", jurisdictions=("EU",))
NO_US = policy("no-us", denied=("us-east",))
OWN_WEST = rules.Binding(rule=rule(rules.OWN_SOURCE, allowed=("eu-west",)))
OWN_EU = rules.Binding(rule=rule(rules.OWN_SOURCE, jurisdictions=("EU",)))
OWN_NOTHING = rules.Binding(rule=rule(rules.OWN_SOURCE, allowed=()))
TARGETS = "spec.targets.regions"
WAVE2 = "spec.strategy.waves[2].regions"


def refs(path: str, *regions: str) -> list[rules.RegionRef]:
    return [rules.RegionRef(path=f"{path}[{i}]", region=r) for i, r in enumerate(regions)]


# (case, regions named, binding rules, expected (path, region, policy) triples)
REGION_CASES: list[
    tuple[str, list[rules.RegionRef], list[rules.Binding], list[tuple[str, str, str | None]]]
] = [
    ("nothing named, nothing refused", [], [EU_ONLY, OWN_WEST], []),
    ("no rule binds", refs(TARGETS, "us-east"), [], []),
    ("EU regions under eu-only", refs(TARGETS, "eu-west", "eu-central"), [EU_ONLY], []),
    ("EU regions under EU law", refs(TARGETS, "eu-west", "eu-central"), [EU_LAW], []),
    (
        "us-east in a wave under every EU policy",
        refs(WAVE2, "us-east"),
        [EU_ONLY, EU_LAW, NO_US],
        [
            (f"{WAVE2}[0]", "us-east", "eu-only"),
            (f"{WAVE2}[0]", "us-east", "eu-law"),
            (f"{WAVE2}[0]", "us-east", "no-us"),
        ],
    ),
    ("deny-only policy passes other regions", refs(TARGETS, "ch-zurich", "eu-west"), [NO_US], []),
    (
        "own allowedRegions refuses eu-central",
        refs(TARGETS, "eu-west", "eu-central"),
        [OWN_WEST],
        [(f"{TARGETS}[1]", "eu-central", None)],
    ),
    (
        "own jurisdictions refuse ch-zurich",
        refs(TARGETS, "ch-zurich"),
        [OWN_EU],
        [(f"{TARGETS}[0]", "ch-zurich", None)],
    ),
    (
        "region no agent is in yet: not refused (planning checks each agent)",
        refs(TARGETS, "ap-south"),
        [OWN_EU],
        [],
    ),
    (
        "agents there declare no jurisdiction: not refused either",
        refs(TARGETS, "nowhere"),
        [EU_LAW],
        [],
    ),
    (
        "unknown jurisdiction is fine where only regions are constrained",
        refs(TARGETS, "eu-west"),
        [EU_ONLY],
        [],
    ),
    (
        "region split between EU and US is refused under EU law",
        refs(TARGETS, "split"),
        [EU_LAW],
        [(f"{TARGETS}[0]", "split", "eu-law")],
    ),
    (
        "empty allow list allows nothing",
        refs(TARGETS, "eu-west"),
        [OWN_NOTHING],
        [(f"{TARGETS}[0]", "eu-west", None)],
    ),
    (
        "both allow lists: their intersection",
        refs(TARGETS, "eu-west", "ch-zurich"),
        [policy("both", allowed=("eu-west", "ch-zurich"), jurisdictions=("EU",))],
        [(f"{TARGETS}[1]", "ch-zurich", "both")],
    ),
]


@pytest.mark.parametrize(
    ("regions", "bindings", "expected"),
    [case[1:] for case in REGION_CASES],
    ids=[case[0] for case in REGION_CASES],
)
def test_named_regions_against_the_rules_that_bind_them(
    regions: list[rules.RegionRef],
    bindings: list[rules.Binding],
    expected: list[tuple[str, str, str | None]],
) -> None:
    violations = rules.check_regions(regions=regions, bindings=bindings, jurisdictions=FLEET)
    assert sorted((v.path, v.region or "", v.policy) for v in violations) == sorted(expected)


def test_the_message_names_the_field_region_policy_and_what_is_allowed() -> None:
    [violation] = rules.check_regions(
        regions=refs(WAVE2, "us-east"), bindings=[EU_ONLY], jurisdictions=FLEET
    )
    assert str(violation) == (
        'spec.strategy.waves[2].regions[0]: region "us-east" is not allowed by '
        'ResidencyPolicy "eu-only" (allowed: eu-central, eu-west)'
    )


@pytest.mark.parametrize(
    ("binding", "region", "expected"),
    [
        (NO_US, "us-east", 'region "us-east" is denied by ResidencyPolicy "no-us"'),
        (EU_LAW, "us-east", 'jurisdiction "US", which ResidencyPolicy "eu-law" does not'),
        (EU_LAW, "ap-south", 'region "ap-south" has no known jurisdiction'),
        (OWN_WEST, "eu-central", "is not allowed by spec.residency (allowed: eu-west)"),
        (OWN_NOTHING, "eu-west", "(allowed: none)"),
    ],
)
def test_refusals_say_why(binding: rules.Binding, region: str, expected: str) -> None:
    reason = rules.refusal(binding.rule, region=region, jurisdictions=FLEET.get(region, ()))
    assert reason is not None
    assert expected in reason


# (case, policy rule, expected (path, region) pairs)
POLICY_CASES: list[tuple[str, residency.ResidencyRule, list[tuple[str, str | None]]]] = [
    ("EU-only by regions", EU_ONLY.rule, []),
    ("EU by jurisdiction", EU_LAW.rule, []),
    ("deny-only", NO_US.rule, []),
    (
        "regions and jurisdictions that agree",
        rule("p", allowed=("eu-west", "eu-central"), jurisdictions=("EU",)),
        [],
    ),
    ("states nothing", rule("p"), [("spec", None)]),
    (
        "region both allowed and denied",
        rule("p", allowed=("eu-west", "eu-central"), denied=("eu-west",)),
        [("spec.deniedRegions", "eu-west")],
    ),
    (
        "every allowed region denied",
        rule("p", allowed=("eu-west",), denied=("eu-west", "us-east")),
        [("spec.deniedRegions", "eu-west")],
    ),
    ("empty allowedRegions", rule("p", allowed=()), [("spec.allowedRegions", None)]),
    (
        "empty allowedJurisdictions",
        rule("p", jurisdictions=()),
        [("spec.allowedJurisdictions", None)],
    ),
    (
        "allowed region outside the allowed jurisdictions",
        rule("p", allowed=("eu-west", "us-east"), jurisdictions=("EU",)),
        [("spec.allowedRegions", "us-east")],
    ),
    (
        "allowed region split across jurisdictions",
        rule("p", allowed=("split",), jurisdictions=("EU",)),
        [("spec.allowedRegions", "split")],
    ),
    (
        "allowed region of unknown jurisdiction is not (yet) a contradiction",
        rule("p", allowed=("ap-south",), jurisdictions=("EU",)),
        [],
    ),
]


@pytest.mark.parametrize(
    ("subject", "expected"),
    [case[1:] for case in POLICY_CASES],
    ids=[case[0] for case in POLICY_CASES],
)
def test_policy_contradictions(
    subject: residency.ResidencyRule, expected: list[tuple[str, str | None]]
) -> None:
    violations = rules.check_policy("p", subject, jurisdictions=FLEET)
    assert sorted((v.path, v.region) for v in violations) == sorted(expected)
    assert all(v.policy == "p" for v in violations)


def test_contradiction_messages_say_what_to_do() -> None:
    [both] = rules.check_policy(
        "p", rule("p", allowed=("eu-west",), denied=("eu-west",)), jurisdictions=FLEET
    )
    assert 'region "eu-west" is both allowed' in both.message
    assert "remove it from one of the lists" in both.message
    [outside] = rules.check_policy(
        "p", rule("p", allowed=("us-east",), jurisdictions=("EU",)), jurisdictions=FLEET
    )
    assert 'region "us-east" is in jurisdiction "US"' in outside.message


def test_regions_of_unknown_jurisdiction_under_a_jurisdiction_rule_are_warned_about() -> None:
    warnings = rules.unknown_jurisdictions(
        regions=refs(TARGETS, "eu-west", "ap-south", "nowhere"),
        bindings=[EU_ONLY, EU_LAW],
        jurisdictions=FLEET,
    )
    assert [w.split(":")[0] for w in warnings] == [f"{TARGETS}[1]", f"{TARGETS}[2]"]
    assert 'ResidencyPolicy "eu-law"' in warnings[0]
    assert "eu-only" not in warnings[0]
    assert (
        rules.unknown_jurisdictions(
            regions=refs(TARGETS, "ap-south"), bindings=[EU_ONLY], jurisdictions=FLEET
        )
        == []
    )


def test_the_report_judges_agents_strictly_an_unknown_jurisdiction_is_refused() -> None:
    assert rules.refusal(EU_LAW.rule, region="nowhere", jurisdictions=(), strict=False) is None
    assert rules.refusal(EU_LAW.rule, region="nowhere", jurisdictions=()) is not None


def test_jurisdictions_by_region_keeps_every_declared_jurisdiction() -> None:
    assert FLEET["split"] == {"EU", "US"}
    assert FLEET["eu-west"] == {"EU"}
    assert FLEET["nowhere"] == frozenset()
    assert "ap-south" not in FLEET


def test_summary_names_every_violation() -> None:
    violations = [
        rules.Violation(path="a", message="first"),
        rules.Violation(path="b", message="second"),
    ]
    assert rules.summary(violations, lead='ModelRollout "ns/x" is refused') == (
        'ModelRollout "ns/x" is refused: a: first; b: second'
    )
