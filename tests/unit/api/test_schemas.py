"""The JSON-schema to structural-schema conversion, and the markers it relies on."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
import pytest
from pydantic import ConfigDict, Field

from edgewave_api import markers, schemas
from edgewave_api.meta import ApiModel


class Leaf(ApiModel):
    """A leaf."""

    model_config = ConfigDict(json_schema_extra=markers.on_model(markers.Rule("a", "on leaf")))

    name: str
    """The name."""


class Tree(ApiModel):
    """A tree."""

    leaf: Annotated[Leaf, markers.Rule("b", "on field")] | None = None
    """The optional leaf."""
    leaves: Annotated[list[Leaf], markers.ListMap("name")] = Field(default_factory=list)
    """Keyed leaves.

    Second paragraph."""
    ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """A ratio."""


def test_refs_inlined_optional_collapsed_rules_merged() -> None:
    schema = schemas.structural(Tree)
    leaf = schema["properties"]["leaf"]
    assert leaf["description"] == "The optional leaf."  # the field's text wins over the type's
    assert leaf["type"] == "object"
    assert [r["rule"] for r in leaf["x-kubernetes-validations"]] == ["a", "b"]
    assert "default" not in leaf


def test_descriptions_reflowed_and_keys_ordered() -> None:
    leaves = schemas.structural(Tree)["properties"]["leaves"]
    assert leaves["description"] == "Keyed leaves.\n\nSecond paragraph."
    assert list(leaves) == [
        "description",
        "type",
        "items",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
    ]


def test_exclusive_bounds_become_flags() -> None:
    ratio = schemas.structural(Tree)["properties"]["ratio"]
    assert ratio == {
        "description": "A ratio.",
        "type": "number",
        "default": 0.5,
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
        "exclusiveMaximum": True,
    }


class Union(ApiModel):
    value: int | str


class FreeForm(ApiModel):
    value: dict[str, Any]


class Pinned(ApiModel):
    value: Annotated[str, Field(examples=["x"])]


@pytest.mark.parametrize(
    ("model", "says"),
    [(Union, "unions are not structural"), (FreeForm, "free-form"), (Pinned, "'examples'")],
)
def test_non_structural_models_are_refused_at_generation(
    model: type[pydantic.BaseModel], says: str
) -> None:
    with pytest.raises(schemas.SchemaError, match=says) as refused:
        schemas.structural(model)
    assert "value" in str(refused.value)
    assert refused.value.temporary is False


def test_list_markers_check_uniqueness_in_python() -> None:
    with pytest.raises(pydantic.ValidationError, match="name values must be unique; repeated: a"):
        Tree.model_validate({"leaves": [{"name": "a"}, {"name": "b"}, {"name": "a"}]})

    class Tags(pydantic.BaseModel):
        tags: Annotated[list[str], markers.ListSet()]

    with pytest.raises(pydantic.ValidationError, match="values must be unique; repeated: x"):
        Tags(tags=["x", "y", "x"])
    assert Tags(tags=["x", "y"]).tags == ["x", "y"]


def test_rule_renders_only_what_is_set() -> None:
    rule = markers.Rule("self > 0", "must be positive", field_path=".x", reason="FieldValueInvalid")
    assert rule.schema() == {
        "x-kubernetes-validations": [
            {
                "rule": "self > 0",
                "message": "must be positive",
                "fieldPath": ".x",
                "reason": "FieldValueInvalid",
            }
        ]
    }
    assert (
        markers.merge(rule.schema(), rule.schema())["x-kubernetes-validations"]
        == [rule.schema()["x-kubernetes-validations"][0]] * 2
    )
