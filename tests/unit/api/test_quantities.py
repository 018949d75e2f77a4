"""IntOrPercent accepts counts and 0%..100%, and scaled_value resolves it like intstr."""

from __future__ import annotations

import re

import pydantic
import pytest

from edgewave_api import quantities


class Holder(pydantic.BaseModel):
    value: quantities.IntOrPercent


@pytest.mark.parametrize("value", [0, 1, 250, "0%", "5%", "25%", "99%", "100%"])
def test_valid(value: int | str) -> None:
    assert Holder(value=value).value == value


PERCENT = "must be a non-negative integer or a percentage from 0% to 100%"
NOT_INT_OR_STR = "Input should be a valid integer"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        *((v, PERCENT) for v in (-1, "150%", "101%", "100.0%", "3", "half", "%", "-5%", " 5%")),
        *((v, NOT_INT_OR_STR) for v in (2.5, True, None)),
    ],
)
def test_invalid(value: object, words: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=re.escape(words)) as refused:
        Holder.model_validate({"value": value})
    assert refused.value.errors()[0]["loc"][0] == "value"


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (3, 10, False, 3),
        (3, 2, False, 3),  # counts are not capped here; planners cap them
        ("25%", 10, False, 2),
        ("25%", 10, True, 3),
        ("50%", 3, False, 1),
        ("50%", 3, True, 2),
        ("100%", 7, False, 7),
        ("0%", 7, True, 0),
        ("10%", 0, True, 0),
    ],
)
def test_scaled_value(value: int | str, total: int, round_up: bool, expected: int) -> None:
    assert quantities.scaled_value(value, total=total, round_up=round_up) == expected


def test_scaled_value_refuses_a_non_percentage() -> None:
    with pytest.raises(ValueError, match="percentage"):
        quantities.scaled_value("7", total=10, round_up=False)


def test_schema_is_int_or_string_with_a_cel_rule() -> None:
    schema = Holder.model_json_schema()["properties"]["value"]
    assert schema["x-kubernetes-int-or-string"] is True
    assert schema["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert schema["x-kubernetes-validations"][0]["rule"].startswith("type(self) == int")
