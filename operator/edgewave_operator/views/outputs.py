"""Output formats of the CLI (`-o table|wide|json|yaml`) and the machine-readable dump. Pure.

JSON and YAML carry the same document; tables are for people. Documents use the API's
camelCase names, so a script reads `edgewave agents -o json` like `kubectl get -o json`.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from rich.console import Console

from edgewave_api import kubeyaml


class Format(enum.StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"

    @property
    def machine(self) -> bool:
        return self in (Format.JSON, Format.YAML)


def dump(document: Any, *, output: Format) -> str:
    """`document` as JSON (indented) or YAML (block style, keys in the given order)."""
    if output is Format.JSON:
        return json.dumps(document, indent=2)
    if output is Format.YAML:
        return kubeyaml.dump(document).rstrip("\n")
    raise ValueError(f"{output} is not a machine-readable format")


PIPE_WIDTH = 1000
"""Columns used when stdout is not a terminal, so piped tables keep one line per row."""


def console() -> Console:
    """A console for stdout; wide when piped (rich would otherwise assume 80 columns)."""
    found = Console()
    return found if found.is_terminal else Console(width=PIPE_WIDTH)
