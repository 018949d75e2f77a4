"""The dashboard's watchers against the real API server: resuming, and saying when stale."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import yaml

from edgewave_api import kubeyaml
from edgewave_operator.dashboard import mirrors, watching
from edgewave_operator.devcluster import clusters
from edgewave_operator.kube import clients

pytestmark = pytest.mark.integration
WITHIN = 30.0


async def _until(mirror: mirrors.Mirror, check: object, *, within: float = WITHIN) -> None:
    """Wait for `check()` to hold, waking on each change of the mirror (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():  # type: ignore[operator]
        left = deadline - loop.time()
        assert left > 0, "the mirror did not change as expected in time"
        await mirror.wait(mirror.version, within=min(left, 1.0))


async def _run(kubeconfig: Path, body: object) -> None:
    api = await clients.connect(kubeconfig)
    mirror = mirrors.Mirror()
    tasks = watching.start(api, mirror)
    try:
        await body(mirror)  # type: ignore[operator]
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await api.close()


def test_watches_resume_after_the_server_ends_them(
    crds: clusters.DevCluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each watch lasts one second: the agent below arrives through a resumed watch.
    monkeypatch.setattr(watching, "WATCH_SECONDS", 1)
    name = f"resumed-{namespace.rsplit('-', 1)[-1]}"
    agent = {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "EdgeAgent",
        "metadata": {"name": name},
        "spec": {"endpoint": f"{name}:7443", "region": "eu-west"},
    }

    async def body(mirror: mirrors.Mirror) -> None:
        await _until(mirror, lambda: "edgeagents" not in mirror.problems and mirror.version >= 4)
        await asyncio.sleep(2.5)  # past two watch renewals
        assert ("", name) not in mirror.agents.items
        await asyncio.to_thread(crds.kubectl, "apply", "-f", "-", input=kubeyaml.dump(agent))
        await _until(mirror, lambda: ("", name) in mirror.agents.items)
        await asyncio.to_thread(crds.kubectl, "delete", "edgeagent", name, "--wait=false")
        await _until(mirror, lambda: ("", name) not in mirror.agents.items)
        assert mirror.problem is None

    asyncio.run(_run(crds.kubeconfig, body))


def test_an_unreachable_api_server_marks_the_data_stale(
    crds: clusters.DevCluster, tmp_path: Path
) -> None:
    config = yaml.safe_load(crds.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeyaml.dump(config))

    async def body(mirror: mirrors.Mirror) -> None:
        await _until(mirror, lambda: len(mirror.problems) == 4)
        assert "cannot reach the API server at https://127.0.0.1:1" in (mirror.problem or "")
        assert mirror.rollouts.items == {}

    asyncio.run(_run(kubeconfig, body))
