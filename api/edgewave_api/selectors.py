"""Kubernetes label selectors, modelled (not left schemaless) and evaluated in Python.

Pure. `LabelSelector` has the shape of metav1.LabelSelector, so the API server validates
operators and values, and `matches` applies it to an object's labels the way the API server
does: every `matchLabels` pair and every expression must hold; an empty selector matches
everything. `to_query` renders it for a `labelSelector=` list parameter.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Annotated, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from edgewave_api import markers
from edgewave_api.meta import ApiModel

LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"

_LABEL_KEY = re.compile(LABEL_KEY)

LabelKey = Annotated[str, Field(min_length=1, max_length=317, pattern=LABEL_KEY)]
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]


class SelectorOperator(enum.StrEnum):
    """How a selector expression relates a label key to its values."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


_NEEDS_VALUES = (SelectorOperator.IN, SelectorOperator.NOT_IN)


class LabelSelectorRequirement(ApiModel):
    """One selector expression: a label key, an operator and (for In/NotIn) values."""

    model_config = ConfigDict(
        json_schema_extra=markers.on_model(
            markers.Rule(
                rule="self.operator in ['In', 'NotIn']"
                " ? (has(self.values) && size(self.values) > 0)"
                " : (!has(self.values) || size(self.values) == 0)",
                message="values must be non-empty for operators In and NotIn,"
                " and empty for Exists and DoesNotExist",
                field_path=".values",
            )
        )
    )

    key: LabelKey
    """The label key the expression applies to."""
    operator: SelectorOperator
    """In, NotIn, Exists or DoesNotExist."""
    values: Annotated[list[LabelValue], Field(max_length=64)] | None = None
    """Label values for In and NotIn; must be empty for Exists and DoesNotExist."""

    @model_validator(mode="after")
    def _values_fit_operator(self) -> Self:
        if (self.operator in _NEEDS_VALUES) != bool(self.values):
            raise ValueError(
                "values must be non-empty for operators In and NotIn,"
                " and empty for Exists and DoesNotExist"
            )
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy this expression."""
        values = self.values or []
        match self.operator:
            case SelectorOperator.IN:
                return labels.get(self.key) in values
            case SelectorOperator.NOT_IN:
                return labels.get(self.key) not in values
            case SelectorOperator.EXISTS:
                return self.key in labels
            case SelectorOperator.DOES_NOT_EXIST:
                return self.key not in labels

    def to_query(self) -> str:
        """The expression in `kubectl -l` syntax."""
        joined = ",".join(self.values or [])
        match self.operator:
            case SelectorOperator.IN:
                return f"{self.key} in ({joined})"
            case SelectorOperator.NOT_IN:
                return f"{self.key} notin ({joined})"
            case SelectorOperator.EXISTS:
                return self.key
            case SelectorOperator.DOES_NOT_EXIST:
                return f"!{self.key}"


class LabelSelector(ApiModel):
    """A label query over objects (metav1.LabelSelector). All terms must hold; `{}` matches all."""

    model_config = ConfigDict(
        json_schema_extra=markers.on_model(
            markers.Rule(
                rule="!has(self.matchLabels) || self.matchLabels.all(k, k.matches(r'"
                + LABEL_KEY
                + "'))",
                message="matchLabels keys must be valid label keys ([prefix/]name)",
                field_path=".matchLabels",
            )
        )
    )

    match_labels: Annotated[dict[str, LabelValue], Field(max_length=64)] | None = None
    """Labels that must all be present with exactly these values."""
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=32)] | None = None
    """Expressions that must all hold."""

    @field_validator("match_labels")
    @classmethod
    def _label_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        bad = [key for key in value or {} if not _LABEL_KEY.match(key)]
        if bad:
            raise ValueError(f"matchLabels keys must be valid label keys ([prefix/]name): {bad}")
        return value

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with `labels` is selected."""
        return all(
            labels.get(key) == value for key, value in (self.match_labels or {}).items()
        ) and all(expression.matches(labels) for expression in self.match_expressions or [])

    def to_query(self) -> str:
        """The selector as a `labelSelector=` string (`""` selects everything)."""
        terms = [f"{key}={value}" for key, value in sorted((self.match_labels or {}).items())]
        terms += [expression.to_query() for expression in self.match_expressions or []]
        return ",".join(terms)
