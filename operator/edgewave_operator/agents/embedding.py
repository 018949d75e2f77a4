"""The gateway embedded in the operator process: agents of a small fleet dial the operator.

By default the leader runs an `edgewave_gateway.server.Gateway` next to its handlers
(`gateway_listen`), so `make demo` and small fleets need no other Deployment. Its serving
certificate is issued here from the operator's CA (agents trust that CA already), naming
the gateway (spiffe://<trust-domain>/gateway/<name>, `edgewave_api.identities`), written
with the CA to a private directory the gateway reads; its engine cache lives under the
operator's `cache_dir` (a volume), so a restarted operator, or a new leader sharing the
volume, finds what was uploaded before and does not upload it again.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from edgewave_api import identities, pki
from edgewave_api.errors import PermanentError
from edgewave_gateway import server as gateway_server
from edgewave_gateway import settings as gateway_settings
from edgewave_operator.settings import OperatorSettings

LOCAL_ADDRESS = "127.0.0.1"
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def bound_host(listen: str) -> str | None:
    """The one address `listen` (host:port) binds, or None for every address. Pure."""
    host = listen.rsplit(":", 1)[0] if ":" in listen else ""
    return None if host in _WILDCARDS else host.strip("[]")


def _ip_sans(listen: str) -> tuple[str, ...]:
    """Loopback, plus the bound address when it is an IP literal (agents dial it)."""
    host = bound_host(listen)
    try:
        extra = () if host is None else (str(ipaddress.ip_address(host)),)
    except ValueError:  # a host name: it goes in gateway_hosts (DNS names) instead
        extra = ()
    return tuple(dict.fromkeys((LOCAL_ADDRESS, *extra)))


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def config(
    settings: OperatorSettings, *, ca: pki.KeyPair, ca_pem: bytes
) -> gateway_settings.GatewayConfig:
    """The embedded gateway's configuration, with its TLS files written (0600, dir 0700)."""
    root = settings.cache_dir / "gateway"
    tls_dir = root / "tls"
    tls_dir.mkdir(parents=True, exist_ok=True)
    tls_dir.chmod(0o700)
    served = identities.issue_gateway(
        ca,
        name=settings.gateway_name,
        dns_names=("localhost", *settings.gateway_hosts),
        ip_addresses=_ip_sans(settings.gateway_listen or ""),
        trust_domain=settings.trust_domain,
    )
    _write_private(tls_dir / "tls.crt", served.cert_pem)
    _write_private(tls_dir / "tls.key", served.key_pem)
    _write_private(tls_dir / "ca.crt", ca_pem)
    return gateway_settings.parse(
        {
            "name": settings.gateway_name,
            "listen": settings.gateway_listen,
            "tls": {
                "cert_file": str(tls_dir / "tls.crt"),
                "key_file": str(tls_dir / "tls.key"),
                "client_ca_file": str(tls_dir / "ca.crt"),
                "trust_domain": settings.trust_domain,
            },
            "cache": {
                "directory": str(root / "cache"),
                "capacity_bytes": settings.gateway_cache_bytes,
            },
            "port_file": str(settings.gateway_port_file) if settings.gateway_port_file else None,
        },
        source="operator settings (embedded gateway)",
    )


async def start(
    settings: OperatorSettings, *, ca: pki.KeyPair, ca_pem: bytes
) -> gateway_server.Gateway:
    """Start the embedded gateway; the operator reaches it at `address(gateway)`."""
    gateway = gateway_server.Gateway(config(settings, ca=ca, ca_pem=ca_pem))
    try:
        await gateway.start()
    except (OSError, RuntimeError) as error:
        raise PermanentError(
            f"the embedded gateway cannot listen on {settings.gateway_listen} ({error}): free"
            " that port, or set EDGEWAVE_GATEWAY_LISTEN (empty: no embedded gateway)"
        ) from None
    return gateway


def address(gateway: gateway_server.Gateway, *, listen: str) -> str:
    """Where the operator dials its own gateway: loopback when it listens on every address,
    else the one address it is bound to (loopback would not reach it)."""
    host = bound_host(listen) or LOCAL_ADDRESS
    return f"[{host}]:{gateway.port}" if ":" in host else f"{host}:{gateway.port}"
