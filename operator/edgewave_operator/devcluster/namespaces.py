"""Namespace names and manifests that isolate one test from the next.

Pure. The dev control plane has no kube-controller-manager, so a new namespace gets no
`default` service account by itself; `manifest` creates one with it, so Pods (which the
ServiceAccount admission plugin checks) can be created in it.
"""

from __future__ import annotations

import re

from edgewave_api import kubeyaml

MAX_LENGTH = 63  # a DNS-1123 label
_INVALID = re.compile(r"[^a-z0-9-]+")


def unique_name(hint: str, *, token: str, prefix: str = "t") -> str:
    """`prefix-<hint as a DNS label>-<token>`, at most 63 characters.

    `hint` is usually the test's name (any characters); `token` makes it unique (random hex).
    """
    tail = f"-{token}"
    room = MAX_LENGTH - len(prefix) - len(tail) - 1
    slug = _INVALID.sub("-", hint.lower()).strip("-")[:room].strip("-")
    parts = [prefix, slug] if slug else [prefix]
    return "-".join(parts) + tail


def manifest(name: str, *, labels: dict[str, str] | None = None) -> str:
    """A Namespace and its `default` ServiceAccount, as YAML for `kubectl apply -f -`."""
    namespace: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": dict(labels or {})},
    }
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": name},
    }
    return kubeyaml.dump_all([namespace, account])
