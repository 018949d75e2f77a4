"""Serving in-process (no gRPC): activation, restore after restart, GC, observer events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgewave_agent import backends, errors, serving, settings, testing
from edgewave_agent.serving import activating
from edgewave_agent.store import Store
from edgewave_api import signing

KEY = signing.new_signing_key()


class Recorder:
    """Records observer events (a real implementation of the protocol, not a mock)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def observe_inference(self, *, model: str, version: str, seconds: float, ok: bool) -> None:
        self.events.append(("inference", (model, version, ok)))

    def set_active(self, *, model: str, version: str, backend: str, digest: str) -> None:
        self.events.append(("active", (model, version)))

    def clear_active(self, model: str) -> None:
        self.events.append(("cleared", model))

    def track_store_bytes(self, used_bytes: Any) -> None:
        self.events.append(("store", None))

    def push_received(self, amount: int) -> None:
        self.events.append(("received", amount))

    def push_finished(self, *, result: str) -> None:
        self.events.append(("push", result))

    def activation_finished(self, *, result: str) -> None:
        self.events.append(("activation", result))


class Agent:
    """A store and a Serving over one data directory, reopened like a restarted agent."""

    def __init__(self, directory: Path, **config: Any) -> None:
        self.directory = directory
        self.config = settings.parse(
            {
                "agent_id": "unit",
                "data_dir": str(directory),
                "insecure": True,
                "activation_public_key_pem": KEY.public_pem.decode(),
                "probe": {"warmup_runs": 1, "probe_runs": 1},
                **config,
            }
        )
        self.recorder = Recorder()
        self.now = time.time()  # artifacts are pinned by file mtime: wall-clock based
        self.open()

    def open(self) -> None:
        self.store = Store(
            self.directory / "store",
            quota_bytes=int(self.config.store.quota_bytes),
            checkpoint_bytes=int(self.config.store.checkpoint_bytes),
        )
        self.serving = serving.Serving(
            config=self.config,
            store=self.store,
            backends=backends.installed(),
            gpus=[],
            clock=lambda: self.now,
            observer=self.recorder,
        )

    def restart(self) -> list[str]:
        self.close()
        self.open()
        return self.serving.restore()

    def close(self) -> None:
        self.serving.close()
        self.store.close()

    def add(self, data: bytes) -> str:
        source = self.directory / "incoming.bin"
        source.write_bytes(data)
        digest, _ = self.store.import_file(source)
        return digest

    def activate(self, version: str, data: bytes, *, model: str = "m") -> activating.Activation:
        digest = self.add(data)
        return self.serving.activate(
            model=model, version=version, digest=digest, backend="onnxruntime"
        )

    def infer(self, model: str = "m") -> tuple[str, float]:
        version, outputs = self.serving.infer(
            model, version="", inputs={"x": np.ones((1, 4), dtype=np.float32)}
        )
        return version, float(outputs["y"][0, 0])


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    made = Agent(tmp_path)
    yield made
    made.close()


def model(scale: float) -> bytes:
    return testing.linear_model(scale=scale)


def test_activation_swaps_and_reports(agent: Agent) -> None:
    first = agent.activate("1", model(1.0))
    assert (first.previous_version, first.unchanged) == ("", False)
    assert agent.infer() == ("1", 1.25)
    second = agent.activate("2", model(2.0))
    assert second.previous_version == "1"
    assert agent.infer() == ("2", 2.25)
    assert agent.activate("2", model(2.0)).unchanged
    events = agent.recorder.events
    assert ("active", ("m", "2")) in events
    assert events.count(("activation", "activated")) == 3
    assert ("inference", ("m", "2", True)) in events


def test_restart_restores_active_and_falls_back_when_it_no_longer_loads(agent: Agent) -> None:
    agent.activate("1", model(1.0))
    second = agent.activate("2", model(2.0))
    assert agent.restart() == []
    assert agent.infer() == ("2", 2.25)
    assert agent.serving.all_ready()
    # The active version's artifact disappears while the agent is down.
    blob = agent.store.blob_path(second.view.active.digest)  # type: ignore[union-attr]
    blob.chmod(0o644)
    blob.write_bytes(b"corrupt")
    problems = agent.restart()
    assert len(problems) == 1 and "m:2 did not load after restart" in problems[0]
    assert agent.infer() == ("1", 1.25)
    states = {v.ref.version: v.state for v in agent.serving.view("m").versions}
    assert states == {"1": "active", "2": "failed"}


def test_busy_model_refuses_a_second_change(agent: Agent) -> None:
    agent.activate("1", model(1.0))
    agent.serving.claims.claim("m")
    with pytest.raises(errors.ActivationBusy):
        agent.activate("2", model(2.0))
    assert agent.recorder.events[-1] == ("activation", "refused")


def test_retention_keeps_the_last_versions(tmp_path: Path) -> None:
    agent = Agent(tmp_path, store={"keep_versions": 2, "pin_seconds": 60})
    try:
        digests = [agent.activate(str(i), model(float(i))).view.active.digest for i in range(1, 4)]  # type: ignore[union-attr]
        agent.now += 3600  # the first artifacts are no longer freshly pushed
        agent.activate("4", model(4.0))
        held = {v.ref.version for v in agent.serving.view("m").versions}
        assert held == {"3", "4"}
        assert not agent.store.has(digests[0]) and not agent.store.has(digests[1])
        assert agent.store.has(digests[2])
    finally:
        agent.close()


def test_inference_errors_are_counted(agent: Agent) -> None:
    agent.activate("1", model(1.0))
    with pytest.raises(errors.InvalidRequest):
        agent.serving.infer("m", version="", inputs={"nope": np.ones((1, 4), dtype=np.float32)})
    health = agent.serving.view("m").health
    assert (health.requests, health.errors) == (1, 1)
    with pytest.raises(errors.ModelNotReady, match="not active"):
        agent.infer("other")


def test_gc_spares_models_being_changed_and_artifacts_being_loaded(tmp_path: Path) -> None:
    agent = Agent(tmp_path, store={"pin_seconds": 0})
    try:
        active = agent.activate("1", model(1.0)).view.active
        assert active is not None
        loading = agent.add(model(7.0))
        stray = agent.add(model(8.0))
        agent.now = time.time() + 10  # nothing is freshly pushed any more
        agent.serving.claims.claim("m")  # an activation of m is running
        agent.serving.claims.pin(loading)  # ... and is loading this artifact
        agent.serving.collect_garbage()
        assert agent.store.has(active.digest) and agent.store.has(loading)
        assert not agent.store.has(stray)  # unreferenced, not pinned, not in use
        agent.serving.claims.release("m")
        assert agent.infer() == ("1", 1.25)
    finally:
        agent.close()
