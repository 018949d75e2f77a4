"""Fixtures shared by every test tier.

`kube` (session): one real dev control plane (etcd + kube-apiserver, pinned versions),
started on first use and stopped at the end of the session; SIGTERM or Ctrl-C of pytest
still stops it, and SIGKILL of pytest makes the kernel kill it (PR_SET_PDEATHSIG).
`namespace` (function): a fresh namespace (with a `default` service account) for one
test, deleted afterwards. Tests are isolated by namespace, not by control plane.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from edgewave_operator.devcluster import clusters, namespaces, processes


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[clusters.DevCluster]:
    with (
        processes.sigterm_interrupts(),
        clusters.DevCluster.start(workdir=tmp_path_factory.mktemp("kube")) as cluster,
    ):
        yield cluster


@pytest.fixture
def namespace(kube: clusters.DevCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = namespaces.unique_name(request.node.name, token=secrets.token_hex(3))
    kube.kubectl(
        "apply", "-f", "-", input=namespaces.manifest(name, labels={"edgewave.test": "true"})
    )
    yield name
    # Without kube-controller-manager the namespace stays Terminating (its objects remain,
    # nothing new can be created in it); no test sees it again.
    kube.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
