"""The gateway's typed errors, each with the gRPC status it is reported with.

Raised where a failure is detected (cache, delivery) and turned into a status in exactly one
place (`service.abort_with`); the message says what is wrong and what to do.
"""

from __future__ import annotations

from typing import ClassVar


class CacheError(Exception):
    status: ClassVar[str] = "INTERNAL"
    expected_offset: int | None = None


class InvalidRequest(CacheError):
    status = "INVALID_ARGUMENT"


class OffsetMismatch(CacheError):
    status = "FAILED_PRECONDITION"

    def __init__(self, message: str, *, expected_offset: int) -> None:
        super().__init__(message)
        self.expected_offset = expected_offset


class SizeConflict(CacheError):
    status = "FAILED_PRECONDITION"


class CacheFull(CacheError):
    status = "RESOURCE_EXHAUSTED"


class PushInProgress(CacheError):
    status = "ABORTED"


class DigestMismatch(CacheError):
    status = "DATA_LOSS"


class NotCached(CacheError):
    status = "FAILED_PRECONDITION"


class AgentOffline(CacheError):
    status = "UNAVAILABLE"


class AgentCallFailed(CacheError):
    """A call to the agent during a delivery failed; carries the agent's own status."""

    def __init__(self, message: str, *, status: str) -> None:
        super().__init__(message)
        self.status = status  # type: ignore[misc]
