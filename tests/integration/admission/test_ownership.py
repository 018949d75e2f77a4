"""Tenancy at admission, on a real API server: a model name has one owner cluster-wide, and a
ResidencyPolicy that selects a namespace binds a rollout there whatever its labels."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration

MakeRollout = Callable[..., dict[str, Any]]


class Served(Protocol):
    kube: clusters.DevCluster


def apply(
    kube: clusters.DevCluster, manifest: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return kube.kubectl("apply", *args, "-f", "-", input=json.dumps(manifest), check=False)


@pytest.fixture
def token() -> str:
    return secrets.token_hex(3)


@pytest.fixture
def other_namespace(served: Served) -> Iterator[str]:
    """A second tenant's namespace."""
    name = f"tenant-{secrets.token_hex(3)}"
    served.kube.kubectl("create", "namespace", name)
    yield name
    served.kube.kubectl("delete", "modelrollouts", "--all", "-n", name, "--wait=false")
    served.kube.kubectl("delete", "namespace", name, "--wait=false")


def test_a_second_owner_of_a_model_name_is_refused_naming_the_first(
    served: Served,
    module_namespace: str,
    other_namespace: str,
    token: str,
    make_rollout: MakeRollout,
) -> None:
    kube, model = served.kube, f"shared-{token}"
    first = make_rollout(f"first-{token}", namespace=module_namespace, model=model)
    assert apply(kube, first).returncode == 0

    # Another namespace, same model name: refused, naming the owner.
    thief = make_rollout(f"thief-{token}", namespace=other_namespace, model=model)
    refused = apply(kube, thief)
    assert refused.returncode != 0
    assert (
        f'spec.model.name: model "{model}" is already owned by ModelRollout '
        f"{module_namespace}/first-{token}"
    ) in refused.stderr
    assert kube.kubectl(
        "get", "mro", f"thief-{token}", "-n", other_namespace, check=False
    ).returncode

    # The same namespace, another rollout: refused too.
    twin = make_rollout(f"twin-{token}", namespace=module_namespace, model=model)
    assert f"ModelRollout {module_namespace}/first-{token}" in apply(kube, twin).stderr

    # The owner's own updates pass.
    first["spec"]["model"]["version"] = "1.0.1"
    updated = apply(kube, first)
    assert updated.returncode == 0, updated.stderr

    # Renaming another rollout's model onto the owned name is refused as well.
    other = make_rollout(f"other-{token}", namespace=other_namespace)
    assert apply(kube, other).returncode == 0
    other["spec"]["model"]["name"] = model
    renamed = apply(kube, other)
    assert renamed.returncode != 0
    assert f"ModelRollout {module_namespace}/first-{token}" in renamed.stderr

    # Once the owner is gone, the name is free.
    kube.kubectl("delete", "mro", f"first-{token}", "-n", module_namespace, "--timeout=30s")
    taken = apply(kube, thief)
    assert taken.returncode == 0, taken.stderr


def test_a_policy_selecting_a_namespace_binds_a_rollout_without_labels(
    served: Served,
    module_namespace: str,
    other_namespace: str,
    token: str,
    make_rollout: MakeRollout,
) -> None:
    kube, name = served.kube, f"tenant-eu-{token}"
    policy = {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "ResidencyPolicy",
        "metadata": {"name": name},
        "spec": {"namespaces": [other_namespace], "deniedRegions": ["us-east"]},
    }
    assert apply(kube, policy).returncode == 0
    try:
        unlabelled = make_rollout(f"plain-{token}", namespace=other_namespace, targets=["us-east"])
        assert unlabelled["metadata"]["labels"] == {}
        refused = apply(kube, unlabelled)
        assert refused.returncode != 0
        assert f'region "us-east" is denied by ResidencyPolicy "{name}"' in refused.stderr

        # The namespace is what binds: the same rollout elsewhere is admitted.
        elsewhere = make_rollout(f"free-{token}", namespace=module_namespace, targets=["us-east"])
        admitted = apply(kube, elsewhere)
        assert admitted.returncode == 0, admitted.stderr
    finally:
        kube.kubectl("delete", "residencypolicy", name, "--ignore-not-found")
