"""The agent's configuration: one YAML file, validated by pydantic, overridable by flags.

Errors are reported as one line per problem ("config agent.yaml: store.quota_bytes: ...")
so a person fixing a node sees what to change without a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from edgewave_api import configfiles, identities
from edgewave_api.errors import PermanentError
from edgewave_api.telemetry import logs, tracing

MiB = 1 << 20


class ConfigError(PermanentError):
    """The configuration is invalid; the message lists every problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenConfig(_Section):
    # mTLS: every call, including Push/Activate/Rollback/Remove/Build (the operator's port).
    control: str = "0.0.0.0:7443"
    # TLS without client certificates: inference, health, Describe, Stat, WatchStatus.
    serving: str | None = "0.0.0.0:8001"


class TlsConfig(_Section):
    cert_file: Path | None = None
    key_file: Path | None = None
    # The operator's CA: client certificates on the control port must be signed by it.
    client_ca_file: Path | None = None
    # SPIFFE trust domain of callers' URI SANs: only spiffe://<it>/operator may change this
    # agent, directly or relayed by a gateway (see edgewave_api.identities).
    trust_domain: str = identities.DEFAULT_TRUST_DOMAIN

    @field_validator("trust_domain")
    @classmethod
    def _trust_domain(cls, value: str) -> str:
        try:
            return identities.validate_trust_domain(value)
        except identities.IdentityRefused as error:
            raise ValueError(str(error)) from None


class StoreConfig(_Section):
    quota_bytes: ByteSize = Field(default=ByteSize(20 * 1024 * MiB))
    max_artifact_bytes: ByteSize | None = None
    # The partial file of a push is fsynced (and its offset recorded) every this many bytes.
    checkpoint_bytes: ByteSize = Field(default=ByteSize(16 * MiB), ge=64 * 1024)
    # Versions kept per model (the active and previous ones always count and stay).
    keep_versions: int = Field(default=3, ge=2)
    # Artifacts stored this recently are never garbage-collected (an activation may follow);
    # older ones that no kept version refers to are deleted.
    pin_seconds: float = Field(default=3600.0, ge=0)
    # A partial push not resumed for this long is deleted (it reserves quota meanwhile).
    partial_ttl_seconds: float = Field(default=86400.0, gt=0)
    # Pushes received at once; more are refused as busy (retried by the operator).
    max_concurrent_pushes: int = Field(default=8, ge=1)
    # A push that received nothing for this long is closed when a new push needs its place.
    idle_push_seconds: float = Field(default=300.0, gt=0)


class GpuOverride(_Section):
    """A GPU to report instead of what NVML finds (labs, simulated fleets)."""

    name: str
    compute_capability: str = Field(pattern=r"^\d+\.\d+$")
    memory_bytes: ByteSize = ByteSize(0)
    uuid: str = ""
    driver_version: str = ""


class ProbeConfig(_Section):
    warmup_runs: int = Field(default=2, ge=0)
    probe_runs: int = Field(default=3, ge=1)
    # A probe slower than this fails the activation; None: no latency limit.
    max_latency_seconds: float | None = None


class FaultInjection(_Section):
    """Test-only faults, to exercise the operator's gates and rollbacks. Off by default.

    Entries are "model:version" or a bare "version" (any model).
    """

    fail_load_for_versions: tuple[str, ...] = ()
    fail_probe_for_versions: tuple[str, ...] = ()
    # Inference on these versions fails (INTERNAL) after a successful activation.
    fail_requests_for_versions: tuple[str, ...] = ()
    # Inference on these versions is delayed by `added_latency_seconds`.
    slow_requests_for_versions: tuple[str, ...] = ()
    added_latency_seconds: float = Field(default=0.0, ge=0)

    @staticmethod
    def matches(entries: tuple[str, ...], *, model: str, version: str) -> bool:
        return version in entries or f"{model}:{version}" in entries


class TelemetryConfig(_Section):
    """Metrics, logs and traces; see docs/observability.md."""

    # Serve Prometheus /metrics on host:port (port 0: any free port, shown in the ready line).
    metrics_listen: str | None = Field(default=None, pattern=r"^\S*:\d+$")
    log_format: logs.LogFormat = "text"
    trace_exporter: tracing.Exporter = "none"
    # OTLP collector for trace_exporter=otlp (else OTEL_EXPORTER_OTLP_ENDPOINT).
    trace_endpoint: str | None = None


class GatewayLinkConfig(_Section):
    """Dial out to an edge gateway instead of listening for the operator (agents behind NAT).

    The agent opens no control port: its AgentService listens on a Unix socket in its data
    directory (mode 0600) and calls reach it through the gateway session. The agent's
    certificate (tls.cert_file) must allow client authentication and carry the URI SAN
    `spiffe://<tls.trust_domain>/agent/<agent_id>` (`edgewave_api.identities`).
    """

    # host:port of the gateway.
    address: str = Field(pattern=r"^\S+:\d+$")
    # Name to check the gateway's certificate against, when the address is an IP or differs.
    server_name: str | None = None
    # CA of the gateway's certificate; default: tls.client_ca_file (the operator's CA).
    ca_file: Path | None = None
    # Reconnect after a lost session: exponential from initial to max, with jitter.
    backoff_initial_seconds: float = Field(default=0.5, gt=0)
    backoff_max_seconds: float = Field(default=30.0, gt=0)
    # HTTP/2 keepalive pings on the gateway connection.
    keepalive_seconds: float = Field(default=20.0, ge=1)
    keepalive_timeout_seconds: float = Field(default=10.0, ge=1)
    # Default: <data_dir>/run/control.sock (a Unix socket path is at most 107 bytes).
    control_socket: Path | None = None


