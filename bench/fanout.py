"""Fan-out through gateways: how many engine-sized transfers leave the central cluster.

R regions, each with one edge gateway and N/R agents that dial out to it (real code:
`edgewave_gateway.server.Gateway` and `edgewave_agent.server.AgentServer` in gateway mode,
mTLS gRPC, all in this process). The "operator" uploads the engine to each gateway's cache
(`GatewayClient.push_engine`) and asks each gateway to deliver it to its agents; every
agent verifies the sha256 as it receives. Bytes the operator sent are counted by the
clients; without gateways each agent would receive its own copy from the operator (N).

Prints `fanout central_bytes_per_engine=<operator bytes / engine size> regions=<R>
agents=<N>`, after a detail line (seconds per leg). Goal: at most R + 0.05.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import shutil
import tempfile
import time
from pathlib import Path

from edgewave_agent import settings as agent_settings
from edgewave_agent import testing as agent_testing
from edgewave_agent.server import AgentServer
from edgewave_gateway import client as gateway_client
from edgewave_gateway import settings as gateway_settings
from edgewave_gateway import testing
from edgewave_gateway.server import Gateway

MiB = 1 << 20


async def _run(*, root: Path, regions: int, per_region: int, size: int, parallel: int) -> None:
    pki = testing.GatewayPki.create(root / "pki")
    engine = random.Random(1).randbytes(size)
    digest = hashlib.sha256(engine).hexdigest()
    engine_path = root / "engine.bin"
    engine_path.write_bytes(engine)
    del engine
    placeholder = agent_testing.Pki.create(root / "placeholder")
    gateways: list[Gateway] = []
    agents: list[AgentServer] = []
    names: list[list[str]] = []
    try:
        for r in range(regions):
            config = testing.gateway_config(pki_=pki, root=root, name=f"gw-{r}")
            config["port_file"] = None
            gateway = Gateway(gateway_settings.parse(config))
            await gateway.start()
            gateways.append(gateway)
            region_names = [f"r{r}-a{i:02d}" for i in range(per_region)]
            names.append(region_names)
            for name in region_names:
                # agent_config's TLS files and activation key are replaced just below.
                agent_config = agent_testing.agent_config(
                    pki_=placeholder,
                    data_dir=root / name,
                    agent_id=name,
                    listen={"serving": None},
                    port_file=None,
                    status_interval_seconds=5.0,
                )
                agent_config.update(
                    testing.agent_gateway_settings(
                        pki_=pki, name=name, address=f"127.0.0.1:{gateway.port}"
                    )
                )
                agents.append(
                    AgentServer(agent_settings.parse(agent_config), gpus=[], inference_threads=1)
                )
        for batch in range(0, len(agents), 20):
            await asyncio.gather(*(a.start() for a in agents[batch : batch + 20]))
        for agent in agents:
            assert agent.dialer is not None
            await asyncio.wait_for(agent.dialer.connected.wait(), 60)
        clients = [
            gateway_client.GatewayClient(
                f"127.0.0.1:{g.port}",
                ca_pem=pki.ca.cert_pem,
                cert_pem=pki.operator.cert_pem,
                key_pem=pki.operator.key_pem,
                server_name="localhost",
            )
            for g in gateways
        ]
        started = time.perf_counter()
        await asyncio.gather(*(c.push_engine(engine_path, digest) for c in clients))
        uploaded = time.perf_counter()

        async def region(client: gateway_client.GatewayClient, members: list[str]) -> None:
            limit = asyncio.Semaphore(parallel)

            async def one(name: str) -> None:
                async with limit:
                    final = await client.deliver(name, digest)
                    assert final.done, final

            await asyncio.gather(*(one(n) for n in members))

        await asyncio.gather(*(region(c, m) for c, m in zip(clients, names, strict=True)))
        delivered = time.perf_counter()
        central = sum(c.uploaded_bytes for c in clients)
        for client in clients:
            await client.close()
        agent_count = regions * per_region
        print(
            f"fanout detail upload_s={uploaded - started:.1f} deliver_s={delivered - uploaded:.1f}"
            f" engine_mib={size / MiB:.0f} delivered_gib={agent_count * size / (1 << 30):.2f}",
            flush=True,
        )
        print(
            f"fanout central_bytes_per_engine={central / size:.3f} regions={regions}"
            f" agents={agent_count}",
            flush=True,
        )
    finally:
        for agent in agents:
            await agent.stop(grace=0)
        for gateway in gateways:
            await gateway.stop(grace=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--agents-per-region", type=int, default=20)
    parser.add_argument("--engine-mib", type=int, default=64)
    parser.add_argument("--parallel", type=int, default=4, help="deliveries per gateway at once")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ew-fan-", dir="/tmp"))
    try:
        asyncio.run(
            _run(
                root=root,
                regions=args.regions,
                per_region=args.agents_per_region,
                size=args.engine_mib * MiB,
                parallel=args.parallel,
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
