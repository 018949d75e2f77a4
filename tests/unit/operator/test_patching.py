"""Status merge patches remove what the new status no longer has."""

from __future__ import annotations

import pytest

from edgewave_operator.kube import patching


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        (None, {"phase": "Progressing"}, {"phase": "Progressing"}),
        ({"phase": "Progressing", "currentWave": "eu"}, {"phase": "Succeeded"},
         {"phase": "Succeeded", "currentWave": None}),
        ({"a": 1}, {"a": 1}, {"a": 1}),
        # A nested key that vanished is removed too (a merge patch merges objects).
        ({"control": {"paused": True, "awaitingApproval": "eu"}}, {"control": {"paused": True}},
         {"control": {"paused": True, "awaitingApproval": None}}),
        ({"control": {"x": {"y": 1}}}, {"control": {"x": {}}}, {"control": {"x": {"y": None}}}),
        ({"waves": [{"name": "a"}]}, {"waves": []}, {"waves": []}),
    ],
)  # fmt: skip
def test_merge_patch(
    old: dict[str, object] | None, new: dict[str, object], patch: dict[str, object]
) -> None:
    assert patching.merge_patch(old, new) == patch
