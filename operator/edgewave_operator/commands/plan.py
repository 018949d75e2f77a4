"""`edgewave plan ROLLOUT [--fleet FILE]`: what a rollout would do, without doing it.

ROLLOUT is a path to a YAML file holding a ModelRollout (ResidencyPolicies in the same
file apply to it), or else the name of a ModelRollout in the cluster (`-n` for its
namespace). The fleet is the cluster's EdgeAgents as the operator last saw them, or, with
`--fleet`, a declared fleet file (docs/cli/fleet.yaml). ResidencyPolicies come from
`--policy` files, the rollout's file, and the cluster whenever the cluster is read.

It prints the targets, each wave's batches, the build matrix (one build per distinct
key) and the agents excluded with the reason; the decisions are made by the operator's
and the compiler's pure planners. The central builds then run for real through the
compiler (cached: a second plan reuses them; `--no-build` skips them); builds that only
an agent can do are listed as such. Exit code 0 when the plan is complete, 1 with one
line when a build or a read failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgewave_operator.commands import common

if TYPE_CHECKING:
    from edgewave_api import edgeagent, modelrollout, residencypolicy
    from edgewave_operator.views import dryruns, plans


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


def plan(
    rollout: Annotated[
        str,
        typer.Argument(help="A ModelRollout YAML file, or the name of one in the cluster."),
    ],
    *,
    fleet: Annotated[
        Path | None,
        typer.Option(
            help="A declared fleet file (kind: Fleet) instead of the cluster's EdgeAgents.",
            dir_okay=False,
        ),
    ] = None,
    policy: Annotated[
        list[Path] | None,
        typer.Option(help="A file of ResidencyPolicies to apply (repeatable).", dir_okay=False),
    ] = None,
    build: Annotated[
        bool,
        typer.Option("--build/--no-build", help="Run the central builds (cached) after planning."),
    ] = True,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Engine cache for the builds [default: ~/.cache/edgewave/engines].",
            file_okay=False,
        ),
    ] = None,
    namespace: common.NamespaceOption = None,
    output: common.OutputOption = common.Output.TABLE,
    kubeconfig: common.KubeconfigOption = None,
) -> None:
    """Dry run: targets, build matrix, exclusions with reasons, waves and batches."""
    import asyncio

    from edgewave_api.errors import PermanentError
    from edgewave_operator.devcluster import locations
    from edgewave_operator.views import outputs
    from edgewave_operator.views import plans as plan_views

    source, run = asyncio.run(
        _plan(
            rollout,
            fleet=fleet,
            policy_files=policy or [],
            namespace=namespace,
            kubeconfig=kubeconfig,
        )
    )
    results: plans.Results = {}
    if build and run.central_builds:
        results = asyncio.run(
            _build(
                run,
                model=source.spec.model,
                cache_root=(cache or locations.cache_root() / "engines").resolve(),
            )
        )
    chosen = outputs.Format(output.value)
    if chosen.machine:
        typer.echo(outputs.dump(plan_views.document(run, results), output=chosen))
    else:
        outputs.console().print(plan_views.render(run, results))
    failed = plan_views.failed_builds(run, results)
    if failed:
        what, why = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise PermanentError(f"the {what} build failed{more}: {why}")


class _Inputs:
    def __init__(self) -> None:
        self.rollout: modelrollout.ModelRollout | None = None
        self.policies: list[residencypolicy.ResidencyPolicy] = []
        self.agents: list[edgeagent.EdgeAgent] = []


async def _plan(
    rollout: str,
    *,
    fleet: Path | None,
    policy_files: list[Path],
    namespace: str | None,
    kubeconfig: Path | None,
) -> tuple[modelrollout.ModelRollout, dryruns.DryRun]:
    import asyncio
    import datetime

    from edgewave_compiler import backends
    from edgewave_operator import fleetfile, reading
    from edgewave_operator.views import dryruns

    inputs = _Inputs()
    for path in policy_files:
        inputs.policies += _read_manifests(path).policies
    from_file = _is_file_reference(rollout)
    if from_file:
        manifests = _read_manifests(Path(rollout))
        if manifests.rollout is None:
            raise _error(f"{rollout} holds no ModelRollout")
        inputs.rollout = manifests.rollout
        inputs.policies += manifests.policies
    if fleet is not None:
        now = datetime.datetime.now(datetime.UTC)
        inputs.agents = list(fleetfile.load(fleet, now=now))
    if not from_file or fleet is None:
        async with reading.Cluster(kubeconfig) as cluster:
            if not from_file:
                where = namespace or reading.default_namespace(kubeconfig)
                inputs.rollout = await cluster.rollout(rollout, namespace=where)
            if fleet is None:
                inputs.agents = await cluster.agents()
            inputs.policies += await cluster.policies()
    assert inputs.rollout is not None
    builders = await asyncio.to_thread(backends.central_builders)
    return inputs.rollout, dryruns.dry_run(
        rollout=inputs.rollout, agents=inputs.agents, policies=inputs.policies, builders=builders
    )


def _is_file_reference(text: str) -> bool:
    """A path to a file (it exists, or it looks like one); otherwise a name in the cluster."""
    path = Path(text)
    if path.is_file():
        return True
    if "/" in text or path.suffix in (".yaml", ".yml", ".json"):
        raise _error(f"no such file: {text} (give a ModelRollout file or a rollout's name)")
    return False


class _Manifests:
    def __init__(self) -> None:
        self.rollout: modelrollout.ModelRollout | None = None
        self.policies: list[residencypolicy.ResidencyPolicy] = []


def _read_manifests(path: Path) -> _Manifests:
    """The first ModelRollout and every ResidencyPolicy in a YAML file."""
    import pydantic
    import yaml

    from edgewave_api import modelrollout, residencypolicy

    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except OSError as error:
        raise _error(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise _error(f"{path} is not valid YAML: {error}".replace("\n", " ")) from None
    found = _Manifests()
    for document in documents:
        kind = document.get("kind") if isinstance(document, dict) else None
        try:
            if kind == "ModelRollout" and found.rollout is None:
                found.rollout = modelrollout.ModelRollout.model_validate(document)
            elif kind == "ResidencyPolicy":
                found.policies.append(residencypolicy.ResidencyPolicy.model_validate(document))
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise _error(f"{path}: {kind} {where}: {first['msg']}") from None
    return found


def _error(message: str) -> Exception:
    from edgewave_api.errors import PermanentError

    return PermanentError(message)


async def _build(
    run: dryruns.DryRun, *, model: modelrollout.ModelSource, cache_root: Path
) -> dict[str, plans.BuildResult]:
    """Run (or find in the cache) every central build of the plan; never raises."""
    import asyncio

    from edgewave_api.errors import EdgewaveError
    from edgewave_compiler import cache, compiling, fetching
    from edgewave_operator.views import plans

    central = run.central_builds
    try:
        # The command line fetches with its own user's rights (file:// anywhere, loopback).
        model_path = await asyncio.to_thread(
            lambda: fetching.fetch(
                model.uri,
                sha256=model.sha256,
                dest_dir=cache_root / "models",
                policy=fetching.LOCAL_USER,
            )
        )
    except EdgewaveError as error:
        reason = f"the model could not be fetched: {error}"
        return {b.digest: plans.BuildResult(error=reason) for b in central}
    compiler = compiling.Compiler(cache.EngineCache(cache_root), max_workers=2)
    try:
        outcomes = await asyncio.gather(
            *(compiler.ensure_engine(b.key, model_path) for b in central),
            return_exceptions=True,
        )
    finally:
        await compiler.close()
    results: dict[str, plans.BuildResult] = {}
    for planned, outcome in zip(central, outcomes, strict=True):
        if isinstance(outcome, EdgewaveError):
            results[planned.digest] = plans.BuildResult(error=str(outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            results[planned.digest] = plans.BuildResult(
                engine_digest=outcome.engine_digest,
                size_bytes=outcome.size_bytes,
                build_seconds=outcome.build_seconds,
                cached=outcome.cache_hit,
            )
    return results
