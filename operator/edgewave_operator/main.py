"""The operator process: take the leader Lease, then run kopf with Edgewave's handlers.

kopf runs standalone (no peering CRDs, no peering writes) and cluster-wide; leadership
comes from `leader.LeaderElector`. A replica that loses the Lease stops acting and exits
non-zero (its pod restarts as a standby); a clean stop (SIGTERM) releases the Lease so
the standby takes over at once. `python -m edgewave_operator.main` is the same as
`edgewave operator run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys

import kopf

from edgewave_api.errors import EdgewaveError
from edgewave_api.telemetry import logs, tracing
from edgewave_operator import leader
from edgewave_operator.kube import clients
from edgewave_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

LEADERSHIP_LOST_EXIT = 3


def _register_handlers(settings: OperatorSettings) -> None:
    importlib.import_module("edgewave_operator.handlers.registration")
    if settings.admission_webhook:
        # Registers the validating handlers; `registration.configure` starts the server.
        importlib.import_module("edgewave_operator.admission.webhook")


async def serve(settings: OperatorSettings) -> int:
    """Run until stopped; the exit code (0, or LEADERSHIP_LOST_EXIT)."""
    from edgewave_operator.handlers.runtime import Runtime

    if settings.kubeconfig is not None:
        # kopf's own login reads KUBECONFIG.
        os.environ["KUBECONFIG"] = str(settings.kubeconfig)
    api = await clients.connect(settings.kubeconfig)
    stop = asyncio.Event()
    lost = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    elector: leader.LeaderElector | None = None
    if settings.leader_election:
        elector = leader.LeaderElector(
            api,
            namespace=settings.namespace,
            name=settings.lease_name,
            identity=settings.identity,
            duration=settings.lease_duration_seconds,
            renew=settings.lease_renew_seconds,
        )
        acquiring = asyncio.create_task(elector.acquire())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not acquiring.done():
            acquiring.cancel()
            await api.close()
            return 0
    runtime = await Runtime.start(settings, api)
    runtime.stopping = stop
    _register_handlers(settings)
    holding: asyncio.Task[None] | None = None
    if elector is not None:
        holding = asyncio.create_task(elector.hold(lost))
        lost_watch = asyncio.create_task(lost.wait())
        lost_watch.add_done_callback(lambda _: stop.set())
    log.info("operator %s acting", settings.identity)
    try:
        await kopf.operator(
            clusterwide=not settings.watch_namespaces,
            namespaces=settings.watch_namespaces,
            standalone=True,
            memo=kopf.Memo(runtime=runtime),
            stop_flag=stop,
        )
    finally:
        if holding is not None:
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding
        await runtime.close_tasks()
        if elector is not None and not lost.is_set():
            await elector.release()
        await runtime.close()
    return LEADERSHIP_LOST_EXIT if lost.is_set() else 0


def run(settings: OperatorSettings | None = None) -> int:
    settings = settings or OperatorSettings()
    logs.setup_logging(fmt=settings.log_format)
    # One line per handled watch event ("Handler ... succeeded") is noise at fleet scale.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        tracing.setup_tracing(
            service_name="edgewave-operator",
            exporter=settings.trace_exporter,
            endpoint=settings.trace_endpoint,
        )
        return asyncio.run(serve(settings))
    except EdgewaveError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        tracing.shutdown_tracing()


if __name__ == "__main__":
    sys.exit(run())
