"""Pydantic JSON schema to Kubernetes structural openAPIV3Schema.

Pure. Pydantic writes JSON Schema 2020-12 with `$defs`; a CRD needs a structural OpenAPI v3
schema: every `$ref` inlined, optional fields as plain types (not `anyOf` with null),
`exclusiveMinimum` as a flag beside `minimum`, no titles. Anything the API server would not
accept (an unknown keyword, a union other than int-or-string, `additionalProperties: false`)
raises `SchemaError` here, at generation time, rather than at `kubectl apply`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from edgewave_api import markers
from edgewave_api.errors import PermanentError

Schema = dict[str, Any]

# Keywords a CRD schema may carry, in the order they are written out.
KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "anyOf",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
)
_DROPPED = frozenset({"title", "$defs"})


class SchemaError(PermanentError):
    """A model cannot be expressed as a structural schema; fix the model."""


def structural(model: type[BaseModel], *, replace: Mapping[str, Schema] | None = None) -> Schema:
    """The structural openAPIV3Schema of `model` (validation mode, camelCase names).

    `replace` gives top-level properties their schema as is (such as `metadata`, which the
    API server describes itself).
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    raw["properties"] = {**raw.get("properties", {}), **(replace or {})}
    return _convert(raw, raw.get("$defs", {}), where=model.__name__)


def _resolve(node: Schema, defs: Schema, *, where: str) -> Schema:
    """`node` with a `$ref` (or one-element allOf) replaced by its target, siblings winning."""
    if "allOf" in node and len(node["allOf"]) == 1:
        node = markers.merge({k: v for k, v in node.items() if k != "allOf"}, node["allOf"][0])
    if "$ref" not in node:
        return node
    name = node["$ref"].removeprefix("#/$defs/")
    if name not in defs:
        raise SchemaError(f"{where}: unresolvable $ref {node['$ref']}")
    target = copy.deepcopy(defs[name])
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    return _resolve(markers.merge(target, siblings), defs, where=where)


def _drop_null(node: Schema, defs: Schema, *, where: str) -> Schema:
    """An `anyOf: [X, null]` collapsed into X (optional fields are omitted, never null)."""
    if "anyOf" not in node or node.get("x-kubernetes-int-or-string"):
        return node
    branches = [b for b in node["anyOf"] if b != {"type": "null"}]
    if len(branches) != 1:
        raise SchemaError(f"{where}: unions are not structural; use one type or IntOrPercent")
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if rest.get("default", ...) is None:
        del rest["default"]
    branch = _resolve(branches[0], defs, where=where)
    # The field's own description and markers win over the type's.
    return markers.merge(branch, rest)


def _convert(node: Schema, defs: Schema, *, where: str) -> Schema:
    node = _resolve(
        _drop_null(_resolve(node, defs, where=where), defs, where=where), defs, where=where
    )
    result: Schema = {}
    for key, value in node.items():
        if key not in _DROPPED:
            result.update(_keyword(key, value, defs, where=where))
    if result.get("required") == []:
        del result["required"]
    if "type" not in result and not result.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{where}: every field needs a type to be structural")
    return ordered(result)


def _keyword(key: str, value: Any, defs: Schema, *, where: str) -> Schema:
    """The Kubernetes form of one JSON Schema keyword (possibly none, possibly two)."""
    out: Schema
    match key:
        case "properties":
            out = {
                key: {
                    name: _convert(child, defs, where=f"{where}.{name}")
                    for name, child in value.items()
                }
            }
        case "items":
            out = {key: _convert(value, defs, where=f"{where}[]")}
        case "additionalProperties" if value is True:
            raise SchemaError(f"{where}: free-form maps are not structural; type the values")
        case "additionalProperties":
            out = {} if value is False else {key: _convert(value, defs, where=f"{where}{{}}")}
        case "exclusiveMinimum" | "exclusiveMaximum" if not isinstance(value, bool):
            out = {key.replace("exclusiveM", "m"): value, key: True}
        case "const":
            out = {"enum": [value]}
        case "description":
            out = {key: reflow(value)}
        case markers.VALIDATIONS:
            out = {key: [_ordered_rule(rule) for rule in value]}
        case _ if key in KEY_ORDER:
            out = {key: value}
        case _:
            raise SchemaError(f"{where}: keyword {key!r} has no Kubernetes equivalent")
    return out


_RULE_ORDER = ("rule", "message", "messageExpression", "fieldPath", "reason")


def _ordered_rule(rule: Schema) -> Schema:
    unknown = set(rule) - set(_RULE_ORDER)
    if unknown:
        raise SchemaError(f"unknown keys in a validation rule: {sorted(unknown)}")
    return {key: rule[key] for key in _RULE_ORDER if key in rule}


def reflow(text: str) -> str:
    """Docstring text as paragraphs of single lines (`kubectl explain` wraps them itself)."""
    paragraphs = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def ordered(node: Schema) -> Schema:
    """`node` with its keywords in `KEY_ORDER` (property order is kept as declared)."""
    rank = {key: index for index, key in enumerate(KEY_ORDER)}
    return {key: node[key] for key in sorted(node, key=lambda key: rank.get(key, len(rank)))}
