"""The planner's rollout phases are written into status by value
(`rendering`: `RolloutPhase(current.phase.value)`), so each must exist in the API's enum,
or a status write would fail at run time."""

from __future__ import annotations

from edgewave_api import modelrollout
from edgewave_operator.planning import progress


def test_every_planner_phase_is_an_api_phase() -> None:
    api = {phase.value: phase.name for phase in modelrollout.RolloutPhase}
    planner = {phase.value: phase.name for phase in progress.Phase}
    missing = sorted(set(planner) - set(api))
    assert not missing, f"planner phases the API cannot store: {missing}"
    # Same value under the same name, so both read alike in code.
    assert planner.items() <= api.items()
    # And back: `parsing.progress_of` reads a stored phase as a planner phase; `Compiling`
    # is the one API phase the planner has no twin for (no operator writes it today).
    assert set(api) - set(planner) == {modelrollout.RolloutPhase.COMPILING.value}
