"""Feed a `Mirror` from the API server: list each resource, then watch it from there.

One task per resource (ModelRollouts, EdgeAgents, ResidencyPolicies, and the core/v1
Events about ModelRollouts). Each watch lasts at most `WATCH_SECONDS` and resumes from the
last resourceVersion; an expired one (410 Gone) lists again. An API server that cannot be
reached, or refuses, is recorded in the mirror (the page shows it) and retried with a
delay that doubles up to `MAX_DELAY`; the tasks run until cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from edgewave_api import meta, modelrollout
from edgewave_operator.dashboard import mirrors

log = logging.getLogger(__name__)

WATCH_SECONDS = 120
FIRST_DELAY = 0.5
MAX_DELAY = 10.0
EVENT_SELECTOR = f"involvedObject.kind={modelrollout.ModelRollout.crd.kind}"


@dataclass(frozen=True, slots=True)
class Source:
    kind: mirrors.Kind[Any]
    list_call: Callable[..., Awaitable[Any]]
    """A kubernetes_asyncio list function, with its positional arguments bound."""


def sources(api: client.ApiClient, mirror: mirrors.Mirror) -> list[Source]:
    objects = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)

    def custom(plural: str) -> Callable[..., Awaitable[Any]]:
        async def call(**kwargs: Any) -> Any:
            return await objects.list_cluster_custom_object(
                meta.GROUP, meta.VERSION, plural, **kwargs
            )

        # The watch reads the return type from the docstring: keep the raw dicts.
        call.__doc__ = objects.list_cluster_custom_object.__doc__
        return call

    async def events(**kwargs: Any) -> Any:
        return await core.list_event_for_all_namespaces(field_selector=EVENT_SELECTOR, **kwargs)

    events.__doc__ = core.list_event_for_all_namespaces.__doc__
    return [
        Source(mirror.rollouts, custom(mirror.rollouts.name)),
        Source(mirror.agents, custom(mirror.agents.name)),
        Source(mirror.policies, custom(mirror.policies.name)),
        Source(mirror.events, events),
    ]


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


async def _list(source: Source) -> tuple[list[dict[str, Any]], str]:
    response = await source.list_call(_preload_content=False)
    try:
        body = json.loads(await response.read())
    finally:
        response.release()
    items = body.get("items") or []
    return [item for item in items if isinstance(item, dict)], str(
        (body.get("metadata") or {}).get("resourceVersion") or ""
    )


async def _watch(source: Source, mirror: mirrors.Mirror, *, since: str) -> str:
    """Apply watch events from `since` until the server ends the watch; the last version."""
    stream = watch.Watch(return_type="object")
    last = since
    try:
        async with stream.stream(
            source.list_call,
            resource_version=since,
            timeout_seconds=WATCH_SECONDS,
            allow_watch_bookmarks=True,
        ) as events:
            async for event in events:
                kind = str(event.get("type") or "")
                body = event.get("raw_object")
                if kind in ("ADDED", "MODIFIED", "DELETED") and isinstance(body, dict):
                    mirror.apply(source.kind, event_type=kind, body=body)
                last = str(stream.resource_version or last)
    except ApiException as error:
        if error.status == 410:
            raise _Expired from None
        raise
    return last


def _describe(error: BaseException, *, server: str) -> str:
    if isinstance(error, ApiException):
        return f"the API server at {server} answered {error.status} {error.reason}"
    return f"cannot reach the API server at {server} ({type(error).__name__}: {error})"


async def follow(source: Source, mirror: mirrors.Mirror, *, server: str) -> None:
    """List then watch `source` into `mirror`, until cancelled."""
    delay = FIRST_DELAY
    while True:
        try:
            bodies, version = await _list(source)
            mirror.replace(source.kind, bodies)
            mirror.trouble(source.kind, None)
            delay = FIRST_DELAY
            while True:
                version = await _watch(source, mirror, since=version)
        except _Expired:
            continue
        except (ApiException, aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
            problem = f"{source.kind.name}: {_describe(error, server=server)}"
            log.warning("%s; retrying in %.1fs", problem, delay)
            mirror.trouble(source.kind, problem)
            await asyncio.sleep(delay)
            delay = min(MAX_DELAY, delay * 2)


def start(api: client.ApiClient, mirror: mirrors.Mirror) -> list[asyncio.Task[None]]:
    """One following task per source; cancel them to stop."""
    server = str(api.configuration.host)
    return [
        asyncio.create_task(follow(source, mirror, server=server), name=source.kind.name)
        for source in sources(api, mirror)
    ]
