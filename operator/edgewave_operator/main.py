"""The operator process: serve health and admission on every replica; reconcile on the leader.

Two kopf operators run in one process, both standalone (no peering) and with the same
stop flag. The serving one (`handlers.serving`: `/healthz` on `health_port`, the
admission webhook) starts at once on every replica, so probes and admission reviews are
answered by a standby too. The acting one (`handlers.registration`: rollouts, inventory,
drift, the deletion finalizer) starts only once this replica holds the leader Lease
(`leader.LeaderElector`). A replica that loses the Lease stops both and exits non-zero
(its pod restarts as a standby); a clean stop (SIGTERM) releases the Lease so the standby
takes over at once. `python -m edgewave_operator.main` is the same as
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
from typing import Any

import kopf

from edgewave_api.errors import EdgewaveError
from edgewave_api.telemetry import logs, tracing
from edgewave_operator import leader
from edgewave_operator.kube import clients
from edgewave_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

LEADERSHIP_LOST_EXIT = 3


def _trap_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set `stop` (each kopf installs its own handlers; this takes them back)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)


def _start_kopf(
    settings: OperatorSettings,
    *,
    name: str,
    registry: kopf.OperatorRegistry,
    memo: kopf.Memo,
    stop: asyncio.Event,
    liveness_endpoint: str | None = None,
) -> asyncio.Task[None]:
    """One kopf operator in its own task (kopf keeps its context in context variables)."""
    ready = asyncio.Event()

    async def operate() -> None:
        trap = asyncio.create_task(ready.wait())
        trap.add_done_callback(lambda _: _trap_signals(stop))
        try:
            await kopf.operator(
                registry=registry,
                clusterwide=not settings.watch_namespaces,
                namespaces=settings.watch_namespaces,
                standalone=True,
                memo=memo,
                stop_flag=stop,
                ready_flag=ready,
                liveness_endpoint=liveness_endpoint,
            )
        finally:
            trap.cancel()

    task = asyncio.create_task(operate(), name=name)
    # Whichever operator ends, for whatever reason, the process stops.
    task.add_done_callback(lambda _: stop.set())
    return task


async def _lead(
    settings: OperatorSettings, *, api: Any, stop: asyncio.Event, leading: asyncio.Event
) -> bool:
    """Wait for the Lease, then reconcile until stopped; True if leadership was lost."""
    from edgewave_operator.handlers import registration
    from edgewave_operator.handlers.runtime import Runtime

    lost = asyncio.Event()
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
            with contextlib.suppress(asyncio.CancelledError):
                await acquiring
            return False
    try:
        runtime = await Runtime.start(settings, api)
    except BaseException:
        if elector is not None:
            await elector.release()  # let a standby try at once
        raise
    leading.set()
    runtime.stopping = stop
    holding: asyncio.Task[None] | None = None
    if elector is not None:
        holding = asyncio.create_task(elector.hold(lost))
        lost_watch = asyncio.create_task(lost.wait())
        lost_watch.add_done_callback(lambda _: stop.set())
    log.info("operator %s acting", settings.identity)
    try:
        await _start_kopf(
            settings,
            name="acting",
            registry=registration.REGISTRY,
            memo=kopf.Memo(runtime=runtime),
            stop=stop,
        )
    finally:
        leading.clear()
        if holding is not None:
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding
        await runtime.close_tasks()
        if elector is not None and not lost.is_set():
            await elector.release()
        await runtime.close(api=False)
    return lost.is_set()


async def serve(settings: OperatorSettings) -> int:
    """Run until stopped; the exit code (0, or LEADERSHIP_LOST_EXIT)."""
    from edgewave_operator.handlers import serving

    if settings.kubeconfig is not None:
        # kopf's own login reads KUBECONFIG.
        os.environ["KUBECONFIG"] = str(settings.kubeconfig)
    api = await clients.connect(settings.kubeconfig)
    try:
        await clients.check(api)
    except EdgewaveError:
        await api.close()
        raise
    stop = asyncio.Event()
    leading = asyncio.Event()
    _trap_signals(stop)
    if settings.admission_webhook:
        # Registers the validating handlers in `serving.REGISTRY`; its startup serves them.
        importlib.import_module("edgewave_operator.admission.webhook")
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    served = _start_kopf(
        settings,
        name="serving",
        registry=serving.REGISTRY,
        memo=serving.memo_for(
            serving.Serving(settings=settings, api=api, stopping=stop, leading=leading)
        ),
        stop=stop,
        liveness_endpoint=liveness,
    )
    lost = False
    try:
        lost = await _lead(settings, api=api, stop=stop, leading=leading)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await served
        await api.close()
    return LEADERSHIP_LOST_EXIT if lost else 0


def run(settings: OperatorSettings | None = None) -> int:
    settings = settings or OperatorSettings()
    logs.setup_logging(fmt=settings.log_format)
    # One line per handled watch event ("Handler ... succeeded") is noise at fleet scale.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # Nor is a line per health probe (every few seconds, per replica).
    logging.getLogger("kopf.activities.probe").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
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
