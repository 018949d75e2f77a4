"""What every Edgewave resource shares: the API group, the pydantic base and object metadata.

Pure. `ApiModel` fixes the Kubernetes wire conventions once (camelCase JSON names, attribute
docstrings as field descriptions, timestamps as RFC 3339 seconds in UTC), so a resource
parses from a live object with `Model.model_validate(body)` and writes back with
`model_dump(by_alias=True, exclude_none=True, mode="json")`. `CrdInfo` holds what the CRD
needs beyond the schema (names, scope, printer columns); `edgewave_api.crdgen` reads it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

GROUP = "edgewave.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "edgewave"


def rfc3339(value: datetime.datetime) -> str:
    """`value` as Kubernetes writes times: UTC, whole seconds, `Z` suffix."""
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[
    AwareDatetime, PlainSerializer(rfc3339, return_type=str, when_used="json-unless-none")
]
"""A timezone-aware time; JSON form `2026-01-02T03:04:05Z` (sub-second precision dropped)."""


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        extra="ignore",
    )


class ObjectMeta(ApiModel):
    """The parts of Kubernetes object metadata Edgewave reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: Timestamp | None = None
    deletion_timestamp: Timestamp | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None


@dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry: what `kubectl get` shows."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str
    priority: int = 0


@dataclass(frozen=True)
class CrdInfo:
    """Everything about a kind's CRD that is not its schema."""

    kind: str
    plural: str
    singular: str
    scope: Literal["Namespaced", "Cluster"]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = (CATEGORY,)
    printer_columns: tuple[PrinterColumn, ...] = ()
    selectable_fields: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The CRD's own name, `<plural>.<group>`."""
        return f"{self.plural}.{GROUP}"


class CustomResource(ApiModel):
    """A whole Edgewave object as the API server returns it (spec and status in subclasses)."""

    crd: ClassVar[CrdInfo]

    api_version: Literal["edgewave.io/v1alpha1"] = "edgewave.io/v1alpha1"
    """The API group and version of this object."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
