"""The compiler's typed errors, classified where they enter: temporary (retry) or permanent.

Each message says what is wrong and what to do, in one line, because it ends up in a
ModelRollout condition, a Kubernetes Event or the one line `edgewave compile` prints.
"""

from __future__ import annotations

from edgewave_api.errors import EdgewaveError, PermanentError, TemporaryError

__all__ = [
    "BackendUnavailable",
    "BuildCrashed",
    "BuildFailed",
    "DigestMismatch",
    "EdgewaveError",
    "InvalidModel",
    "InvalidShapeProfile",
    "MissingShapeProfile",
    "ModelFetchError",
    "ModelNotFound",
    "ModelTooLarge",
    "PermanentError",
    "TemporaryError",
    "UnsupportedOperator",
    "UnsupportedOpset",
    "UnsupportedPrecision",
    "UnsupportedUri",
    "from_wire",
    "to_wire",
]


class ModelFetchError(TemporaryError):
    """The model could not be downloaded (network, server error, short read): retry later."""


class ModelNotFound(PermanentError):
    """The model URI names nothing (missing file, HTTP 404/403): fix `spec.model.uri`."""


class UnsupportedUri(PermanentError):
    """A URI scheme this compiler cannot fetch."""


class DigestMismatch(PermanentError):
    """The fetched bytes are not the model the spec names."""

    def __init__(self, *, uri: str, expected: str) -> None:
        # Never the digest of what arrived: echoed into a status anyone may read, it would be
        # an oracle for the content of any file or URL the fetcher can reach.
        super().__init__(
            f"model {uri} does not have the sha256 spec.model.sha256 names ({expected}): set"
            " sha256 to the digest of the intended file (`sha256sum MODEL.onnx`) or point uri"
            " at the right file"
        )
        self.expected = expected


class ModelTooLarge(PermanentError):
    """The model is over the fetch size limit."""


class InvalidModel(PermanentError):
    """The bytes are not a valid ONNX model (truncated, another format, fails the checker)."""


class UnsupportedOpset(PermanentError):
    """The model's opset is outside what the installed toolchain supports."""


class MissingShapeProfile(PermanentError):
    """A dynamic input has no optimization profile."""


class InvalidShapeProfile(PermanentError):
    """A profile names an unknown input or contradicts the model's static dimensions."""


class UnsupportedOperator(PermanentError):
    """A node the chosen backend cannot build."""

    def __init__(self, *, backend: str, node: str, op_type: str, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{backend} cannot build node {node!r} of type {op_type}{extra}: allow another"
            " backend in spec.build.backends, or re-export the model without this operator"
        )
        self.node = node
        self.op_type = op_type


class UnsupportedPrecision(PermanentError):
    """The requested precision cannot be produced from this model or for this target."""


class BackendUnavailable(PermanentError):
    """The backend's toolchain is not installed where the build runs."""


class BuildFailed(PermanentError):
    """The builder ran and refused the network; the message carries the builder's own error."""


class BuildCrashed(TemporaryError):
    """The build worker died without a result (killed, out of memory): retried later."""


def to_wire(error: EdgewaveError) -> dict[str, object]:
    """A JSON-able form that crosses the build worker's process boundary."""
    return {
        "type": type(error).__name__,
        "message": str(error),
        "temporary": error.temporary,
        "retry_after": error.retry_after,
    }


def from_wire(data: dict[str, object]) -> EdgewaveError:
    """The typed error a worker reported, as the same class when this module defines it."""
    message = str(data.get("message", "build failed"))
    temporary = bool(data.get("temporary", False))
    found = globals().get(str(data.get("type", "")))
    cls: type[EdgewaveError]
    if isinstance(found, type) and issubclass(found, EdgewaveError):
        cls = found
    else:
        cls = TemporaryError if temporary else PermanentError
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    retry_after = data.get("retry_after")
    if error.temporary and isinstance(retry_after, int | float):
        error.retry_after = float(retry_after)
    return error
