"""The CLI as people run it: `edgewave` subprocesses against the real dev API server.

`crds` installs Edgewave's CRDs once; `edgewave(...)` runs the command line with the
cluster's kubeconfig and returns the finished process (exit code, stdout, stderr).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from edgewave_api import crdgen
from edgewave_operator.devcluster import clusters

ROOT = Path(__file__).resolve().parents[3]
EDGEWAVE = Path(sys.executable).with_name("edgewave")


@pytest.fixture(scope="session")
def crds(kube: clusters.DevCluster) -> clusters.DevCluster:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    names = [f"crd/{resource.crd.name}" for resource in crdgen.RESOURCES]
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    return kube


@pytest.fixture
def edgewave(crds: clusters.DevCluster) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `edgewave ARGS...` against the dev cluster (or `kubeconfig=`), without a shell."""

    def run(
        *args: str, kubeconfig: Path | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        env = {
            k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "EDGEWAVE_KUBECONFIG")
        }
        env["KUBECONFIG"] = str(kubeconfig or crds.kubeconfig)
        command = (
            [str(EDGEWAVE)]
            if EDGEWAVE.is_file()
            else [sys.executable, "-c", "from edgewave_operator.cli import main; main()"]
        )
        return subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
            cwd=ROOT,
        )

    return run
