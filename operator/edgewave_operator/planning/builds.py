"""What compiling a rollout's engines produced, as plain values the planner reads. Pure.

`compiling.engines` fills these in (it fetches, plans and builds); `planning.reconciling`
reads them to exclude agents no backend serves or whose own build failed and to hand each
target its engine; the executor reads `paths` to push. Keeping the types here lets the
decision be tested with hand-made engines and no compiler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgewave_api import modelrollout
from edgewave_operator.planning import views


@dataclass(frozen=True)
class AgentBuilt:
    """What an agent reported after building an engine for itself."""

    digest: str
    size_bytes: int
    build_seconds: float
    log: str = ""


@dataclass(frozen=True)
class Engines:
    by_agent: Mapping[str, views.EngineRef]
    paths: Mapping[str, Path]
    """Engine digest (bare hex) -> file to push."""
    statuses: tuple[modelrollout.EngineStatus, ...]
    refused: Mapping[str, str] = field(default_factory=dict)
    """Agent -> why no allowed backend can serve it (NoCompatibleBackend)."""
    build_failed: Mapping[str, str] = field(default_factory=dict)
    """Agent -> why building an engine on it failed (AgentBuildFailed)."""
    built: int = 0
