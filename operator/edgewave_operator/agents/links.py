"""The one narrow interface through which the operator acts on an agent.

The executor and the inventory never dial `spec.endpoint` themselves: they ask `Links`
for an agent's `Link` and call its methods. Today the inventory provides links that are
direct gRPC `AgentClient`s; routing through an edge gateway (issue #15) means providing
another `Links`, with no change to what the executor decides or does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from edgewave_api import edgeagent
from edgewave_operator.agents import client as agent_client
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.planning import ownership
from edgewave_proto.agent.v1 import agent_pb2 as pb


class Link(Protocol):
    """The calls the operator makes on one agent (`AgentClient` is one)."""

    name: str

    async def describe(self) -> pb.DescribeResponse: ...

    async def stat(self, digest: str) -> pb.StatResponse: ...

    async def push(self, artifact: Artifact) -> agent_client.PushResult: ...

    # Every mutating call carries `rollout`, the uid of the rollout it is for, and activate
    # and remove its `owner` (namespace/name): the operator's signed grant binds the call to
    # both (`edgewave_api.grants`), and the agent records the owner from the grant.
    async def activate(
        self, *, model: str, version: str, digest: str, backend: str, rollout: str,
        deadline_seconds: float | None = None, owner: ownership.Owner | None = None,
    ) -> pb.ActivateResponse: ...  # fmt: skip

    async def rollback(self, model: str, *, rollout: str) -> pb.RollbackResponse: ...

    async def remove(
        self, model: str, *, rollout: str, version: str | None = None,
        digest: str | None = None, owner: ownership.Owner | None = None,
    ) -> pb.RemoveResponse: ...  # fmt: skip

    async def remove_model(
        self, model: str, *, rollout: str, owner: ownership.Owner | None = None
    ) -> pb.RemoveResponse: ...

    async def status(self) -> pb.StatusUpdate: ...

    def watch_status(
        self, *, interval_seconds: float = 0.0, once: bool = False
    ) -> AsyncIterator[pb.StatusUpdate]: ...

    async def build(
        self, spec_json: str, *, rollout: str = "", timeout_seconds: float = 0.0
    ) -> pb.BuildResponse: ...

    async def close(self) -> None: ...


class Links(Protocol):
    """How the executor reaches agents and what it may know about them while acting."""

    async def link(self, name: str) -> Link:
        """The agent's link (made once, reused)."""
        ...

    async def refresh(self, name: str) -> edgeagent.EdgeAgentStatus | None:
        """Ask the agent what it holds now (after acting on it)."""
        ...

    def region_of(self, name: str) -> str:
        """The agent's declared region ("" once it is gone), for metrics."""
        ...

    def held(self, name: str, model: str) -> tuple[edgeagent.HeldModel, ...]:
        """The versions of `model` the agent last said it holds (empty when unknown)."""
        ...
