"""Int-or-percent quantities (`maxUnavailable: 2` or `"25%"`) and their resolution to counts.

Pure. `IntOrPercent` is the field type: a non-negative integer or a percentage string from
`0%` to `100%`, validated the same way in Python and by the API server (one CEL rule).
`scaled_value` turns one into a count of a given total, as Kubernetes' intstr does.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, Field

from edgewave_api import markers

PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")

INT_OR_PERCENT_RULE = markers.Rule(
    rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",
    message="must be a non-negative integer or a percentage from 0% to 100%, such as 25%",
)


def _check(value: int | str) -> int | str:
    if isinstance(value, bool):
        raise ValueError("must be an integer or a percentage string, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(INT_OR_PERCENT_RULE.message)
        return value
    if not PERCENT.match(value):
        raise ValueError(INT_OR_PERCENT_RULE.message)
    return value


IntOrPercent = Annotated[
    Annotated[int, Field(strict=True)] | Annotated[str, Field(strict=True)],
    AfterValidator(_check),
    markers.IntOrString(max_length=4),
    INT_OR_PERCENT_RULE,
]
"""A count (`2`) or a share of a total (`"25%"`, at most `"100%"`)."""


def scaled_value(value: int | str, *, total: int, round_up: bool) -> int:
    """`value` as a count out of `total`: integers as they are, percentages of `total`.

    Rounds as Kubernetes does: up for surge-like limits, down for unavailability limits.
    """
    if isinstance(value, int):
        return value
    match = PERCENT.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a percentage from 0% to 100%")
    share = int(match.group(1)) * total / 100
    return math.ceil(share) if round_up else math.floor(share)
