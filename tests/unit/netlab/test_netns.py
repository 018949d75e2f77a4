"""The namespace harness's pure parts: the root gate, /proc socket decoding, /30 choice."""

from __future__ import annotations

import ipaddress
import os
import random

import pytest

from tests.netlab import netns


def test_without_root_the_tests_fail_unless_a_developer_opts_out() -> None:
    assert netns.gate(None, {}) == ("run", "")
    action, why = netns.gate("network namespace tests need root", {})
    assert action == "fail"
    assert "need root" in why and netns.OPT_OUT_ENV in why
    assert netns.gate("no root", {netns.OPT_OUT_ENV: "0"})[0] == "fail"
    action, why = netns.gate("no root", {netns.OPT_OUT_ENV: "1"})
    assert action == "skip" and "opted out" in why


def test_unavailable_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "need root" in (netns.unavailable_reason() or "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0100007F:1F90", ("127.0.0.1", 8080)),
        ("0000000000000000FFFF00002A72D50A:A240", ("10.213.114.42", 41536)),
        ("00000000000000000000000001000000:0050", ("::1", 80)),
    ],
)
def test_proc_net_tcp_endpoints_are_decoded(text: str, expected: tuple[str, int]) -> None:
    assert netns._endpoint(text) == expected


def test_a_chosen_slash30_never_overlaps_one_in_use() -> None:
    pool = ipaddress.IPv4Network("10.213.7.0/27")
    blocks = list(pool.subnets(new_prefix=30))
    taken = [*blocks[:5], *blocks[6:]]
    for seed in range(20):
        assert netns._free_slash30(taken, random.Random(seed), pool) == blocks[5]
    with pytest.raises(netns.NetnsError, match="no free /30"):
        netns._free_slash30(blocks, random.Random(1), pool)
    # A wider network in use covers every /30 inside it.
    wide = [ipaddress.IPv4Network("10.213.0.0/17")]
    for seed in range(50):
        assert not netns._free_slash30(wide, random.Random(seed)).overlaps(wide[0])
