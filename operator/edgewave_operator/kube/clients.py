"""An API client for the operator: from a kubeconfig, or in-cluster credentials."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes_asyncio import client, config

from edgewave_api.errors import PermanentError


async def connect(kubeconfig: Path | None) -> client.ApiClient:
    """A client for `kubeconfig`, or the pod's service account when it is None."""
    configuration = client.Configuration()
    path = kubeconfig or (Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None)
    if path is not None:
        await config.load_kube_config(config_file=str(path), client_configuration=configuration)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    else:
        raise PermanentError(
            "no Kubernetes credentials: set EDGEWAVE_KUBECONFIG or KUBECONFIG, or run in a pod"
        )
    return client.ApiClient(configuration)
