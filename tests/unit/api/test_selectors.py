"""LabelSelector matches labels the way the API server does and renders as a query."""

from __future__ import annotations

import re

import pydantic
import pytest

from edgewave_api.selectors import LabelSelector

LABELS = {"region": "eu-west", "tier": "gold", "edgewave.io/fleet": "demo"}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ({}, True),
        ({"matchLabels": {"region": "eu-west"}}, True),
        ({"matchLabels": {"region": "us-east"}}, False),
        ({"matchLabels": {"region": "eu-west", "tier": "silver"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["silver"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"matchExpressions": [{"key": "edgewave.io/fleet", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
        (
            {
                "matchLabels": {"region": "eu-west"},
                "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}],
            },
            False,
        ),
    ],
)
def test_matches(selector: dict[str, object], selected: bool) -> None:
    assert LabelSelector.model_validate(selector).matches(LABELS) is selected


def test_to_query() -> None:
    selector = LabelSelector.model_validate(
        {
            "matchLabels": {"tier": "gold", "region": "eu-west"},
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a", "b"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "gpu", "operator": "Exists"},
                {"key": "cordon", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.to_query() == (
        "region=eu-west,tier=gold,zone in (a,b),env notin (dev),gpu,!cordon"
    )
    assert LabelSelector().to_query() == ""


VALUES_RULE = "values must be non-empty for operators In and NotIn, and empty for Exists"


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        ({"matchExpressions": [{"key": "tier", "operator": "In"}]},
         ("matchExpressions", 0), VALUES_RULE),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": []}]},
         ("matchExpressions", 0), VALUES_RULE),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["x"]}]},
         ("matchExpressions", 0), VALUES_RULE),
        ({"matchExpressions": [{"key": "tier", "operator": "Like", "values": ["x"]}]},
         ("matchExpressions", 0, "operator"), "Input should be 'In', 'NotIn', 'Exists'"),
        ({"matchExpressions": [{"key": "bad key", "operator": "Exists"}]},
         ("matchExpressions", 0, "key"), "String should match pattern"),
        ({"matchLabels": {"bad key!": "x"}},
         ("matchLabels",), "keys must be valid label keys ([prefix/]name): ['bad key!']"),
        ({"matchLabels": {"ok": "bad value!"}},
         ("matchLabels", "ok"), "String should match pattern"),
    ],
)  # fmt: skip
def test_invalid_selectors_are_refused(
    bad: dict[str, object], field: tuple[object, ...], words: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=re.escape(words)) as refused:
        LabelSelector.model_validate(bad)
    assert [e["loc"] for e in refused.value.errors()] == [field]
