"""The gateway's configuration: one YAML file (or flags), validated by pydantic.

Errors are reported one line per problem, naming the field, as the agent's settings do.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ByteSize, ConfigDict, Field, ValidationError, field_validator

from edgewave_api import configfiles, identities
from edgewave_api.errors import PermanentError

MiB = 1 << 20


class ConfigError(PermanentError):
    """The gateway configuration is invalid; the message lists every problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Section):
    cert_file: Path
    key_file: Path
    # The operator's CA: agents' and the operator's client certificates must chain to it.
    client_ca_file: Path
    # SPIFFE trust domain of callers' URI SANs: agents are spiffe://<it>/agent/<name>, the
    # operator spiffe://<it>/operator (see edgewave_api.identities).
    trust_domain: str = identities.DEFAULT_TRUST_DOMAIN

    @field_validator("trust_domain")
    @classmethod
    def _trust_domain(cls, value: str) -> str:
        try:
            return identities.validate_trust_domain(value)
        except identities.IdentityRefused as error:
            raise ValueError(str(error)) from None


class CacheConfig(_Section):
    directory: Path
    # Engines beyond this are evicted least recently used first; pinned ones never.
    capacity_bytes: ByteSize = Field(default=ByteSize(50 * 1024 * MiB), ge=MiB)
    # A partial upload is fsynced and its verified offset recorded every this many bytes.
    checkpoint_bytes: ByteSize = Field(default=ByteSize(16 * MiB), ge=64 * 1024)


class GatewayConfig(_Section):
    name: str = Field(min_length=1, max_length=253)
    listen: str = "0.0.0.0:7444"
    tls: TlsConfig
    cache: CacheConfig
    max_message_bytes: ByteSize = Field(default=ByteSize(16 * MiB + 64 * 1024), ge=MiB)
    # Agents send a heartbeat this often; a session silent for 3x this long is closed.
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    # How long an agent has to open a call the gateway asked for.
    attach_timeout_seconds: float = Field(default=10.0, gt=0)
    # How long an older session of the same name has to answer a ping before it is dropped.
    ping_timeout_seconds: float = Field(default=2.0, gt=0)
    # Watchers see last-seen times move at this resolution (coarse, written on change).
    last_seen_resolution_seconds: float = Field(default=60.0, ge=0)
    # Calls one agent may have in flight through this gateway.
    max_calls_per_agent: int = Field(default=256, ge=1)
    grace_seconds: float = Field(default=5.0, ge=0)
    # After binding, {"port": port, "pid": pid} is written here (for port 0).
    port_file: Path | None = None


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif isinstance(value, Mapping):
            merged[key] = _merge({}, value)
        else:
            merged[key] = value
    return merged


def parse(data: Mapping[str, Any], *, source: str = "config") -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as error:
        lines = [
            f"{source}: {'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}"
            for item in error.errors()
        ]
        raise ConfigError("\n".join(lines)) from None


def load(path: Path | None, overrides: Mapping[str, Any] | None = None) -> GatewayConfig:
    """Read `path` (YAML), apply `overrides` (nested dict; None values ignored), validate."""
    data: dict[str, Any] = {}
    if path is not None:
        data = configfiles.read_mapping(path, error=ConfigError)
    return parse(_merge(data, overrides or {}), source=str(path) if path else "flags")
