"""ResidencyPolicy: cluster-wide data-residency rules for the ModelRollouts it selects.

Pure. A policy selects rollouts by label (optionally only in some namespaces) and states the
regions and jurisdictions they may reach and the regions they must never reach. The
admission webhook and the planner enforce it; the API server already refuses a policy that
contradicts itself (a region both allowed and denied) or that says nothing.
"""

from __future__ import annotations

import enum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from edgewave_api import markers
from edgewave_api.conditions import Conditions
from edgewave_api.meta import ApiModel, CrdInfo, CustomResource, PrinterColumn
from edgewave_api.modelrollout import Jurisdictions, Regions
from edgewave_api.names import DnsLabel
from edgewave_api.selectors import LabelSelector

_SAYS_SOMETHING = markers.Rule(
    rule="has(self.allowedRegions) || has(self.allowedJurisdictions) || has(self.deniedRegions)",
    message="a policy must set at least one of allowedRegions, allowedJurisdictions"
    " or deniedRegions",
    reason="FieldValueRequired",
)
_NOT_BOTH = markers.Rule(
    rule="!has(self.allowedRegions) || !has(self.deniedRegions)"
    " || !self.allowedRegions.exists(r, r in self.deniedRegions)",
    message="a region cannot be in both allowedRegions and deniedRegions",
    message_expression="'a region cannot be in both allowedRegions and deniedRegions: '"
    " + self.allowedRegions.filter(r, r in self.deniedRegions)[0]",
    field_path=".deniedRegions",
)


class ResidencyPolicySpec(ApiModel):
    """Which rollouts the policy governs and where their models may be."""

    model_config = ConfigDict(json_schema_extra=markers.on_model(_SAYS_SOMETHING, _NOT_BOTH))

    selector: Annotated[LabelSelector, markers.Default({})] = Field(default_factory=LabelSelector)
    """Label selector over ModelRollouts; `{}` (the default) selects every rollout."""
    namespaces: (
        Annotated[list[DnsLabel], markers.ListSet(), Field(min_length=1, max_length=256)] | None
    ) = None
    """Only rollouts in these namespaces; every namespace when unset."""
    allowed_regions: Regions | None = None
    """The only regions selected rollouts may reach; unrestricted when unset."""
    allowed_jurisdictions: Jurisdictions | None = None
    """The only jurisdictions (EdgeAgent `spec.jurisdiction`) selected rollouts may reach."""
    denied_regions: Regions | None = None
    """Regions selected rollouts must never reach."""

    @model_validator(mode="after")
    def _self_consistent(self) -> Self:
        if (self.allowed_regions, self.allowed_jurisdictions, self.denied_regions) == (None,) * 3:
            raise ValueError(_SAYS_SOMETHING.message)
        both = [r for r in self.allowed_regions or [] if r in (self.denied_regions or [])]
        if both:
            raise ValueError(
                f"a region cannot be in both allowedRegions and deniedRegions: {both[0]}"
            )
        return self

    def allows_region(self, region: str) -> bool:
        """Whether a model governed by this policy may be in `region`."""
        if region in (self.denied_regions or []):
            return False
        return self.allowed_regions is None or region in self.allowed_regions

    def allows_jurisdiction(self, jurisdiction: str | None) -> bool:
        """Whether a model governed by this policy may be in `jurisdiction` (None: unknown)."""
        if self.allowed_jurisdictions is None:
            return True
        return jurisdiction is not None and jurisdiction in self.allowed_jurisdictions


class PolicyConditionType(enum.StrEnum):
    """Condition types a ResidencyPolicy reports."""

    READY = "Ready"


class ResidencyPolicyStatus(ApiModel):
    """How the policy is being honoured."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The `.metadata.generation` this status describes."""
    matched_rollouts: Annotated[int, Field(ge=0)] = 0
    """ModelRollouts the policy selects."""
    violations: Annotated[int, Field(ge=0)] = 0
    """Models currently on agents the policy forbids (eviction pending); 0 when compliant."""
    excluded_agents: Annotated[int, Field(ge=0)] = 0
    """Agents selected rollouts would target but the policy excludes."""
    evictions: Annotated[int, Field(ge=0)] = 0
    """Models removed from agents because of this policy since it was created."""
    conditions: Conditions = Field(default_factory=list)
    """Ready."""


class ResidencyPolicy(CustomResource):
    """Where the models of the ModelRollouts it selects may and may not be."""

    crd: ClassVar[CrdInfo] = CrdInfo(
        kind="ResidencyPolicy",
        plural="residencypolicies",
        singular="residencypolicy",
        scope="Cluster",
        short_names=("rpol",),
        printer_columns=(
            PrinterColumn("Regions", "string", ".spec.allowedRegions", "Allowed regions."),
            PrinterColumn(
                "Jurisdictions", "string", ".spec.allowedJurisdictions", "Allowed jurisdictions."
            ),
            PrinterColumn("Denied", "string", ".spec.deniedRegions", "Denied regions.", 1),
            PrinterColumn("Rollouts", "integer", ".status.matchedRollouts", "Rollouts selected."),
            PrinterColumn("Violations", "integer", ".status.violations", "Live violations."),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since creation."),
        ),
    )

    kind: Literal["ResidencyPolicy"] = "ResidencyPolicy"
    """The object's kind."""
    spec: ResidencyPolicySpec
    """Which rollouts, and where their models may be."""
    status: ResidencyPolicyStatus | None = None
    """How the policy is being honoured, written by the operator."""
