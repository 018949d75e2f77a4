"""The one place that knows where the repository, the pinned tools and dev state live.

The control-plane binaries and helm are built from pinned Go modules by scripts in the
repository (`tools/controlplane/build.sh`, `tools/helm/build.sh`), which cache them outside
the repository keyed by version. This module runs those scripts (a no-op once cached) and
returns the paths they print. `EDGEWAVE_CONTROLPLANE_BIN` and `EDGEWAVE_HELM` override the
lookup, e.g. on a machine that has the binaries but not a source checkout.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from edgewave_api.errors import PermanentError

# operator/edgewave_operator/devcluster/locations.py -> the repository root.
REPO_ROOT = Path(__file__).resolve().parents[3]
CONTROLPLANE_BINARIES = ("etcd", "kube-apiserver", "kubectl")


class ToolBuildError(PermanentError):
    """A pinned tool could not be found or built."""


def crds_dir() -> Path:
    """The generated CustomResourceDefinitions (`make generate` writes them)."""
    return REPO_ROOT / "crds"


def cache_root() -> Path:
    """Where Edgewave caches things outside the repository (same rule as the build scripts)."""
    if explicit := os.environ.get("EDGEWAVE_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgewave"


def default_state_dir() -> Path:
    """Where `edgewave dev-cluster up` records the detached control plane."""
    return cache_root() / "dev-cluster"


@functools.cache
def controlplane_bin_dir() -> Path:
    """The directory holding the pinned `etcd`, `kube-apiserver` and `kubectl`.

    Builds them on the first call on a machine (minutes); later calls return at once.
    """
    if explicit := os.environ.get("EDGEWAVE_CONTROLPLANE_BIN"):
        bin_dir = Path(explicit)
    else:
        bin_dir = Path(_run_build_script(REPO_ROOT / "tools" / "controlplane" / "build.sh"))
    missing = [name for name in CONTROLPLANE_BINARIES if not (bin_dir / name).is_file()]
    if missing:
        raise ToolBuildError(
            f"{bin_dir} lacks {', '.join(missing)}; run tools/controlplane/build.sh "
            "or point EDGEWAVE_CONTROLPLANE_BIN at a directory holding all of "
            f"{', '.join(CONTROLPLANE_BINARIES)}"
        )
    return bin_dir


@functools.cache
def helm_path() -> Path:
    """The pinned `helm` binary (built on the first call on a machine)."""
    if explicit := os.environ.get("EDGEWAVE_HELM"):
        path = Path(explicit)
    else:
        path = Path(_run_build_script(REPO_ROOT / "tools" / "helm" / "build.sh"))
    if not path.is_file():
        raise ToolBuildError(f"{path} does not exist; run tools/helm/build.sh or set EDGEWAVE_HELM")
    return path


def _run_build_script(script: Path) -> str:
    if not script.is_file():
        raise ToolBuildError(
            f"{script} is missing: the pinned tools are built from a source checkout; "
            "run from the repository or set EDGEWAVE_CONTROLPLANE_BIN / EDGEWAVE_HELM"
        )
    # Build progress goes to our stderr so a first, slow build is visible; stdout is the path.
    result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise ToolBuildError(
            f"{script.relative_to(REPO_ROOT)} failed (exit {result.returncode}); "
            "its output above says why (Go toolchain and network access to the Go module "
            "proxy are needed on the first run)"
        )
    return lines[-1]
