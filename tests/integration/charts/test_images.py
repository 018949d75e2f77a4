"""The operator and agent Dockerfiles, checked against the lock, pyproject and the charts.

No container engine runs here, so the images are not built; what would make a build wrong or
an image bigger than it should be is checked instead: the exact set of packages each image
installs (`uv export` of the Dockerfile's own `uv sync` flags, from uv.lock), that the agent
image carries no kopf, that every package folder the wheel needs is copied and not excluded
from the build context, and that user, entrypoint and ports agree with the charts.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
OPERATOR_ONLY = {"kopf", "kubernetes-asyncio", "tensorrt-rtx", "tritonclient"}
DEV_ONLY = {"pytest", "ruff", "mypy", "grpcio-tools", "import-linter", "lupa"}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages and their (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[Stage] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        instruction, _, arguments = stripped.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((instruction, arguments.strip()))
    return stages


def uv_sync_flags(stages: list[Stage]) -> list[list[str]]:
    """The flags of every `uv sync` the Dockerfile runs."""
    found = []
    for stage in stages:
        for instruction, arguments in stage.instructions:
            if instruction == "RUN" and "uv sync" in arguments:
                found.append(shlex.split(arguments.split("uv sync", 1)[1]))
    return found


def extras_of(flags: list[str]) -> list[str]:
    return [flags[i + 1] for i, flag in enumerate(flags) if flag == "--extra"]


def exported_packages(extras: list[str]) -> set[str]:
    uv = subprocess.run(
        [str(REPO / "tools" / "bootstrap.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    args = [uv, "export", "--frozen", "--no-hashes", "--no-emit-project", "--format"]
    args += ["requirements.txt", *(arg for extra in extras for arg in ("--extra", extra))]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    names = set()
    for line in result.stdout.splitlines():
        if line and not line.startswith(("#", " ")):
            names.add(re.split(r"[=<>;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def ignored_top_level() -> set[str]:
    """Top-level names the build context leaves out (.dockerignore lines like `tests/`)."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return {
        line.strip().rstrip("/")
        for line in lines
        if line.strip() and "*" not in line and not line.startswith("#")
    }


IMAGES = [
    pytest.param(
        REPO / "edge-agent" / "Dockerfile",
        "agent",
        "edgewave-agent",
        REPO / "charts" / "edgewave-agent" / "values.yaml",
        id="agent",
    ),
    pytest.param(
        REPO / "operator" / "Dockerfile",
        "operator",
        "edgewave",
        REPO / "charts" / "edgewave-operator" / "values.yaml",
        id="operator",
    ),
]


def test_agent_image_installs_no_kopf() -> None:
    stages = parse_dockerfile(REPO / "edge-agent" / "Dockerfile")
    flags = uv_sync_flags(stages)
    assert flags, "the agent Dockerfile installs with `uv sync`"
    installed = exported_packages(extras_of(flags[-1]))
    assert not installed & OPERATOR_ONLY, installed & OPERATOR_ONLY
    assert not installed & DEV_ONLY, installed & DEV_ONLY
    assert {"onnxruntime", "grpcio", "grpcio-health-checking", "nvidia-ml-py"} <= installed


def test_operator_image_installs_the_operator_set_without_dev_tools() -> None:
    flags = uv_sync_flags(parse_dockerfile(REPO / "operator" / "Dockerfile"))
    installed = exported_packages(extras_of(flags[-1]))
    assert {"kopf", "kubernetes-asyncio", "onnxruntime"} <= installed
    assert not installed & DEV_ONLY, installed & DEV_ONLY


@pytest.mark.parametrize(("dockerfile", "extra", "script", "values"), IMAGES)
def test_dockerfile_is_multi_stage_locked_and_non_root(
    dockerfile: Path, extra: str, script: str, values: Path
) -> None:
    stages = parse_dockerfile(dockerfile)
    builder = next(s for s in stages if s.name == "builder")
    runtime = stages[-1]
    assert runtime.name == "runtime" and runtime.base == builder.base, "slim runtime, same Python"

    # Every install is from the lock, with this image's extra and nothing more.
    for flags in uv_sync_flags(stages):
        assert "--frozen" in flags
        assert extras_of(flags) == [extra]
        assert not {"--all-extras", "--dev", "--group", "--all-groups"} & set(flags)
    # The uv that builds the image is the uv that wrote the lock.
    uv_version = re.search(r'uv_version="([^"]+)"', (REPO / "tools/bootstrap.sh").read_text())
    assert uv_version is not None
    assert f"ARG UV_IMAGE=ghcr.io/astral-sh/uv:{uv_version.group(1)}" in dockerfile.read_text()

    # The runtime stage copies only the environment, and runs as a numeric non-root user.
    runtime_copies = [a for i, a in runtime.instructions if i == "COPY"]
    assert runtime_copies == ["--from=builder /opt/edgewave /opt/edgewave"]
    user = [a for i, a in runtime.instructions if i == "USER"]
    assert len(user) == 1 and re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", user[0]), user

    # The wheel's package folders are all copied, and none is outside the build context.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = {
        p.split("/")[0] for p in project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    }
    copied = {
        word.strip("./")
        for instruction, arguments in builder.instructions
        if instruction == "COPY"
        for word in arguments.split()[:-1]
    }
    assert folders | {"pyproject.toml", "uv.lock", "README.md"} <= copied
    assert not copied & ignored_top_level(), copied & ignored_top_level()

    # The entrypoint is the console script, and the image exposes the ports the chart uses.
    entrypoint = [a for i, a in runtime.instructions if i == "ENTRYPOINT"]
    assert entrypoint == [f'["{script}"]'] and script in project["project"]["scripts"]
    exposed = {int(p) for i, a in runtime.instructions if i == "EXPOSE" for p in a.split()}
    chart = yaml.safe_load(values.read_text())
    wanted = (
        {chart["ports"]["control"], chart["ports"]["serving"]}
        if extra == "agent"
        else {chart["health"]["port"], chart["metrics"]["port"], chart["webhook"]["port"]}
    )
    assert exposed == wanted


@pytest.mark.parametrize(("dockerfile", "extra", "script", "values"), IMAGES)
def test_runtime_works_in_an_empty_read_only_directory(
    dockerfile: Path, extra: str, script: str, values: Path
) -> None:
    # Without WORKDIR the process runs in `/`, where a model's relative external-data path
    # reaches /var/run/secrets/...; the runtime stage sets an empty directory it cannot write.
    runtime = parse_dockerfile(dockerfile)[-1]
    workdirs = [args for instruction, args in runtime.instructions if instruction == "WORKDIR"]
    assert workdirs, f"{dockerfile.name}: the runtime stage sets no WORKDIR"
    workdir = workdirs[-1]
    assert workdir not in ("/", "/tmp", "/src") and workdir.startswith("/var/empty/")
    made = [
        args
        for instruction, args in runtime.instructions
        if instruction == "RUN" and f"install -d -o root -g root -m 0555 {workdir}" in args
    ]
    assert made, f"{dockerfile.name}: {workdir} is not made empty, root-owned and read-only"
