"""Process identities and the children's environment."""

from __future__ import annotations

import os
import subprocess

import pytest

from edgewave_operator.devcluster import processes


def test_identity_of_this_process_is_stable_and_running() -> None:
    identity = processes.identity_of(os.getpid())
    assert identity is not None
    assert identity == processes.identity_of(os.getpid())
    assert processes.is_running(identity)


def test_a_recycled_pid_is_not_the_same_process() -> None:
    identity = processes.identity_of(os.getpid())
    assert identity is not None
    recycled = processes.Identity(pid=identity.pid, start_time=identity.start_time + 1)
    assert not processes.is_running(recycled)


def test_an_exited_process_has_no_identity() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert processes.identity_of(child.pid) is None


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ({}, "127.0.0.1,localhost,::1"),
        ({"NO_PROXY": "corp.example"}, "corp.example,127.0.0.1,localhost,::1"),
        ({"NO_PROXY": "localhost,127.0.0.1"}, "localhost,127.0.0.1,::1"),
    ],
)
def test_children_never_proxy_loopback(base: dict[str, str], expected: str) -> None:
    env = processes.child_environment({"HTTPS_PROXY": "http://proxy:3128", **base})
    assert env["NO_PROXY"] == expected
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
