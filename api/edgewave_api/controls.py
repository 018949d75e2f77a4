"""The request a person makes of a running rollout, carried by one annotation. Pure.

`edgewave rollout pause|resume|promote|abort|retry|undo|restart` writes
`edgewave.io/request` on the ModelRollout: a small JSON document with the action, a nonce
and the `metadata.generation` the person saw. The operator answers each nonce once, in
`status.control.lastRequest`, so a request is applied exactly once (across operator
restarts too) and a request made against an older spec is refused. Annotations are not
in a GitOps source's manifest, so neither Argo CD nor Flux shows them as drift or removes
them; what the request changed lives in `status`, which they never write.
"""

from __future__ import annotations

import enum
import json
from typing import Annotated

from pydantic import Field, ValidationError

from edgewave_api import names
from edgewave_api.errors import PermanentError
from edgewave_api.meta import ApiModel

ANNOTATION = "edgewave.io/request"
MAX_BYTES = 1024
"""Longest annotation value read; a longer one is refused unparsed."""


class Action(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    ABORT = "abort"
    RETRY = "retry"
    UNDO = "undo"
    RESTART = "restart"


class Request(ApiModel):
    """One request, as written in the annotation."""

    action: Action
    """What to do."""
    nonce: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
    """Unique per request: the operator answers each nonce once."""
    generation: Annotated[int, Field(ge=0)]
    """The `metadata.generation` the request was made against (a newer spec refuses it)."""
    full: bool = False
    """promote: approve every remaining manual gate and skip pauses between waves."""
    to_version: names.ModelVersion | None = None
    """undo: the version to go back to (default: `status.previousVersion`)."""


class BadRequest(PermanentError):
    """The annotation is not a request (said in one line naming the field)."""


def parse(value: str) -> Request:
    """The annotation's request; `BadRequest` naming what is wrong."""
    if len(value.encode()) > MAX_BYTES:
        raise BadRequest(f"{ANNOTATION} is longer than {MAX_BYTES} bytes")
    try:
        return Request.model_validate(json.loads(value))
    except json.JSONDecodeError as error:
        raise BadRequest(f"{ANNOTATION} is not JSON ({error.msg})") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise BadRequest(f"{ANNOTATION}: {where}: {first['msg']}") from None


def render(request: Request) -> str:
    """The annotation value for `request`."""
    return json.dumps(request.model_dump(by_alias=True, exclude_none=True, mode="json"))