class InferenceConfig(_Section):
    """Limits of the serving port, so one inference request cannot stall or exhaust the agent.

    Memory: a request waiting for a worker holds its message (at most `max_request_bytes`);
    one being answered holds at most `MEMORY_FACTOR` times its message plus its response
    (received bytes, parsed message, decoded tensors; outputs, their bytes, the encoded
    response). So inference holds at most `memory_cap_bytes()`: 1.4 GiB with the defaults.
    """

    # The largest ModelInfer message accepted (gRPC max receive length of the serving port).
    max_request_bytes: ByteSize = Field(default=ByteSize(64 * MiB), ge=MiB)
    # The largest response: outputs over it are refused (RESOURCE_EXHAUSTED) before encoding.
    max_response_bytes: ByteSize = Field(default=ByteSize(64 * MiB), ge=MiB)
    # Elements of all input tensors of one request together (16 Mi: 64 MiB of FP32).
    max_elements: int = Field(default=16 * MiB, ge=1)
    # RPCs in flight on the serving port (inference, health, status streams); more get
    # RESOURCE_EXHAUSTED from gRPC.
    max_concurrent_rpcs: int = Field(default=8, ge=1)
    # Worker threads that decode, run and encode requests; the others wait for one.
    threads: int = Field(default=2, ge=1, le=256)

    # Bytes held per request being answered, in multiples of its request plus its response.
    MEMORY_FACTOR: ClassVar[int] = 4

    def memory_cap_bytes(self) -> int:
        """The most memory inference requests hold at once (what the README states)."""
        waiting = max(self.max_concurrent_rpcs - self.threads, 0) * int(self.max_request_bytes)
        working = (
            self.threads
            * self.MEMORY_FACTOR
            * (int(self.max_request_bytes) + int(self.max_response_bytes))
        )
        return waiting + working


class AgentConfig(_Section):
    agent_id: str = Field(min_length=1)
    region: str = ""
    zone: str = ""
    jurisdiction: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    data_dir: Path
    listen: ListenConfig = ListenConfig()
    tls: TlsConfig = TlsConfig()
    # Plaintext, every call allowed to everyone: labs only; the agent logs a warning.
    insecure: bool = False
    # Ed25519 public key (PEM) of the operator; activations must be signed by its private half.
    activation_public_key_file: Path | None = None
    activation_public_key_pem: str | None = None
    # The largest message on the control port (push chunks); see `inference` for the other.
    max_message_bytes: ByteSize = Field(default=ByteSize(16 * MiB), ge=MiB)
    # RPCs in flight on the control port (pushes, status streams included).
    max_concurrent_control_rpcs: int = Field(default=64, ge=1)
    inference: InferenceConfig = InferenceConfig()
    # After binding, {"control": port, "serving": port} is written here (for port 0).
    port_file: Path | None = None
    gpus: tuple[GpuOverride, ...] | None = None
    status_interval_seconds: float = Field(default=5.0, gt=0)
    # WatchStatus: no stream updates faster than this, and at most this many streams at once.
    status_min_interval_seconds: float = Field(default=0.1, gt=0)
    max_status_streams: int = Field(default=16, ge=1)
    health_window_seconds: float = Field(default=60.0, gt=0)
    # Keep the previous version loaded (instant rollback) or only on disk (half the memory).
    keep_previous_loaded: bool = True
    grace_seconds: float = Field(default=5.0, ge=0)
    store: StoreConfig = StoreConfig()
    probe: ProbeConfig = ProbeConfig()
    fault_injection: FaultInjection = FaultInjection()
    telemetry: TelemetryConfig = TelemetryConfig()
    # Set: dial out to this gateway and listen on no control port (see GatewayLinkConfig).
    gateway: GatewayLinkConfig | None = None

    @model_validator(mode="after")
    def _security(self) -> AgentConfig:
        if not self.insecure:
            missing = [
                f"tls.{name}"
                for name in ("cert_file", "key_file", "client_ca_file")
                if getattr(self.tls, name) is None
            ]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} required for TLS/mTLS (or pass --insecure for a lab)"
                )
        if (self.activation_public_key_file is None) == (self.activation_public_key_pem is None):
            raise ValueError(
                "set exactly one of activation_public_key_file or activation_public_key_pem"
                " (the operator's Ed25519 public key)"
            )
        if self.gateway is not None and self.insecure:
            raise ValueError("gateway needs mTLS: remove --insecure")
        return self

    def control_socket(self) -> Path:
        """The Unix socket AgentService listens on in gateway mode."""
        if self.gateway is not None and self.gateway.control_socket is not None:
            return self.gateway.control_socket
        return self.data_dir / "run" / "control.sock"

    def activation_public_key(self) -> bytes:
        if self.activation_public_key_pem is not None:
            return self.activation_public_key_pem.encode()
        assert self.activation_public_key_file is not None
        return self.activation_public_key_file.read_bytes()


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def describe_errors(error: ValidationError, *, source: str) -> str:
    """One line per problem: `source: dotted.path: message`."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{source}: {where}: {item['msg']}")
    return "\n".join(lines)


def parse(data: Mapping[str, Any], *, source: str = "config") -> AgentConfig:
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_errors(error, source=source)) from None


def load(path: Path | None, overrides: Mapping[str, Any] | None = None) -> AgentConfig:
    """Read `path` (YAML), apply `overrides` (nested dict; None values ignored), validate."""
    data: dict[str, Any] = {}
    source = str(path) if path is not None else "flags"
    if path is not None:
        data = configfiles.read_mapping(path, error=ConfigError)
    data = _merge(data, _drop_none(overrides or {}))
    return parse(data, source=source)


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            nested = _drop_none(value)
            if nested:
                cleaned[key] = nested
        elif value is not None:
            cleaned[key] = value
    return cleaned
