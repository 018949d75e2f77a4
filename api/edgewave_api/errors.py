"""The root of Edgewave's user-facing errors.

Every error a person can act on derives from `EdgewaveError`; its message says what is
wrong and what to do. `temporary` tells a reconciler whether to retry (with `retry_after`)
or to record a condition and stop, so a bad input never becomes a crash loop.
"""

from __future__ import annotations


class EdgewaveError(Exception):
    """An error with an actionable, one-line message."""

    temporary: bool = False
    retry_after: float | None = None


class TemporaryError(EdgewaveError):
    """Worth retrying: the world may change (an agent comes back, a lock is freed)."""

    temporary = True

    def __init__(self, message: str, *, retry_after: float = 10.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(EdgewaveError):
    """Retrying the same input cannot help: the input or the environment must change."""
