"""The seam for metrics and tracing: what the agent reports while it works.

The agent calls an `Observer` at each event (an inference served, bytes of a push
received, a push or an activation finished, the active version changed). The default
observer does nothing; `edgewave_agent.metrics.AgentMetrics` (Prometheus) has the same
methods and is passed to `AgentServer(observer=...)`. Tracing joins through gRPC server
interceptors (`AgentServer(interceptors=...)`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Observer(Protocol):
    def observe_inference(self, *, model: str, version: str, seconds: float, ok: bool) -> None:
        """One inference request on `model:version` took `seconds`."""

    def set_active(self, *, model: str, version: str, backend: str, digest: str) -> None:
        """`model` now serves `version`."""

    def clear_active(self, model: str) -> None:
        """`model` serves nothing any more."""

    def track_store_bytes(self, used_bytes: Callable[[], float]) -> None:
        """Read the store's size from `used_bytes` when needed (thread-safe)."""

    def push_received(self, amount: int) -> None:
        """`amount` bytes of a push arrived."""

    def push_finished(self, *, result: str) -> None:
        """A push ended: `stored`, `rejected` or `interrupted`."""

    def activation_finished(self, *, result: str) -> None:
        """An activation ended: `activated`, `refused`, `failed` or `rolled_back`."""


class NullObserver:
    """Observes nothing."""

    def observe_inference(self, *, model: str, version: str, seconds: float, ok: bool) -> None:
        del model, version, seconds, ok

    def set_active(self, *, model: str, version: str, backend: str, digest: str) -> None:
        del model, version, backend, digest

    def clear_active(self, model: str) -> None:
        del model

    def track_store_bytes(self, used_bytes: Callable[[], float]) -> None:
        del used_bytes

    def push_received(self, amount: int) -> None:
        del amount

    def push_finished(self, *, result: str) -> None:
        del result

    def activation_finished(self, *, result: str) -> None:
        del result
