"""`edgewave rollout pause|resume|promote|abort|retry|undo|restart NAME`: act on a rollout.

Each command sends one request through `lifecycle.requesting` (an annotation the operator
answers in `status.control`; the spec is never changed, so GitOps tools see no drift and
a sync does not undo it), prints what changed, and exits 1 with one line when the request
cannot apply (`promote` on a rollout that is not waiting, `resume` of a rollout paused in
its manifest...) or the operator does not answer within `--timeout`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from edgewave_operator.commands import common

if TYPE_CHECKING:
    from pathlib import Path

    from edgewave_api import controls

NameArgument = Annotated[str, typer.Argument(help="The ModelRollout's name.")]
TimeoutOption = Annotated[
    float, typer.Option(help="Seconds to wait for the operator's answer.", min=1, max=3600)
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="rollout",
        help="Pause, resume, promote, abort, retry, undo or restart a rollout.",
        no_args_is_help=True,
    )
    group.command("pause")(pause)
    group.command("resume")(resume)
    group.command("promote")(promote)
    group.command("abort")(abort)
    group.command("retry")(retry)
    group.command("undo")(undo)
    group.command("restart")(restart)
    app.add_typer(group)


def pause(
    name: NameArgument,
    *,
    namespace: common.NamespaceOption = None,
    kubeconfig: common.KubeconfigOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Stop before the next batch (a batch in flight completes); `resume` continues."""
    _send("pause", name=name, namespace=namespace, kubeconfig=kubeconfig, timeout=timeout)


def resume(
    name: NameArgument,
    *,
    namespace: common.NamespaceOption = None,
    kubeconfig: common.KubeconfigOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Continue a rollout paused by `pause`, from the same wave."""
    _send("resume", name=name, namespace=namespace, kubeconfig=kubeconfig, timeout=timeout)


def promote(
    name: NameArgument,
    *,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Approve every remaining manual gate and skip pauses between waves."
        ),
    ] = False,
    namespace: common.NamespaceOption = None,
    kubeconfig: common.KubeconfigOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Approve the wave awaiting approval (a manual gate)."""
    _send(
        "promote", name=name, namespace=namespace, kubeconfig=kubeconfig, timeout=timeout,
        full=full,
    )  # fmt: skip


def abort(
    name: NameArgument,
    *,
    namespace: common.NamespaceOption = None,
    kubeconfig: common.KubeconfigOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Roll back every agent this version reached; it stays so until the spec changes."""
    _send("abort", name=name, namespace=namespace, kubeconfig=kubeconfig, timeout=timeout)


def retry(
    name: NameArgument,
    *,
    namespace: common.NamespaceOption = None,
    kubeconfig: common.KubeconfigOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Restart a failed rollout from its failed wave."""
    _send("retry", name=name, namespace=namespace, kubeconfig=kubeconfig, timeout=timeout)


def undo(
    name: NameArgument,
    *,
    to_version: Annotated[
        str | None,
        typer.Option("--to-version", help="The version to go back to (default: the previous)."),
    ] = None,
    namespace: common.NamespaceOption = None,
    kubeconfig: common.KubeconfigOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Take agents back to the previous version, wave by wave, and stay there."""
    _send(
        "undo", name=name, namespace=namespace, kubeconfig=kubeconfig, timeout=timeout,
        to_version=to_version,
    )  # fmt: skip


def restart(
    name: NameArgument,
    *,
    namespace: common.NamespaceOption = None,
    kubeconfig: common.KubeconfigOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Roll the current version out again from the first wave (after an abort too)."""
    _send("restart", name=name, namespace=namespace, kubeconfig=kubeconfig, timeout=timeout)


def _send(
    action: str,
    *,
    name: str,
    namespace: str | None,
    kubeconfig: Path | None,
    timeout: float,
    full: bool = False,
    to_version: str | None = None,
) -> None:
    import asyncio

    from edgewave_api import controls
    from edgewave_operator import reading

    where = namespace or reading.default_namespace(kubeconfig)
    outcome = asyncio.run(
        _request(
            kubeconfig,
            namespace=where,
            name=name,
            action=controls.Action(action),
            full=full,
            to_version=to_version,
            wait_seconds=timeout,
        )
    )
    typer.echo(outcome)


async def _request(
    kubeconfig: Path | None,
    *,
    namespace: str,
    name: str,
    action: controls.Action,
    full: bool,
    to_version: str | None,
    wait_seconds: float,
) -> str:
    from edgewave_operator.kube import clients
    from edgewave_operator.lifecycle import requesting

    api = await clients.connect(kubeconfig)
    try:
        outcome = await requesting.send(
            api, namespace=namespace, name=name, action=action, full=full,
            to_version=to_version, wait_seconds=wait_seconds,
        )  # fmt: skip
    finally:
        await api.close()
    return outcome.line()
