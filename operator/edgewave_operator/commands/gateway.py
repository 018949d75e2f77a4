"""`edgewave gateway run`: an edge gateway that agents behind NAT dial out to.

Flags override the config file (see `edgewave_gateway.settings`). Once listening it prints
`edgewave-gateway ready port=<port>`; SIGTERM or SIGINT stops it gracefully.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="gateway",
        help="The edge gateway: agents dial out to it, the operator reaches them through it.",
        no_args_is_help=True,
    )
    group.command("run")(run)
    app.add_typer(group, name="gateway")


def run(
    *,
    config: Annotated[Path | None, typer.Option(help="gateway.yaml")] = None,
    name: Annotated[str | None, typer.Option(help="this gateway's name")] = None,
    listen: Annotated[str | None, typer.Option(help="host:port (mTLS)")] = None,
    cert: Annotated[Path | None, typer.Option(help="serving certificate (PEM)")] = None,
    key: Annotated[Path | None, typer.Option(help="its private key (PEM)")] = None,
    client_ca: Annotated[Path | None, typer.Option(help="the operator's CA (PEM)")] = None,
    trust_domain: Annotated[
        str | None, typer.Option(help="SPIFFE trust domain of callers (the operator's)")
    ] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="engine cache directory")] = None,
    cache_capacity: Annotated[str | None, typer.Option(help="e.g. 50GiB")] = None,
    port_file: Annotated[Path | None, typer.Option(help="write the bound port here")] = None,
    log_level: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Run a gateway until SIGTERM or SIGINT."""
    import asyncio
    import signal

    from edgewave_api.telemetry import logs
    from edgewave_gateway import settings
    from edgewave_gateway.server import Gateway

    overrides: dict[str, Any] = {
        "name": name,
        "listen": listen,
        "port_file": port_file,
        "tls": {
            "cert_file": cert,
            "key_file": key,
            "client_ca_file": client_ca,
            "trust_domain": trust_domain,
        },
        "cache": {"directory": cache_dir, "capacity_bytes": cache_capacity},
    }
    gateway_config = settings.load(config, overrides)
    logs.setup_logging(fmt="text", level=log_level)

    async def serve() -> None:
        gateway = Gateway(gateway_config)
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await gateway.start()
        print(f"edgewave-gateway ready port={gateway.port}", flush=True)
        await stopping.wait()
        await gateway.stop()

    asyncio.run(serve())
