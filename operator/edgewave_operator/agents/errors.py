"""The one place a grpc.RpcError from an agent becomes a domain error.

Each status is classified where it enters the operator: temporary (the agent is down or
busy, a push can resume: retry with `retry_after`) or permanent (the agent refused the
input: record a condition, do not retry). The agent's message, which says what to do, is
kept; the agent and the call are named in front of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

from edgewave_api.errors import EdgewaveError, PermanentError, TemporaryError
from edgewave_proto.agent.v1 import wire

EXPECTED_OFFSET_KEY = wire.EXPECTED_OFFSET_KEY
RETRY_AFTER_KEY = wire.RETRY_AFTER_KEY
HIGHEST_SEQUENCE_KEY = wire.HIGHEST_SEQUENCE_KEY


class AgentError(EdgewaveError):
    """An agent call failed; `code` is the gRPC status name."""

    code: str = "UNKNOWN"
    agent: str = ""
    call: str = ""
    # A grant refused as stale: the highest sequence the agent accepted for the model.
    highest_sequence: int | None = None


class AgentUnavailable(AgentError, TemporaryError):
    """The agent cannot be reached or did not answer in time."""


class AgentBusy(AgentError, TemporaryError):
    """The agent is busy with the same artifact or model (ABORTED): retry shortly."""


class AgentStoreFull(AgentError, TemporaryError):
    """The agent's store quota or disk cannot take the artifact (RESOURCE_EXHAUSTED)."""


class PushOutOfOrder(AgentError, TemporaryError):
    """A chunk did not start where the agent's verified bytes end; resume from there."""

    expected_offset: int | None = None


class ArtifactCorrupt(AgentError, PermanentError):
    """The bytes the agent received do not hash to the digest (DATA_LOSS)."""


class AgentNotAuthorized(AgentError, PermanentError):
    """Missing client certificate or a bad activation signature."""


class AgentRefused(AgentError, PermanentError):
    """The agent refused the request: bad input, engine does not fit, failed probe, ..."""


class AgentInternalError(AgentError, TemporaryError):
    """The agent failed unexpectedly (INTERNAL/UNKNOWN)."""


_TEMPORARY: dict[grpc.StatusCode, type[AgentError]] = {
    grpc.StatusCode.UNAVAILABLE: AgentUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: AgentUnavailable,
    grpc.StatusCode.CANCELLED: AgentUnavailable,
    grpc.StatusCode.ABORTED: AgentBusy,
    grpc.StatusCode.RESOURCE_EXHAUSTED: AgentStoreFull,
    grpc.StatusCode.INTERNAL: AgentInternalError,
    grpc.StatusCode.UNKNOWN: AgentInternalError,
}
_PERMANENT: dict[grpc.StatusCode, type[AgentError]] = {
    grpc.StatusCode.DATA_LOSS: ArtifactCorrupt,
    grpc.StatusCode.UNAUTHENTICATED: AgentNotAuthorized,
    grpc.StatusCode.PERMISSION_DENIED: AgentNotAuthorized,
}


def _metadata(error: grpc.RpcError, key: str) -> str | None:
    trailing = getattr(error, "trailing_metadata", None)
    for item_key, value in (trailing() if callable(trailing) else None) or ():
        if item_key == key:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def from_rpc_error(error: grpc.RpcError, *, agent: str, call: str) -> AgentError:
    code: grpc.StatusCode = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or code.name
    message = f"agent {agent}: {call} failed ({code.name}): {details}"
    expected = _metadata(error, EXPECTED_OFFSET_KEY)
    result: AgentError
    if code == grpc.StatusCode.FAILED_PRECONDITION and expected is not None:
        result = PushOutOfOrder(message)
        result.retry_after = 0.0
        result.expected_offset = int(expected)
    elif code in _TEMPORARY:
        result = _TEMPORARY[code](message)
        result.retry_after = float(_metadata(error, RETRY_AFTER_KEY) or 5.0)
    else:
        result = _PERMANENT.get(code, AgentRefused)(message)
    result.code = code.name
    result.agent = agent
    result.call = call
    highest = _metadata(error, HIGHEST_SEQUENCE_KEY)
    if highest is not None and highest.isdigit():
        result.highest_sequence = int(highest)
    return result


@contextlib.contextmanager
def translated(*, agent: str, call: str) -> Iterator[None]:
    """Run an agent call; any RpcError leaves as the matching AgentError."""
    try:
        yield
    except grpc.RpcError as error:
        raise from_rpc_error(error, agent=agent, call=call) from None
