"""Reading a component's YAML config file, for the edge agent and the gateway alike.

Both accept `--config FILE` and report a bad file in one line naming it; the caller passes
its own error class so the message reaches its user as that component's config error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_mapping(path: Path, *, error: type[Exception]) -> dict[str, Any]:
    """The YAML mapping in `path` (empty for an empty file); `error` names what is wrong."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as failure:
        raise error(f"cannot read config {path}: {failure.strerror}") from None
    except yaml.YAMLError as failure:
        raise error(f"config {path} is not valid YAML: {_one_line(failure)}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise error(f"config {path} must be a mapping at the top level")
    return loaded or {}


def _one_line(failure: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as `line L, column C: problem`."""
    mark = getattr(failure, "problem_mark", None)
    problem = getattr(failure, "problem", None) or str(failure).splitlines()[0]
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
