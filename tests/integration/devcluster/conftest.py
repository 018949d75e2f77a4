"""A test CRD (`Widget`) with a structural schema and a status subresource."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgewave_operator.devcluster import clusters

GROUP = "devcluster.test.edgewave.dev"


@pytest.fixture(scope="session")
def widget_crd() -> dict[str, Any]:
    """The CustomResourceDefinition of `widgets.devcluster.test.edgewave.dev`."""
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
        },
    }
    schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["replicas"],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
                    "colour": {"type": "string", "enum": ["red", "green"]},
                },
            },
            "status": {
                "type": "object",
                "properties": {
                    "conditions": {
                        "type": "array",
                        "items": condition,
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["type"],
                    }
                },
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


@pytest.fixture(scope="session")
def widgets(kube: clusters.DevCluster, widget_crd: dict[str, Any]) -> str:
    """Installs the Widget CRD once; returns the resource name for kubectl."""
    kube.kubectl("apply", "-f", "-", input=json.dumps(widget_crd))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/widgets.{GROUP}")
    return f"widgets.{GROUP}"
