"""Kubernetes schema markers attached to pydantic models, the one place CRD extras come from.

Pure. A marker is a small frozen value used as `Annotated` metadata on a field (or, through
`on_model`, on a whole model). It adds `x-kubernetes-*` keys, CEL validation rules or a
server-side default to the field's JSON schema, which `edgewave_api.schemas` then turns into
a structural openAPIV3Schema. List markers also enforce their uniqueness in Python, so a
model parsed outside the API server (a file given to `edgewave plan`) is held to the same
rule the API server applies.

    waves: Annotated[list[Wave], markers.ListMap("name")]
    model_config = ConfigDict(json_schema_extra=markers.on_model(markers.Rule(...)))
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

VALIDATIONS = "x-kubernetes-validations"

RuleReason = Literal["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired"]


def merge(base: JsonSchemaValue, extra: JsonSchemaValue) -> JsonSchemaValue:
    """`base` updated by `extra`; CEL rule lists are concatenated, never replaced."""
    result = dict(base)
    for key, value in extra.items():
        if key == VALIDATIONS and key in result:
            result[key] = [*result[key], *value]
        else:
            result[key] = copy.deepcopy(value)
    return result


class Marker:
    """Base of every marker: contributes `schema()` to the annotated field's JSON schema."""

    def schema(self) -> JsonSchemaValue:
        raise NotImplementedError

    def __get_pydantic_json_schema__(
        self, source: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return merge(handler(source), self.schema())


@dataclass(frozen=True)
class Rule(Marker):
    """A CEL rule (`x-kubernetes-validations` entry) evaluated by the API server.

    `message` must name the field(s) at fault and what is allowed; `message_expression`
    (CEL returning a string) may add the offending values. `field_path` (e.g. `.min`) makes
    the API server report the error against a child field.
    """

    rule: str
    message: str
    message_expression: str | None = None
    field_path: str | None = None
    reason: RuleReason | None = None

    def schema(self) -> JsonSchemaValue:
        entry: dict[str, Any] = {"rule": self.rule, "message": self.message}
        if self.message_expression is not None:
            entry["messageExpression"] = self.message_expression
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        if self.reason is not None:
            entry["reason"] = self.reason
        return {VALIDATIONS: [entry]}


@dataclass(frozen=True)
class Default(Marker):
    """A default the API server applies (for objects: `{}` lets nested defaults apply)."""

    value: Any

    def __hash__(self) -> int:
        # Inside `X | None` typing hashes its arguments; a dict or list value is not hashable.
        return hash(repr(self.value))

    def schema(self) -> JsonSchemaValue:
        return {"default": copy.deepcopy(self.value)}


def _duplicates(keys: Iterable[object]) -> list[object]:
    seen: set[object] = set()
    repeated: list[object] = []
    for key in keys:
        if key in seen and key not in repeated:
            repeated.append(key)
        seen.add(key)
    return repeated


class _ListMarker(Marker):
    """A list marker whose uniqueness rule also runs in Python after the list is parsed."""

    def _keys(self, items: list[Any]) -> list[object]:
        raise NotImplementedError

    def _what(self) -> str:
        raise NotImplementedError

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        check: Callable[[list[Any]], list[Any]] = self._check
        return core_schema.no_info_after_validator_function(check, handler(source))

    def _check(self, items: list[Any]) -> list[Any]:
        repeated = _duplicates(self._keys(items))
        if repeated:
            raise PydanticCustomError(
                "duplicate_list_entry",
                "{what} must be unique; repeated: {repeated}",
                {"what": self._what(), "repeated": ", ".join(map(_show, repeated))},
            )
        return items


@dataclass(frozen=True, init=False)
class ListMap(_ListMarker):
    """A list of objects keyed by `keys` (aliases): merged by key under server-side apply."""

    keys: tuple[str, ...]

    def __init__(self, *keys: str) -> None:
        object.__setattr__(self, "keys", keys)

    def schema(self) -> JsonSchemaValue:
        return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(self.keys)}

    def _what(self) -> str:
        return " and ".join(self.keys) + " values"

    def _keys(self, items: list[Any]) -> list[object]:
        return [tuple(_by_alias(item, key) for key in self.keys) for item in items]


@dataclass(frozen=True)
class ListSet(_ListMarker):
    """A list of unique scalars (`x-kubernetes-list-type: set`)."""

    def schema(self) -> JsonSchemaValue:
        return {"x-kubernetes-list-type": "set"}

    def _what(self) -> str:
        return "values"

    def _keys(self, items: list[Any]) -> list[object]:
        return list(items)


def _show(key: object) -> str:
    return "/".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _by_alias(item: Any, alias: str) -> Any:
    if isinstance(item, pydantic.BaseModel):
        for name, field in type(item).model_fields.items():
            if alias in (field.alias, name):
                return getattr(item, name)
    return item[alias]


@dataclass(frozen=True)
class IntOrString(Marker):
    """`x-kubernetes-int-or-string`: the structural form of an int-or-string field.

    `max_length` bounds the string form, which keeps CEL rules on the field cheap enough for
    the API server's cost budget.
    """

    max_length: int | None = None

    def schema(self) -> JsonSchemaValue:
        bound = {} if self.max_length is None else {"maxLength": self.max_length}
        return {
            **bound,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
        }

    def __get_pydantic_json_schema__(
        self, source: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Replace pydantic's union of two constrained branches: Kubernetes accepts only this shape.
        return self.schema()


def on_model(*markers: Marker) -> JsonSchemaValue:
    """The schema extras of `markers`, for `ConfigDict(json_schema_extra=...)` on a model."""
    result: JsonSchemaValue = {}
    for marker in markers:
        result = merge(result, marker.schema())
    return result
