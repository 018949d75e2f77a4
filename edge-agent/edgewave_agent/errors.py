"""The agent's typed errors, each with the gRPC status it is reported with.

Raised where a failure is detected (store, serving, backends) and turned into a status in
exactly one place (`service.abort_with`). The status is named as a string so pure modules
raise these without importing grpc. Messages say what is wrong and what to do.
"""

from __future__ import annotations

from typing import ClassVar

from edgewave_api.errors import EdgewaveError, PermanentError, TemporaryError


class AgentError(EdgewaveError):
    """Base of the agent's errors; `status` is a grpc.StatusCode name."""

    status: ClassVar[str] = "INTERNAL"


class InvalidRequest(AgentError, PermanentError):
    status = "INVALID_ARGUMENT"


class InvalidDigest(InvalidRequest):
    """A digest that is not 64 lowercase hex characters (sha256)."""


class DigestMismatch(AgentError, PermanentError):
    """The bytes received do not hash to the declared digest (corrupt or wrong artifact)."""

    status = "DATA_LOSS"


class OffsetMismatch(AgentError, PermanentError):
    """A chunk does not start where the verified bytes end (a gap or an overlap)."""

    status = "FAILED_PRECONDITION"

    def __init__(self, message: str, *, expected_offset: int) -> None:
        super().__init__(message)
        self.expected_offset = expected_offset


class SizeConflict(AgentError, PermanentError):
    """The declared total size differs from the one of the partial upload being resumed."""

    status = "FAILED_PRECONDITION"


class SizeExceeded(AgentError, PermanentError):
    """More bytes than declared, or an artifact larger than this agent accepts."""

    status = "RESOURCE_EXHAUSTED"


class QuotaExceeded(AgentError, TemporaryError):
    """The store's disk quota cannot take the artifact (even after garbage collection)."""

    status = "RESOURCE_EXHAUSTED"


class PushInProgress(AgentError, TemporaryError):
    """Another push of the same digest is running; this one is refused, not merged."""

    status = "ABORTED"


class ArtifactMissing(AgentError, PermanentError):
    """An activation or build names a digest that is not stored completely."""

    status = "FAILED_PRECONDITION"


class UnknownModel(AgentError, PermanentError):
    status = "NOT_FOUND"


class VersionConflict(AgentError, PermanentError):
    """A version already known with another digest or backend (versions are immutable)."""

    status = "ALREADY_EXISTS"


class NothingToRollBack(AgentError, PermanentError):
    status = "FAILED_PRECONDITION"


class RemoveRefused(AgentError, PermanentError):
    """Removing the active or previous version is refused (they are needed for rollback)."""

    status = "FAILED_PRECONDITION"


class ActivationBusy(AgentError, TemporaryError):
    """Another activation, rollback or removal of the same model is running."""

    status = "ABORTED"


class BackendUnavailable(AgentError, PermanentError):
    """The backend is not installed on this agent, or cannot run here (no GPU)."""

    status = "FAILED_PRECONDITION"


class EngineDoesNotFit(AgentError, PermanentError):
    """The engine was built for another GPU or runtime version than this agent has."""

    status = "FAILED_PRECONDITION"


class LoadFailed(AgentError, PermanentError):
    """The backend could not load the artifact; the previous version keeps serving."""

    status = "FAILED_PRECONDITION"


class ProbeFailed(AgentError, PermanentError):
    """The loaded model failed its warm-up or health probe; the previous version keeps serving."""

    status = "FAILED_PRECONDITION"


class BuildFailed(AgentError, PermanentError):
    status = "FAILED_PRECONDITION"


class Unauthenticated(AgentError, PermanentError):
    status = "UNAUTHENTICATED"


class PermissionDenied(AgentError, PermanentError):
    """The caller is authenticated but its role may not make this call."""

    status = "PERMISSION_DENIED"


class SignatureInvalid(AgentError, PermanentError):
    status = "PERMISSION_DENIED"


class GrantRefused(AgentError, PermanentError):
    """The call's grant does not permit it: another agent, action or target, expired,
    or replayed (`highest_sequence`: the highest the agent accepted for the model)."""

    status = "PERMISSION_DENIED"

    def __init__(self, message: str, *, highest_sequence: int | None = None) -> None:
        super().__init__(message)
        self.highest_sequence = highest_sequence


class TooManyStreams(AgentError, TemporaryError):
    """Every WatchStatus stream the agent allows is open."""

    status = "RESOURCE_EXHAUSTED"


class AgentStarting(AgentError, TemporaryError):
    """The agent is still loading its active models after a restart."""

    status = "UNAVAILABLE"


class ModelNotReady(AgentError, TemporaryError):
    """Inference for a model (or version) that is not loaded."""

    status = "UNAVAILABLE"


class InferenceFailed(AgentError, PermanentError):
    status = "INTERNAL"


class OwnerConflict(AgentError, PermanentError):
    """The model is held for another rollout (or the request names none)."""

    status = "FAILED_PRECONDITION"
