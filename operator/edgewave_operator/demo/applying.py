"""The demo's models and what it applies: the residency policy and the two sample rollouts.

Before applying the EU-only rollout, a stray twin of it aimed at us-east is sent as a
server-side dry run, to show the residency webhook refusing it with the policy named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgewave_operator.demo import constants, manifests, models
from edgewave_operator.devcluster import clusters


def generate_models(directory: Path) -> tuple[models.ModelFile, models.ModelFile, models.ModelFile]:
    """classifier 1.0.0, classifier-eu 1.0.0 (fixed shape) and classifier 1.1.0."""
    return (
        models.write(
            models.classifier(seed=1),
            directory=directory,
            name=constants.GLOBAL_MODEL,
            version=constants.FIRST_VERSION,
            request_shape=models.REQUEST_SHAPE,
        ),
        models.write(
            models.classifier(seed=3, shape=models.FIXED_SHAPE),
            directory=directory,
            name=constants.EU_MODEL,
            version=constants.FIRST_VERSION,
            request_shape=models.FIXED_SHAPE,
        ),
        models.write(
            models.classifier(seed=2),
            directory=directory,
            name=constants.GLOBAL_MODEL,
            version=constants.UPGRADE_VERSION,
            request_shape=models.REQUEST_SHAPE,
        ),
    )


def apply_rollouts(
    cluster: clusters.DevCluster,
    *,
    global_: models.ModelFile,
    eu: models.ModelFile,
    timing: manifests.Timing | None,
    say: constants.Say,
) -> None:
    policy = manifests.example(manifests.EU_POLICY)
    global_rollout = manifests.rollout(
        manifests.example(manifests.GLOBAL_ROLLOUT), model=global_, short=timing
    )
    eu_rollout = manifests.rollout(manifests.example(manifests.EU_ROLLOUT), model=eu, short=timing)
    cluster.kubectl("apply", "-f", "-", input=manifests.dump(policy))
    _show_admission(cluster, eu_rollout=eu_rollout, say=say)
    cluster.kubectl(
        "apply",
        "-n",
        constants.ROLLOUT_NAMESPACE,
        "-f",
        "-",
        input=manifests.dump(global_rollout, eu_rollout),
    )


def _show_admission(
    cluster: clusters.DevCluster, *, eu_rollout: dict[str, Any], say: constants.Say
) -> None:
    """The residency webhook refuses the EU model aimed at us-east (a server-side dry run)."""
    stray: dict[str, Any] = {
        **eu_rollout,
        "metadata": {**eu_rollout["metadata"], "name": "classifier-eu-to-us"},
        "spec": {
            **{k: v for k, v in eu_rollout["spec"].items() if k != "residency"},
            "targets": {"regions": ["us-east"]},
            "strategy": {**eu_rollout["spec"]["strategy"], "waves": [{"name": "us-east"}]},
        },
    }
    result = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        constants.ROLLOUT_NAMESPACE,
        "-f",
        "-",
        input=manifests.dump(stray),
        check=False,
    )
    if result.returncode == 0:
        raise constants.DemoFailed(
            "the residency webhook admitted an EU-only model aimed at us-east"
        )
    lines = result.stderr.strip().splitlines() or ["refused"]
    refusal = lines[-1].split("denied the request: ", 1)[-1]
    say(f"admission: a rollout of {constants.EU_MODEL} to us-east is refused: {refusal}")
