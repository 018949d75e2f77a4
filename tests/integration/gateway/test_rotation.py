"""The operator's gateway clients pick up its renewed certificate: real gateway, real mTLS.

The operator's certificate lives four seconds; its renewal follows a clock the test moves.
The watch of a gateway's sessions outlives the first certificate on its established
connection; after the gateway restarts on the same port (every connection is new), the
watch finds the agent again and an upload succeeds with the renewed certificate, while a
client holding the first certificate cannot connect at all.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from edgewave_api import pki
from edgewave_gateway import client as gateway_client
from edgewave_gateway import testing
from edgewave_operator import certs
from edgewave_operator.agents import errors, gatewayed
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import ClientTls
from tests.integration.gateway import helpers
from tests.integration.gateway.conftest import StartAgent, StartGateway

pytestmark = pytest.mark.integration
LIFETIME = datetime.timedelta(seconds=4)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def _until(
    condition: Callable[[], object],
    *,
    what: str,
    tick: Callable[[], None] = lambda: None,
    tries: int = 600,
) -> None:
    """Poll `condition()` every 50 ms, calling `tick()` first (bounded: `tries` times)."""
    for _ in range(tries):
        tick()
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{what}: not within {tries * 0.05:.0f}s")


async def _upload_retrying(gateways: gatewayed.Gateways, engine: Artifact) -> tuple[int, int]:
    """Upload to gw-1, retrying while it is unavailable (bounded: about 10 s), so a client
    still backing off from the restart has dialled again (and shown why it cannot)."""
    last: errors.AgentUnavailable | None = None
    for attempt in range(1, 41):
        try:
            return await gateways.upload("gw-1", engine), attempt
        except errors.AgentUnavailable as error:
            last = error
            await asyncio.sleep(0.25)
    raise AssertionError(f"no upload after the gateway restarted: {last}")


def test_gateway_clients_renew_the_operator_certificate_without_a_restart(
    start_gateway: StartGateway,
    start_agent: StartAgent,
    gateway_pki: testing.GatewayPki,
    short_tmp: Path,
) -> None:
    gateway = start_gateway()
    start_agent("edge-1", gateway=gateway.address)
    asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-1"}))
    now = [_utcnow()]
    # The operator's own certificate as the operator issues it (role URI operator, default
    # trust domain: the gateway's too).
    cert = certs.ClientCertificate(gateway_pki.ca, validity=LIFETIME, clock=lambda: now[0])

    def tls() -> ClientTls:
        current = cert.current()
        return ClientTls(
            ca_pem=gateway_pki.ca.cert_pem,
            cert_pem=current.cert_pem,
            key_pem=current.key_pem,
            server_name="localhost",
        )

    first = tls()
    assert first.cert_pem is not None and first.key_pem is not None
    engines = []
    for index in (1, 2):
        path = short_tmp / f"engine-{index}.bin"
        path.write_bytes(bytes([index]) * 300_000)
        engines.append(Artifact.from_file(path))

    async def scenario() -> None:
        gateways = gatewayed.Gateways(tls=first, on_change=lambda _agent: None, renew_tls=tls)
        gateways.add("gw-1", gateway.address)
        watching = asyncio.create_task(gateways.run())
        try:
            await _until(lambda: gateways.session_of("edge-1"), what="agent listed")
            assert await gateways.upload("gw-1", engines[0]) == engines[0].size
            assert first.cert_pem is not None
            expired = pki.not_after(first.cert_pem) + datetime.timedelta(seconds=1)
            await _until(lambda: _utcnow() > expired, what="first certificate expired")
            # The watch stream outlived the certificate it was dialled with.
            assert gateways.session_of("edge-1") is not None
            port = gateway.port
            gateway.kill()
            restarted = await asyncio.to_thread(start_gateway, listen=f"127.0.0.1:{port}")
            assert restarted.port == port
            # From here the operator's clock runs (each renewal is due after ~2.7 s).
            now[0] = _utcnow()
            sent, attempts = await _upload_retrying(gateways, engines[1])
            assert sent == engines[1].size
            assert cert.issued >= 2
            print(f"upload after the restart: attempt {attempts}")

            def tick() -> None:
                now[0] = _utcnow()

            await _until(
                lambda: gateways.session_of("edge-1"), what="agent listed again", tick=tick
            )
            async with gateway_client.GatewayClient(
                restarted.address,
                ca_pem=gateway_pki.ca.cert_pem,
                cert_pem=first.cert_pem,
                key_pem=first.key_pem or b"",
                server_name="localhost",
            ) as stale:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stale.sessions()
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            watching.cancel()
            with pytest.raises(asyncio.CancelledError):
                await watching

    started = time.monotonic()
    asyncio.run(scenario())
    print(f"gateway rotation scenario took {time.monotonic() - started:.1f}s")
