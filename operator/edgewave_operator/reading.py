"""The CLI's reads from the cluster: EdgeAgents, ModelRollouts, ResidencyPolicies.

The only module of the operator-facing commands (`plan`, `status`, `agents`) that talks to
the API server: kubernetes_asyncio with the kubeconfig (`--kubeconfig`, `$KUBECONFIG`, or
in-cluster credentials). Objects come back as the API's pydantic models. Failures become
one-line errors that say what to do: a missing rollout is `RolloutNotFound`, an
unreachable API server a `TemporaryError` naming it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from edgewave_api import edgeagent, meta, modelrollout, residencypolicy
from edgewave_api.errors import EdgewaveError, PermanentError, TemporaryError
from edgewave_operator.kube import clients

DEFAULT_NAMESPACE = "default"
RETRIES = 5
MAX_RETRY_WAIT = 2.0
_R = TypeVar("_R", edgeagent.EdgeAgent, modelrollout.ModelRollout, residencypolicy.ResidencyPolicy)


class RolloutNotFound(PermanentError):
    """No ModelRollout of that name in that namespace."""


def default_namespace(kubeconfig: Path | None) -> str:
    """The current context's namespace in the kubeconfig, else `default` (as kubectl)."""
    path = kubeconfig or (Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None)
    if path is None or not path.is_file():
        return DEFAULT_NAMESPACE
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return DEFAULT_NAMESPACE
    current = document.get("current-context")
    for entry in document.get("contexts") or []:
        if isinstance(entry, dict) and entry.get("name") == current:
            namespace = (entry.get("context") or {}).get("namespace")
            return str(namespace) if namespace else DEFAULT_NAMESPACE
    return DEFAULT_NAMESPACE


class Cluster:
    """`async with Cluster(kubeconfig) as cluster:` reads from the cluster it points at."""

    def __init__(self, kubeconfig: Path | None) -> None:
        self._kubeconfig = kubeconfig
        self._api: client.ApiClient | None = None

    async def __aenter__(self) -> Cluster:
        self._api = await clients.connect(self._kubeconfig)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._api is not None:
            await self._api.close()

    @property
    def server(self) -> str:
        return str(self._api.configuration.host) if self._api else "(not connected)"

    def _objects(self) -> client.CustomObjectsApi:
        if self._api is None:
            raise RuntimeError("use `async with Cluster(...)`")
        return client.CustomObjectsApi(self._api)

    async def _call(
        self, doing: str, make: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """`make()`'s answer; throttling (429) and server errors are retried a few times,
        after the server's Retry-After, as kubectl does."""
        for attempt in range(RETRIES + 1):
            try:
                result: dict[str, Any] = await make()
            except ApiException as error:
                classified = _classify(error, doing=doing)
                if not classified.temporary or attempt == RETRIES:
                    raise classified from None
                await asyncio.sleep(min(MAX_RETRY_WAIT, _retry_after(error)))
            except (aiohttp.ClientError, OSError) as error:
                raise TemporaryError(
                    f"cannot reach the API server at {self.server} while {doing} ({error}); "
                    "is the cluster up? (`edgewave dev-cluster status` for the dev one)",
                    retry_after=2.0,
                ) from None
            else:
                return result
        raise AssertionError("unreachable")

    async def _list(self, model: type[_R]) -> list[_R]:
        plural = model.crd.plural
        listing = await self._call(
            f"listing {plural}",
            lambda: self._objects().list_cluster_custom_object(meta.GROUP, meta.VERSION, plural),
        )
        items = [model.model_validate(item) for item in listing.get("items", [])]
        return sorted(items, key=lambda item: item.metadata.name or "")

    async def agents(self) -> list[edgeagent.EdgeAgent]:
        """Every EdgeAgent (cluster-scoped), by name."""
        return await self._list(edgeagent.EdgeAgent)

    async def policies(self) -> list[residencypolicy.ResidencyPolicy]:
        """Every ResidencyPolicy (cluster-scoped), by name."""
        return await self._list(residencypolicy.ResidencyPolicy)

    async def rollouts(self) -> list[modelrollout.ModelRollout]:
        """Every ModelRollout in every namespace."""
        return await self._list(modelrollout.ModelRollout)

    async def rollout(self, name: str, *, namespace: str) -> modelrollout.ModelRollout:
        """The ModelRollout `namespace/name`; `RolloutNotFound` if there is none."""
        try:
            body = await self._call(
                f"reading modelrollout {namespace}/{name}",
                lambda: self._objects().get_namespaced_custom_object(
                    meta.GROUP, meta.VERSION, namespace, modelrollout.ModelRollout.crd.plural, name
                ),
            )
        except _NotFound:
            raise RolloutNotFound(
                f'modelrollout "{name}" not found in namespace "{namespace}" '
                f"(list them with `kubectl get modelrollouts -n {namespace}`)"
            ) from None
        return modelrollout.ModelRollout.model_validate(body)


class _NotFound(PermanentError):
    pass


def _classify(error: ApiException, *, doing: str) -> EdgewaveError:
    status = int(error.status or 0)
    if status == 404:
        body = error.body.decode(errors="replace") if isinstance(error.body, bytes) else error.body
        if "the server could not find the requested resource" in str(body):
            return PermanentError(
                f"{doing}: the Edgewave CRDs are not installed in this cluster "
                "(install the edgewave-operator chart, or `kubectl apply -f crds/`)"
            )
        return _NotFound(f"{doing}: not found")
    if status in (401, 403):
        return PermanentError(
            f"{doing}: the API server refused ({status} {error.reason}); "
            "check your kubeconfig's credentials and RBAC (read access to edgewave.io)"
        )
    return TemporaryError(
        f"{doing}: the API server answered {status} {error.reason}; try again", retry_after=2.0
    )


def _retry_after(error: ApiException) -> float:
    headers: dict[str, str] = dict(error.headers or {})
    try:
        return max(0.1, float(headers.get("Retry-After", "0.5")))
    except ValueError:
        return 0.5
