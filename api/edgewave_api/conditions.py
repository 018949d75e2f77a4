"""metav1.Condition-shaped status conditions and the one way to set them.

Pure. `set_condition` returns a new list in which the condition of the given type carries
the new status, reason, message and observed generation; its `lastTransitionTime` moves to
`now` only when the status flips (or the condition is new), so kstatus, `kubectl wait` and
people reading `kubectl describe` see when things actually changed. The clock is an
argument, never read here.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from edgewave_api import markers
from edgewave_api.meta import ApiModel, Timestamp

CONDITION_TYPE = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class ConditionStatus(enum.StrEnum):
    """Whether a condition holds: True, False or Unknown."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of the object's current state (the shape of metav1.Condition)."""

    type: Annotated[str, Field(max_length=316, pattern=CONDITION_TYPE)]
    """The aspect this condition reports, in CamelCase, such as `Ready`."""
    status: ConditionStatus
    """True, False or Unknown."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The `.metadata.generation` this condition was computed from."""
    last_transition_time: Timestamp
    """When `status` last changed."""
    reason: Annotated[str, Field(min_length=1, max_length=1024, pattern=CONDITION_REASON)]
    """A CamelCase, machine-readable cause of the last change, such as `WaveHealthGateFailed`."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """A human-readable explanation, with the numbers that led to it."""


Conditions = Annotated[list[Condition], markers.ListMap("type"), Field(max_length=16)]
"""A status' conditions, one per type."""


def find_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    """The condition of `condition_type`, or None."""
    return next((c for c in conditions if c.type == condition_type), None)


def is_true(conditions: Sequence[Condition], condition_type: str) -> bool:
    """Whether the condition of `condition_type` exists and is True."""
    condition = find_condition(conditions, condition_type)
    return condition is not None and condition.status is ConditionStatus.TRUE


def set_condition(
    conditions: Sequence[Condition],
    *,
    type: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: datetime.datetime,
) -> list[Condition]:
    """`conditions` with the one of `type` set; `lastTransitionTime` moves only on a flip.

    Order is kept; a new type is appended. The input is not modified.
    """
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    previous = find_condition(conditions, type)
    if previous is None or previous.status is not status:
        transition = now
    else:
        transition = previous.last_transition_time
    updated = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        last_transition_time=transition,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == type else c for c in conditions]
