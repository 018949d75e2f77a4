"""Client traffic for the demo's agents, so that health gates have requests to measure.

A rollout's health gate needs samples (`minSamples`) of the new version's latency and
errors; in production they come from real clients. The demo runs this as a process of its
own (`python -m edgewave_operator.demo.traffic PLAN.json`), next to the agents, sending a
steady trickle of requests to every agent for every model. A request for a model the agent
does not serve yet is refused before it counts, so it never skews a gate.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pydantic
from tritonclient.utils import InferenceServerException

from edgewave_operator.demo import inference


class Target(pydantic.BaseModel):
    agent: str
    endpoint: str
    model: str
    shape: tuple[int, ...]


class Plan(pydantic.BaseModel):
    """What to send where (written by the demo, read here)."""

    ca_file: Path
    requests_per_second: float = pydantic.Field(default=2.0, gt=0)
    """Per target (agent and model)."""
    targets: list[Target]


@dataclass
class _Stop:
    requested: bool = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def run(plan: Plan) -> None:
    """Send requests round-robin at the plan's rate until SIGTERM or SIGINT."""
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    clients: dict[str, Any] = {}
    pixels = {t.model: inference.image(t.shape) for t in plan.targets}
    period = 1.0 / (plan.requests_per_second * max(1, len(plan.targets)))
    try:
        while not stop.requested:
            for target in plan.targets:
                if stop.requested:
                    break
                started = time.monotonic()
                client = clients.get(target.endpoint)
                if client is None:
                    client = clients[target.endpoint] = inference.connect(
                        target.endpoint, ca_file=plan.ca_file
                    )
                # Not served there (yet): such refusals are not counted by agents.
                with contextlib.suppress(InferenceServerException):
                    inference.ask(client, model=target.model, pixels=pixels[target.model])
                time.sleep(max(0.0, period - (time.monotonic() - started)))
    finally:
        for client in clients.values():
            client.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m edgewave_operator.demo.traffic PLAN.json", file=sys.stderr)
        return 2
    run(Plan.model_validate_json(Path(argv[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
