"""An API client for the operator: from a kubeconfig, or in-cluster credentials.

Problems with the credentials are classified here, where they enter: a missing or
unreadable kubeconfig is a `PermanentError` whose message says what to fix, never a
traceback from the Kubernetes client.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import yaml
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

from edgewave_api.errors import PermanentError, TemporaryError
from edgewave_operator.kube import failures

CHECK_TIMEOUT_SECONDS = 10.0


async def connect(kubeconfig: Path | None) -> client.ApiClient:
    """A client for `kubeconfig`, or the pod's service account when it is None."""
    configuration = client.Configuration()
    path = kubeconfig or (Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None)
    if path is not None:
        if not path.is_file():
            raise PermanentError(
                f"kubeconfig {path} does not exist; pass --kubeconfig or set "
                "EDGEWAVE_KUBECONFIG/KUBECONFIG to an existing file"
            )
        try:
            await config.load_kube_config(config_file=str(path), client_configuration=configuration)
        except (ConfigException, yaml.YAMLError, OSError, ValueError, TypeError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise PermanentError(
                f"kubeconfig {path} is not usable ({type(error).__name__}: {first_line}); "
                f"check it with `kubectl --kubeconfig {path} version`"
            ) from None
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except ConfigException as error:
            raise PermanentError(
                f"in-cluster credentials are not usable ({error}); check the pod's "
                "ServiceAccount token mount"
            ) from None
    else:
        raise PermanentError(
            "no Kubernetes credentials: set EDGEWAVE_KUBECONFIG or KUBECONFIG, or run in a pod"
        )
    return client.ApiClient(configuration)


async def check(api: client.ApiClient) -> None:
    """Ask the API server for its version: fail early, in one line, if it cannot be reached."""
    server = api.configuration.host
    doing = f"reading the version of the API server at {server}"
    hint = "check the kubeconfig's server address and that the API server is up"
    try:
        await asyncio.wait_for(
            failures.call(client.VersionApi(api).get_code(), doing=doing),
            timeout=CHECK_TIMEOUT_SECONDS,
        )
    except TimeoutError:
        raise TemporaryError(
            f"{doing}: no answer within {CHECK_TIMEOUT_SECONDS:.0f}s; {hint}"
        ) from None
    except TemporaryError as error:
        raise TemporaryError(f"{error}; {hint}") from None
