"""The planner's rollout phases are written into status by value
(`rendering`: `RolloutPhase(current.phase.value)`), so each must exist in the API's enum,
or a status write would fail at run time."""

from __future__ import annotations

import pytest

from edgewave_api import modelrollout
from edgewave_operator.planning import progress


@pytest.mark.parametrize("phase", list(progress.Phase))
def test_every_planner_phase_is_an_api_phase(phase: progress.Phase) -> None:
    assert modelrollout.RolloutPhase(phase.value).value == phase.value
