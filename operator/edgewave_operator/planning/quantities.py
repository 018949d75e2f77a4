"""Kubernetes int-or-percent quantities (`maxUnavailable: 2` or `"25%"`), resolved. Pure.

Rounds like Kubernetes' `GetScaledValueFromIntOrPercent`: a percentage of the wave size,
rounded down, so "25%" of 6 agents is 1. `maxUnavailable` never resolves below 1 (a wave
must be able to make progress); `maxFailed` may resolve to 0 (no failure tolerated).
"""

from __future__ import annotations

from edgewave_api import quantities as api_quantities
from edgewave_api.errors import PermanentError

IntOrPercent = int | str


class QuantityError(PermanentError):
    """An int-or-percent value that cannot be resolved."""


def scaled(value: IntOrPercent, *, total: int, round_up: bool = False) -> int:
    """`value` as a count out of `total` (an int is taken as is)."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a count or a percentage; write e.g. 2 or '25%'")
    if isinstance(value, int):
        if value < 0:
            raise QuantityError(f"{value} is negative; write a count >= 0 or a percentage")
        return value
    try:
        return api_quantities.scaled_value(value, total=total, round_up=round_up)
    except ValueError as error:
        raise QuantityError(
            f"{error}; write a count such as 2 or a percentage such as '25%'"
        ) from None


def max_unavailable(value: IntOrPercent, *, total: int) -> int:
    """How many agents of a wave of `total` may be updating at once (at least 1)."""
    return max(1, scaled(value, total=total))


def max_failed(value: IntOrPercent, *, total: int) -> int:
    """How many failed activations a wave of `total` tolerates (0 means none)."""
    return scaled(value, total=total)
