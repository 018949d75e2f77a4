"""On-agent builds are bounded: one at a time, and never without a timeout."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgewave_agent import building, errors
from edgewave_agent.store import Store


@pytest.mark.parametrize(
    ("requested", "applied"),
    [
        (None, building.DEFAULT_BUILD_TIMEOUT_S),
        (0.0, building.DEFAULT_BUILD_TIMEOUT_S),
        (-5.0, building.DEFAULT_BUILD_TIMEOUT_S),
        (60.0, 60.0),
        (1e12, building.MAX_BUILD_TIMEOUT_S),
    ],
)
def test_every_build_has_a_bounded_timeout(requested: float | None, applied: float) -> None:
    assert building.build_timeout(requested) == applied


def test_a_second_concurrent_build_is_refused_as_busy(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", quota_bytes=1 << 20)
    try:
        assert building._BUILDS.acquire(blocking=False)  # a build is running
        try:
            with pytest.raises(errors.ActivationBusy, match="running 1 build") as caught:
                building.build(store=store, spec_json="{}", workdir=tmp_path, timeout_s=None)
            assert caught.value.temporary
        finally:
            building._BUILDS.release()
        # Free again: the same request now reaches the spec check.
        with pytest.raises(errors.InvalidRequest):
            building.build(store=store, spec_json="{}", workdir=tmp_path, timeout_s=None)
    finally:
        store.close()
