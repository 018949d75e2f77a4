"""`docs/examples/` holds only objects a cluster accepts, so a GitOps tool can take it whole.

`kubectl apply -f docs/examples/` is what Argo CD, Flux and people do with such a directory;
one object the API server does not know (the fleet file once was `kind: Fleet`) fails all
of it. The real API server judges every file in a server-side dry run: schema, CEL rules,
defaults. Nothing is stored.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "docs" / "examples"


def test_the_whole_directory_applies_with_a_server_side_dry_run(
    crds: clusters.DevCluster, namespace: str
) -> None:
    result = crds.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        str(EXAMPLES),
        "-o",
        "json",
        check=False,
    )
    assert result.returncode == 0, result.stderr
    applied = json.loads(result.stdout)
    items = applied["items"] if applied.get("kind") == "List" else [applied]
    declared = [
        doc
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in items) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in declared
    )


def test_every_file_in_the_directory_is_yaml_the_dry_run_reads() -> None:
    # kubectl reads .yaml, .yml and .json; anything else there would be skipped silently.
    stray = [p.name for p in EXAMPLES.iterdir() if p.suffix not in {".yaml"}]
    assert stray == []


def test_a_non_kubernetes_file_would_fail_the_directory(
    crds: clusters.DevCluster, namespace: str, tmp_path: Path
) -> None:
    # The check above can fail: the old fleet file's shape makes the whole apply fail.
    for path in EXAMPLES.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "fleet.yaml").write_text(
        "apiVersion: edgewave.io/v1alpha1\nkind: Fleet\nmetadata: {name: gpu-fleet}\n"
    )
    result = crds.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", str(tmp_path), check=False
    )
    assert result.returncode != 0
    assert "Fleet" in result.stderr
