"""`ApiException` -> classified Edgewave errors, in exactly one place.

Throttling, server errors and conflicts are temporary (retry, with the server's
Retry-After when it gives one); a forbidden call is permanent and says which permission
the operator's RBAC lacks; a missing object is reported as `NotFound` for callers that
treat absence as an answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TypeVar

from kubernetes_asyncio.client.exceptions import ApiException

from edgewave_api.errors import PermanentError, TemporaryError

T = TypeVar("T")


class NotFound(PermanentError):
    """The object does not exist."""


class Conflict(TemporaryError):
    """Someone else changed or created the object first; read it again and retry."""


def classify(error: ApiException, *, doing: str) -> PermanentError | TemporaryError:
    status = int(error.status or 0)
    reason = (error.reason or "").strip()
    if status == 404:
        return NotFound(f"{doing}: not found")
    if status == 409:
        return Conflict(f"{doing}: conflict ({reason}); retrying", retry_after=0.5)
    if status == 403:
        return PermanentError(
            f"{doing}: forbidden; grant the operator's ServiceAccount this permission "
            "(see the chart's ClusterRole)"
        )
    if status == 401:
        return PermanentError(f"{doing}: unauthorized; check the operator's credentials")
    if status in {400, 422}:
        body = error.body.decode(errors="replace") if isinstance(error.body, bytes) else error.body
        return PermanentError(f"{doing}: rejected by the API server: {body}")
    retry_after = 1.0
    headers: Mapping[str, str] = error.headers or {}
    if "Retry-After" in headers:
        try:
            retry_after = float(headers["Retry-After"])
        except ValueError:
            retry_after = 1.0
    return TemporaryError(
        f"{doing}: API server answered {status} {reason}; retrying", retry_after=retry_after
    )


async def call(awaitable: Awaitable[T], *, doing: str) -> T:
    """Await a kubernetes_asyncio call, raising classified errors."""
    try:
        return await awaitable
    except ApiException as error:
        raise classify(error, doing=doing) from None
    except OSError as error:
        raise TemporaryError(f"{doing}: cannot reach the API server ({error})") from None
