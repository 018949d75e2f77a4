"""Int-or-percent resolution rounds like Kubernetes."""

from __future__ import annotations

import pytest

from edgewave_operator.planning import quantities


@pytest.mark.parametrize(
    ("value", "total", "unavailable", "failed"),
    [
        (1, 6, 1, 1),
        (3, 6, 3, 3),
        ("50%", 6, 3, 3),
        ("25%", 6, 1, 1),  # 1.5 rounds down
        ("10%", 6, 1, 0),  # 0.6 rounds down; maxUnavailable is at least 1
        ("0%", 6, 1, 0),
        (0, 6, 1, 0),
        ("100%", 7, 7, 7),
        ("33%", 1000, 330, 330),
        ("50%", 0, 1, 0),
    ],
)
def test_resolution(
    *, value: quantities.IntOrPercent, total: int, unavailable: int, failed: int
) -> None:
    assert quantities.max_unavailable(value, total=total) == unavailable
    assert quantities.max_failed(value, total=total) == failed


def test_round_up_when_asked() -> None:
    assert quantities.scaled("25%", total=6, round_up=True) == 2


@pytest.mark.parametrize("value", ["150%", "abc", "5", "-1%", -1, "1.5%"])
def test_invalid_values_are_permanent_errors(value: quantities.IntOrPercent) -> None:
    with pytest.raises(quantities.QuantityError) as raised:
        quantities.scaled(value, total=10)
    assert not raised.value.temporary
