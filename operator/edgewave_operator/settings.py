"""The operator's settings: environment (`EDGEWAVE_*`) and flags, validated in one place.

Defaults suit a cluster; tests and the demo shorten the periods (probe interval, gate
windows come from the rollout itself). Every period that trades API-server writes for
freshness is here, with the write it saves named next to it.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgewave_api import identities
from edgewave_api.telemetry import logs, tracing

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}$")


def _identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGEWAVE_", extra="ignore", frozen=True)

    namespace: str = "edgewave-system"
    """Where the operator keeps its own objects: CA and signing-key Secrets, the leader Lease."""
    kubeconfig: Path | None = None
    """Kubeconfig to use; in-cluster credentials when unset and running in a pod."""
    watch_namespaces: tuple[str, ...] = ()
    """Namespaces whose ModelRollouts this operator handles; every namespace when empty.
    EdgeAgents and ResidencyPolicies are cluster-scoped and always watched."""
    identity: str = Field(default_factory=_identity)
    """This replica's name in the leader Lease."""

    leader_election: bool = True
    lease_name: str = "edgewave-operator"
    lease_duration_seconds: float = Field(default=15.0, gt=0)
    """A standby takes over at most this long after the leader stopped renewing."""
    lease_renew_seconds: float = Field(default=5.0, gt=0)
    """How often the leader renews (one Lease write each time)."""

    ca_secret: str = "edgewave-ca"
    """Secret (in `namespace`) with the operator's CA (`tls.crt`, `tls.key`); made if absent."""
    signing_secret: str = "edgewave-signing-key"
    """Secret (in `namespace`) holding the Ed25519 grant signing key; created if absent."""
    trust_domain: str = identities.DEFAULT_TRUST_DOMAIN
    """SPIFFE trust domain of the operator's own client certificate
    (`spiffe://<it>/operator`); agents' `tls.trust_domain` must be the same."""

    @field_validator("trust_domain")
    @classmethod
    def _trust_domain(cls, value: str) -> str:
        try:
            return identities.validate_trust_domain(value)
        except identities.IdentityRefused as error:
            raise ValueError(str(error)) from None

    insecure_agents: bool = False
    """Talk plaintext gRPC to agents (labs only; agents must run with --insecure)."""

    gateway_listen: str | None = "0.0.0.0:7444"
    """Where the gateway embedded in the operator listens for agents dialling in (the leader
    runs it); empty or unset: no embedded gateway (agents dial standalone `gateways`)."""
    gateway_name: str = Field(default="embedded", min_length=1, max_length=253)
    """The embedded gateway's name (shown in `EdgeAgent.status.connection.gateway`)."""
    gateway_hosts: tuple[str, ...] = ()
    """DNS names agents dial the embedded gateway by (its serving certificate's SANs, with
    `localhost` and `127.0.0.1`), such as the operator Service's name."""
    gateway_cache_bytes: int = Field(default=20 * 1024**3, ge=1024**2)
    """The embedded gateway's engine cache (under `cache_dir`/gateway), least recently used
    engines evicted beyond it."""
    gateway_port_file: Path | None = None
    """After binding, the embedded gateway writes {"port": ..., "pid": ...} here (port 0)."""
    gateways: dict[str, str] = Field(default_factory=dict)
    """Standalone gateways (`edgewave gateway run`): name -> `host:port` the operator reaches
    them at; their serving certificates must be issued by the operator's CA."""

    @model_validator(mode="after")
    def _gateways_are_distinct_addresses(self) -> OperatorSettings:
        for name, address in self.gateways.items():
            if not name or not _HOST_PORT.match(address):
                raise ValueError(
                    f"gateways: {name!r}: {address!r} is not host:port (the gateway's address)"
                )
        if self.gateway_listen and self.gateway_name in self.gateways:
            raise ValueError(
                f"gateways: {self.gateway_name!r} is the embedded gateway's name (gateway_name);"
                " give the standalone gateway another name"
            )
        return self

    probe_interval_seconds: float = Field(default=10.0, gt=0)
    """Describe each agent this often while it answers (no API write unless it changed)."""
    probe_max_backoff_seconds: float = Field(default=120.0, gt=0)
    """Longest wait between Describes of an agent that does not answer."""
    probe_timeout_seconds: float = Field(default=5.0, gt=0)
    probe_concurrency: int = Field(default=64, ge=1)
    last_seen_refresh_seconds: float = Field(default=300.0, gt=0)
    """An unchanged, reachable agent's status is written once per period (lastSeen)."""

    push_concurrency: int = Field(default=16, ge=1)
    """Agents updated at once across all batches (each batch is also bounded by its wave)."""
    push_chunk_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    rpc_timeout_seconds: float = Field(default=30.0, gt=0)
    activate_timeout_seconds: float = Field(default=300.0, gt=0)

    reconcile_period_seconds: float = Field(default=30.0, gt=0)
    """A rollout with nothing to wait for still looks again this often (drift repair)."""
    status_min_interval_seconds: float = Field(default=1.0, ge=0)
    """Status writes of one rollout are at least this far apart (coalesced in between)."""

    cache_dir: Path = Path("/var/cache/edgewave")
    """Engine cache and fetched models (a PVC in the cluster)."""
    max_build_workers: int = Field(default=2, ge=1)
    model_root: Path | None = None
    """`file://` model URIs must name a file below this directory; none: they are refused
    (a rollout's author must not make the operator read its own files)."""
    max_model_bytes: int = Field(default=2 << 30, ge=1)
    """Largest model the operator downloads (2 GiB: the most an embedded ONNX file holds)."""
    model_fetch_deadline_seconds: float = Field(default=1800.0, gt=0)
    """A model download, redirects included, is stopped after this long (and retried)."""
    central_builds: bool = True
    """Build engines in the operator's own workers; false: every target builds its own
    engine (an operator image without toolchains)."""

    keep_models_annotation: str = "edgewave.io/keep-models"
    """On a ModelRollout, "true" keeps its models on agents when it is deleted."""

    admission_webhook: bool = False
    """Serve the residency admission webhook (`EDGEWAVE_WEBHOOK_*` configure it)."""

    health_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve `/healthz` (liveness and readiness) on this port, on every replica, leader or
    standby; off when unset or 0."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port (0: any free port); off when unset."""
    log_format: logs.LogFormat = "text"
    """Log lines as `text`, `json` (one object per line) or `auto` (json unless a terminal)."""
    trace_exporter: tracing.Exporter = "none"
    """Send traces nowhere (`none`), to stderr (`console`) or to a collector (`otlp`)."""
    trace_endpoint: str | None = None
    """OTLP collector for `trace_exporter=otlp` (else OTEL_EXPORTER_OTLP_ENDPOINT)."""
