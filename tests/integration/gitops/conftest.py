"""Fixtures of the GitOps tests: `crds`, Edgewave's CRDs installed and Established."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgewave_api import crdgen
from edgewave_operator.devcluster import clusters

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def crds(kube: clusters.DevCluster) -> clusters.DevCluster:
    """Edgewave's CRDs, installed and Established."""
    kube.kubectl("apply", "-f", str(REPO / "crds"))
    names = [f"crd/{resource.crd.name}" for resource in crdgen.RESOURCES]
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    return kube
