"""Options shared by `plan`, `status` and `agents` (not a command module itself)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

KubeconfigOption = Annotated[
    Path | None,
    typer.Option(
        help="Kubeconfig to use (default: $KUBECONFIG, or in-cluster credentials).",
        envvar="EDGEWAVE_KUBECONFIG",
        dir_okay=False,
    ),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="The rollout's namespace (default: the kubeconfig context's, else `default`).",
    ),
]


class Output(enum.StrEnum):
    """`-o` of commands without a wide table."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="table, json or yaml.", case_sensitive=False)
]
