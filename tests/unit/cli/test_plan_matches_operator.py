"""`edgewave plan` and the operator agree: same targets, same waves, same builds.

The dry run (`views.dryruns`) and the operator's turn (`compiling.engines.EngineBuilds`
then `planning.reconciling.decide`) run on the documented GPU fleet with the same central
builders. The builds themselves are stand-ins (the compiler and the agents only report a
digest named after the build key), so what is compared is what each side decided.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_compiler import cache, keys
from edgewave_operator.compiling import engines as engine_builds
from edgewave_operator.planning import builds, parsing, reconciling
from edgewave_operator.views import dryruns
from tests.unit.cli import test_dryruns as documented

MODEL = b"not really onnx, never read: the builds are stand-ins"


class KeyNamedCompiler:
    """Central builds whose engine digest is the build key's digest (nothing is built)."""

    def __init__(self, root: Path) -> None:
        self.cache = cache.EngineCache(root / "engines")
        self.built: list[keys.BuildKey] = []

    async def fetch_model(self, uri: str, *, sha256: str, dest_dir: Path | None = None) -> Path:
        """The model placed where a fetch would have put it (it is in place already)."""
        assert dest_dir is not None
        path = dest_dir / f"{sha256}.onnx"
        assert path.is_file(), f"the test placed no model at {path}"
        return path

    async def ensure_engine(
        self, key: keys.BuildKey, model_path: Path, *, rollout_uid: str
    ) -> cache.EngineRecord:
        self.built.append(key)
        return cache.EngineRecord(
            key=key,
            key_digest=key.digest(),
            engine_digest=f"sha256:{key.digest()}",
            engine_path=model_path,
            size_bytes=1,
            build_seconds=0.0,
            built_at=0.0,
            built_where="central",
        )


async def agent_builds(agent: str, *, key: keys.BuildKey, model_path: Path) -> builds.AgentBuilt:
    return builds.AgentBuilt(digest=key.digest(), size_bytes=1, build_seconds=0.0)


def operator_turn(
    rollout: modelrollout.ModelRollout,
    *,
    fleet: list[edgeagent.EdgeAgent],
    policies: tuple[residencypolicy.ResidencyPolicy, ...],
    root: Path,
) -> tuple[reconciling.Decision, builds.Engines, KeyNamedCompiler]:
    """What the worker gathers and decides when every agent answered with its status."""
    compiler = KeyNamedCompiler(root)
    made = engine_builds.EngineBuilds(
        compiler=compiler,  # type: ignore[arg-type]
        models_dir=root / "models",
        builders=documented.BUILDERS,
    )
    made.agent_builder = agent_builds
    live = {agent.metadata.name or "": agent.status for agent in fleet}
    views = tuple(
        parsing.agent_view(agent, status=live[agent.metadata.name or ""], observed=True)
        for agent in fleet
    )
    scope = reconciling.scope(rollout, fleet=views, policies=policies)
    platforms = {
        view.name: status
        for view in scope.targeting.targets
        if (status := live[view.name]) is not None
    }
    engines = asyncio.run(made.engines_for(uid="u", spec=rollout.spec, platforms=platforms))
    snapshot = reconciling.Snapshot(
        rollout=rollout,
        fleet=views,
        policies=policies,
        now=documented.T0,
        engines=engines,
    )
    return reconciling.decide(snapshot), engines, compiler


@pytest.mark.parametrize(
    ("document", "policies", "backends"),
    [
        ("modelrollout-multiregion.yaml", (), None),
        ("modelrollout-eu-only.yaml", (documented.POLICY,), None),
        ("modelrollout-multiregion.yaml", (), [modelrollout.Backend.TENSORRT_RTX]),
    ],
)
def test_plan_and_operator_decide_the_same(
    *,
    document: str,
    policies: tuple[residencypolicy.ResidencyPolicy, ...],
    backends: list[modelrollout.Backend] | None,
    tmp_path: Path,
) -> None:
    body: dict[str, Any] = documented._document(document)
    body["spec"]["model"]["sha256"] = hashlib.sha256(MODEL).hexdigest()
    rollout = modelrollout.ModelRollout.model_validate(body)
    if backends is not None:
        rollout.spec.build.backends = backends
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / f"{rollout.spec.model.sha256}.onnx").write_bytes(MODEL)
    fleet = list(documented.FLEET)

    planned = dryruns.dry_run(
        rollout=rollout, agents=fleet, policies=policies, builders=documented.BUILDERS
    )
    decision, engines, compiler = operator_turn(
        rollout, fleet=fleet, policies=policies, root=tmp_path
    )

    assert planned.targets, "the case must target something"
    assert [(w.name, w.agents) for w in planned.waves] == [
        (w.name, w.agent_names) for w in decision.waves
    ]
    assert sorted((e.agent, e.reason) for e in planned.exclusions) == sorted(
        (e.agent, e.reason) for e in decision.targets.excluded
    )
    targeted = {name for wave in decision.waves for name in wave.agent_names}
    engine_keys = {name: engines.by_agent[name].digest for name in targeted}
    assert engine_keys == {t.agent: t.build.key.digest() for t in planned.targets}
    assert sorted(k.digest() for k in compiler.built) == sorted(
        b.key.digest() for b in planned.central_builds
    )
