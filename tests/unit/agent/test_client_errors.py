"""The operator-side mapping of agent statuses to domain errors (temporary vs permanent)."""

from __future__ import annotations

import grpc
import pytest

from edgewave_operator.agents import errors


def rpc_error(code: grpc.StatusCode, details: str, **trailing: str) -> grpc.aio.AioRpcError:
    metadata = grpc.aio.Metadata(*((k.replace("_", "-"), v) for k, v in trailing.items()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), metadata, details, None)


@pytest.mark.parametrize(
    ("code", "kind", "temporary"),
    [
        (grpc.StatusCode.UNAVAILABLE, errors.AgentUnavailable, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.AgentUnavailable, True),
        (grpc.StatusCode.ABORTED, errors.AgentBusy, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.AgentStoreFull, True),
        (grpc.StatusCode.INTERNAL, errors.AgentInternalError, True),
        (grpc.StatusCode.DATA_LOSS, errors.ArtifactCorrupt, False),
        (grpc.StatusCode.UNAUTHENTICATED, errors.AgentNotAuthorized, False),
        (grpc.StatusCode.PERMISSION_DENIED, errors.AgentNotAuthorized, False),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.AgentRefused, False),
        (grpc.StatusCode.INVALID_ARGUMENT, errors.AgentRefused, False),
        (grpc.StatusCode.NOT_FOUND, errors.AgentRefused, False),
    ],
)
def test_statuses_become_classified_errors(
    code: grpc.StatusCode, kind: type[errors.AgentError], temporary: bool
) -> None:
    with pytest.raises(kind) as caught, errors.translated(agent="edge-7", call="Push"):
        raise rpc_error(code, "what to do next")
    error = caught.value
    assert error.temporary is temporary
    assert (error.code, error.agent, error.call) == (code.name, "edge-7", "Push")
    assert str(error) == f"agent edge-7: Push failed ({code.name}): what to do next"


def test_out_of_order_push_carries_the_expected_offset() -> None:
    error = errors.from_rpc_error(
        rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "gap", edgewave_expected_offset="4096"),
        agent="a",
        call="Push",
    )
    assert isinstance(error, errors.PushOutOfOrder)
    assert error.expected_offset == 4096 and error.temporary


def test_retry_after_comes_from_the_agent() -> None:
    error = errors.from_rpc_error(
        rpc_error(grpc.StatusCode.ABORTED, "busy", edgewave_retry_after="2"), agent="a", call="x"
    )
    assert error.retry_after == 2.0
