"""The `edgewave-agent` command: `serve` runs an agent, `status` asks one how it is.

Flags override the config file. Errors a person can act on (a bad config, an unreachable
agent) are printed as one line with exit code 1, never as a traceback. Once serving, the
agent prints `edgewave-agent ready control=<port> serving=<port>` (ports may be 0 in the
config), so scripts and tests know where it listens.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from edgewave_api.errors import EdgewaveError

app = typer.Typer(
    name="edgewave-agent",
    help="The Edgewave edge agent: stores, verifies, activates and serves engines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def serve(
    *,
    config: Annotated[Path | None, typer.Option(help="agent.yaml")] = None,
    agent_id: Annotated[str | None, typer.Option(help="overrides agent_id")] = None,
    region: Annotated[str | None, typer.Option()] = None,
    zone: Annotated[str | None, typer.Option()] = None,
    jurisdiction: Annotated[str | None, typer.Option()] = None,
    data_dir: Annotated[Path | None, typer.Option()] = None,
    control: Annotated[str | None, typer.Option(help="control address, host:port (mTLS)")] = None,
    serving: Annotated[str | None, typer.Option(help="serving address, host:port (TLS)")] = None,
    port_file: Annotated[Path | None, typer.Option(help="write the bound ports here")] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="plaintext, no client certificates (labs only)")
    ] = False,
    gateway: Annotated[
        str | None,
        typer.Option(help="dial out to this gateway, host:port (mTLS); no control port opens"),
    ] = None,
    log_level: Annotated[str, typer.Option()] = "INFO",
    log_format: Annotated[str | None, typer.Option(help="text, json or auto")] = None,
    metrics_listen: Annotated[
        str | None, typer.Option(help="serve Prometheus /metrics on host:port (0: any port)")
    ] = None,
    trace_exporter: Annotated[str | None, typer.Option(help="none, console or otlp")] = None,
    trace_endpoint: Annotated[str | None, typer.Option(help="OTLP collector endpoint")] = None,
) -> None:
    """Run an agent until SIGTERM or SIGINT (graceful shutdown)."""
    from edgewave_agent import memory, settings
    from edgewave_agent.metrics import AgentMetrics
    from edgewave_agent.server import AgentServer
    from edgewave_api.telemetry import interceptors, logs, tracing

    overrides: dict[str, Any] = {
        "agent_id": agent_id,
        "region": region,
        "zone": zone,
        "jurisdiction": jurisdiction,
        "data_dir": data_dir,
        "port_file": port_file,
        "listen": {"control": control, "serving": serving},
        "insecure": True if insecure else None,
        "gateway": {"address": gateway} if gateway else None,
        "telemetry": {
            "log_format": log_format,
            "metrics_listen": metrics_listen,
            "trace_exporter": trace_exporter,
            "trace_endpoint": trace_endpoint,
        },
    }
    agent_config = settings.load(config, overrides)
    memory.reuse_freed_memory(largest_message=int(agent_config.max_message_bytes))
    telemetry = agent_config.telemetry
    logs.setup_logging(fmt=telemetry.log_format, level=log_level)
    tracing.setup_tracing(
        service_name="edgewave-agent",
        exporter=telemetry.trace_exporter,
        endpoint=telemetry.trace_endpoint,
    )

    async def run() -> None:
        metrics = AgentMetrics(
            agent=agent_config.agent_id, region=agent_config.region, zone=agent_config.zone
        )
        server = AgentServer(
            agent_config,
            observer=metrics,
            interceptors=[interceptors.AioServerInterceptor(agent=agent_config.agent_id)],
        )
        exposed = None
        if telemetry.metrics_listen:
            host, _, port = telemetry.metrics_listen.rpartition(":")
            exposed = metrics.serve(host=host or "0.0.0.0", port=int(port))
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await server.start()
        print(
            f"edgewave-agent ready control={server.control_port} serving={server.serving_port}"
            f" metrics={exposed.port if exposed else None}",
            flush=True,
        )
        await stopping.wait()
        await server.stop()
        if exposed is not None:
            exposed.close()
        tracing.shutdown_tracing()

    asyncio.run(run())


@app.command()
def status(
    *,
    endpoint: Annotated[str, typer.Option(help="host:port of the agent")],
    ca: Annotated[Path | None, typer.Option(help="CA that signed the agent's certificate")] = None,
    cert: Annotated[Path | None, typer.Option(help="client certificate (control port)")] = None,
    key: Annotated[Path | None, typer.Option(help="client key (control port)")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="plaintext")] = False,
    timeout: Annotated[float, typer.Option(help="seconds")] = 10.0,
) -> None:
    """Print an agent's identity, runtimes, store and models."""
    import grpc
    from rich.console import Console
    from rich.table import Table

    from edgewave_proto.agent.v1 import agent_pb2, agent_pb2_grpc

    if insecure:
        channel = grpc.insecure_channel(endpoint)
    else:
        if ca is None:
            raise EdgewaveError("--ca is required with TLS (or pass --insecure)")
        credentials = grpc.ssl_channel_credentials(
            ca.read_bytes(),
            key.read_bytes() if key else None,
            cert.read_bytes() if cert else None,
        )
        channel = grpc.secure_channel(endpoint, credentials)
    with channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        try:
            described = stub.Describe(agent_pb2.DescribeRequest(), timeout=timeout)
        except grpc.RpcError as error:
            raise EdgewaveError(
                f"agent at {endpoint} did not answer: {error.code().name}: {error.details()}"
            ) from None
    console = Console()
    gpus = ", ".join(
        f"{g.name} (SM{g.compute_capability_major}{g.compute_capability_minor})"
        for g in described.gpus
    )
    console.print(
        f"[bold]{described.agent_id}[/] region={described.region} zone={described.zone}"
        f" jurisdiction={described.jurisdiction} version={described.agent_version}"
    )
    console.print(f"GPUs: {gpus or 'none'}")
    console.print("Runtimes: " + ", ".join(f"{r.name} {r.version}" for r in described.runtimes))
    console.print(
        f"Store: {described.store_used_bytes} of {described.store_quota_bytes} bytes used,"
        f" {described.disk_free_bytes} bytes free on disk, {len(described.artifacts)} artifacts"
    )
    table = Table("model", "active", "previous", "backend", "requests", "errors", "p95 s")
    for model in described.models:
        table.add_row(
            model.model,
            model.active_version or "-",
            model.previous_version or "-",
            model.backend or "-",
            str(model.health.requests),
            str(model.health.errors),
            f"{model.health.latency_p95_seconds:.4f}",
        )
    console.print(table)


def main() -> None:
    try:
        app(standalone_mode=True)
    except EdgewaveError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
