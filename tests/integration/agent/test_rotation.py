"""A long-lived operator client keeps working across its certificate's renewal: real mTLS.

The certificate lives four seconds; the renewal decision follows a clock the test moves.
After the first certificate has expired, a client holding it cannot connect, and the
renewing client (new certificate, new channel) still can.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable

import pytest

from edgewave_agent import testing
from edgewave_api import pki
from edgewave_operator import certs
from edgewave_operator.agents import errors
from edgewave_operator.agents.client import AgentClient, ClientTls

pytestmark = pytest.mark.integration
LIFETIME = datetime.timedelta(seconds=4)


def test_the_operator_client_renews_its_certificate_without_a_restart(
    start_agent: Callable[..., testing.AgentProcess], agent_pki: testing.Pki
) -> None:
    agent = start_agent("edge-rotation")
    now = [datetime.datetime.now(datetime.UTC)]
    cert = certs.ClientCertificate(agent_pki.ca, validity=LIFETIME, clock=lambda: now[0])

    def tls() -> ClientTls:
        current = cert.current()
        return ClientTls(
            ca_pem=agent_pki.ca.cert_pem, cert_pem=current.cert_pem, key_pem=current.key_pem
        )

    first = tls()

    async def scenario() -> None:
        async with AgentClient(agent.control, tls=first, renew_tls=tls, timeout=5) as client:
            assert (await client.describe()).agent_id == "edge-rotation"
            assert first.cert_pem is not None
            expired = pki.not_after(first.cert_pem) + datetime.timedelta(seconds=1)
            for _ in range(100):  # bounded: the certificate expires within 4 s
                if datetime.datetime.now(datetime.UTC) > expired:
                    break
                await asyncio.sleep(0.1)
            now[0] = datetime.datetime.now(datetime.UTC)
            assert (await client.describe()).agent_id == "edge-rotation"
            assert cert.issued == 2
            async with AgentClient(agent.control, tls=first, timeout=5) as stale:
                with pytest.raises(errors.AgentUnavailable):
                    await stale.describe()

    started = time.monotonic()
    asyncio.run(scenario())
    print(f"rotation scenario took {time.monotonic() - started:.1f}s")
