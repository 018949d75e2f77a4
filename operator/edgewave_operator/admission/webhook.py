"""The residency admission webhook: kopf validating handlers and the HTTPS server behind them.

The API server calls these handlers before it stores a ModelRollout or a ResidencyPolicy:
a rollout that names a region its residency forbids is refused with the field, the region
and the policy in the message; a rollout that claims a model name another rollout owns is
refused naming the owner (`ownership`); a policy that contradicts itself is refused likewise.
The webhook's failure policy is `Fail`: when the operator cannot answer (down, or unable
to read the policies), no rollout is admitted unchecked.

`configure_admission` wires kopf's `WebhookServer` (TLS) into the operator's settings,
in one of two modes:

* managed (dev control plane, tests, demo): a private CA and serving certificate are
  generated at start-up, and kopf creates and keeps up to date the
  ValidatingWebhookConfiguration `residency.edgewave.io`, pointing at this process. On a
  clean stop kopf removes its webhooks (so a stopped dev operator does not block the
  shared dev cluster); after a crash they remain, pointing at a closed port, and the API
  server refuses rollouts (fail closed).
* static (the Helm chart): the chart installs the ValidatingWebhookConfiguration with its
  own certificate; the operator listens on a fixed port with the mounted certificate and
  manages nothing. Service paths must be `/<webhook id>` (`ROLLOUT_WEBHOOK`,
  `POLICY_WEBHOOK`); a review for our kinds arriving on any other path is refused.
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import kopf
from kubernetes_asyncio import client
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgewave_api import meta, modelrollout, pki, residencypolicy
from edgewave_api.errors import EdgewaveError
from edgewave_operator import audit
from edgewave_operator import metrics as metrics_
from edgewave_operator.admission import gathering, objects, ownership, rules
from edgewave_operator.kube import events

CONFIGURATION_NAME = "residency.edgewave.io"
"""The managed ValidatingWebhookConfiguration; webhooks inside are `<id>.<this>`."""
ROLLOUT_WEBHOOK = "modelrollouts"
"""Handler id and URL path (`/modelrollouts`) of the ModelRollout webhook."""
POLICY_WEBHOOK = "residencypolicies"
"""Handler id and URL path (`/residencypolicies`) of the ResidencyPolicy webhook."""
MEMO_KEY = "residency_admission"
"""Where `configure_admission` leaves the handlers' context in the operator's memo."""

_ROUTES: dict[tuple[Any, Any], str] = {
    (meta.GROUP, gathering.POLICIES): POLICY_WEBHOOK,
    (meta.GROUP, "modelrollouts"): ROLLOUT_WEBHOOK,
}
_M = TypeVar("_M", modelrollout.ModelRollout, residencypolicy.ResidencyPolicy)
FORBIDDEN = 403
UNAVAILABLE = 503


class AdmissionConfig(BaseSettings):
    """How the webhook server listens and who registers it (`EDGEWAVE_WEBHOOK_*`).

    The defaults suit the dev control plane; the chart sets `managed=false`,
    `listen_address=0.0.0.0`, `port=9443` and `cert_dir` to the mounted Secret.
    """

    model_config = SettingsConfigDict(env_prefix="EDGEWAVE_WEBHOOK_", extra="ignore", frozen=True)

    managed: bool = True
    """kopf creates and updates the ValidatingWebhookConfiguration (dev); the chart does not."""
    listen_address: str = "127.0.0.1"
    """Where to listen; `0.0.0.0` in a pod."""
    port: int = Field(default=0, ge=0, le=65535)
    """Port to listen on; 0 picks a free one (dev)."""
    host: str | None = None
    """Name or address the API server dials (managed mode); the listen address by default."""
    cert_dir: Path | None = None
    """`tls.crt`, `tls.key` (and `ca.crt` if present) to serve with; generated when unset."""


@dataclass(frozen=True)
class AdmissionContext:
    """What the handlers need from the operator: an API client, metrics, the clock."""

    api: client.ApiClient
    metrics: metrics_.OperatorMetrics | None = None
    clock: Callable[[], datetime.datetime] = field(
        default=lambda: datetime.datetime.now(datetime.UTC)
    )


def configure_admission(
    settings: kopf.OperatorSettings,
    *,
    memo: kopf.Memo,
    api: client.ApiClient,
    config: AdmissionConfig | None = None,
    metrics: metrics_.OperatorMetrics | None = None,
) -> kopf.WebhookServer:
    """Set up kopf's webhook server for the residency handlers; call it from `on.startup`.

    `api` is the operator's client (its lifetime stays the caller's); `memo` is the
    operator's global memo, which every handler's memo is copied from.
    """
    config = config or AdmissionConfig()
    dial = config.host or _accessible(config.listen_address)
    if config.cert_dir is not None:
        cert_dir = config.cert_dir
        mounted_ca = cert_dir / "ca.crt"
        ca_file = mounted_ca if mounted_ca.exists() else None
    else:
        cert_dir = _generated_certificates(dial)
        ca_file = cert_dir / "ca.crt"
    server = _GuardedWebhookServer(
        addr=config.listen_address,
        port=config.port or None,
        host=dial,
        certfile=cert_dir / "tls.crt",
        pkeyfile=cert_dir / "tls.key",
        cafile=ca_file,
    )
    settings.admission.server = server
    settings.admission.managed = CONFIGURATION_NAME if config.managed else None
    memo[MEMO_KEY] = AdmissionContext(api=api, metrics=metrics)
    return server


@kopf.on.validate(
    meta.GROUP,
    meta.VERSION,
    "modelrollouts",
    id=ROLLOUT_WEBHOOK,
    operations=["CREATE", "UPDATE"],
    side_effects=True,  # audit Events; none are written for dry runs
)
async def validate_modelrollout(
    *,
    body: kopf.Body,
    dryrun: bool,
    warnings: list[str],
    memo: Any,
    old: kopf.BodyEssence | None = None,
    operation: str = "CREATE",
    **_: Any,
) -> None:
    """Refuse a ModelRollout that names a region outside its residency or a policy's, or
    that claims a model name another rollout owns (`ownership`)."""
    if operation == "UPDATE" and not _rollout_residency_changed(old, body):
        return  # metadata-only updates (finalizers, annotations) must never be blocked
    context = _context(memo)
    rollout = _parse(modelrollout.ModelRollout, body)
    subject = f"ModelRollout {rollout.metadata.namespace}/{rollout.metadata.name}"
    if ownership.model_renamed(old if operation == "UPDATE" else None, body):
        await _check_ownership(context, body=body, subject=subject)
    try:
        policies = await gathering.policies(context.api)
        bound, _missing = objects.bindings(rollout, policies)
        fleet = (
            await gathering.jurisdictions(context.api) if objects.needs_jurisdictions(bound) else {}
        )
    except (EdgewaveError, ValidationError) as error:
        raise kopf.AdmissionError(
            f"{subject} is refused because residency could not be checked ({error}); "
            "retry when the API server and every ResidencyPolicy are readable",
            code=UNAVAILABLE,
        ) from None
    violations = objects.check_rollout(rollout, policies=policies, jurisdictions=fleet)
    warnings.extend(objects.warnings(rollout, policies=policies, jurisdictions=fleet))
    if not violations:
        return
    message = rules.summary(violations, lead=f"{subject} violates data residency")
    if not dryrun:
        refs = {p.metadata.name: _ref(p) for p in policies if p.metadata.name and p.metadata.uid}
        rollout_ref = _ref(rollout) if operation == "UPDATE" else None
        await _audit_rejection(
            context,
            rollout=f"{rollout.metadata.namespace}/{rollout.metadata.name}",
            violations=violations,
            policy_refs=refs,
            about=rollout_ref,
            message=message,
        )
    raise kopf.AdmissionError(message, code=FORBIDDEN)


async def _check_ownership(context: AdmissionContext, *, body: kopf.Body, subject: str) -> None:
    """Refuse a second owner of a model name (fail closed when the rollouts are unreadable)."""
    claim = ownership.claim_of(_plain(body))
    if claim is None:
        return
    try:
        claims = await gathering.claims(context.api)
    except EdgewaveError as error:
        raise kopf.AdmissionError(
            f"{subject} is refused because model ownership could not be checked ({error}); "
            "retry when the API server answers",
            code=UNAVAILABLE,
        ) from None
    reason = ownership.conflict(claim, claims=claims)
    if reason is not None:
        raise kopf.AdmissionError(f"{subject} is refused: {reason}", code=FORBIDDEN)


@kopf.on.validate(
    meta.GROUP,
    meta.VERSION,
    gathering.POLICIES,
    id=POLICY_WEBHOOK,
    operations=["CREATE", "UPDATE"],
    side_effects=True,
)
async def validate_residencypolicy(
    *,
    body: kopf.Body,
    dryrun: bool,
    memo: Any,
    old: kopf.BodyEssence | None = None,
    operation: str = "CREATE",
    **_: Any,
) -> None:
    """Refuse a ResidencyPolicy that contradicts itself, allows nothing or states nothing."""
    if operation == "UPDATE" and _spec(old) == _spec(body):
        return
    context = _context(memo)
    policy = _parse(residencypolicy.ResidencyPolicy, body)
    subject = f'ResidencyPolicy "{policy.metadata.name}"'
    rule = objects.policy_rule(policy)
    try:
        fleet = (
            await gathering.jurisdictions(context.api)
            if rule.allowed_regions and rule.allowed_jurisdictions
            else {}
        )
    except EdgewaveError as error:
        raise kopf.AdmissionError(
            f"{subject} is refused because the fleet's jurisdictions could not be read "
            f"({error}); retry when the API server answers",
            code=UNAVAILABLE,
        ) from None
    violations = objects.check_policy(policy, jurisdictions=fleet)
    if not violations:
        return
    message = rules.summary(violations, lead=f"{subject} contradicts itself")
    if not dryrun:
        await _audit_rejection(
            context,
            rollout=None,
            violations=violations,
            policy_refs={},
            about=_ref(policy) if operation == "UPDATE" else None,
            message=message,
        )
    raise kopf.AdmissionError(message, code=FORBIDDEN)


async def _audit_rejection(
    context: AdmissionContext,
    *,
    rollout: str | None,
    violations: Sequence[rules.Violation],
    policy_refs: Mapping[str, events.ObjectRef],
    about: events.ObjectRef | None,
    message: str,
) -> None:
    """A log line (and count) per violation; an Event per policy at stake, and on `about`
    (the refused object, when it exists: an update)."""
    now = context.clock()
    for violation in violations:
        entry = audit.Entry(
            decision=audit.Decision.REJECTED,
            rollout=rollout,
            region=violation.region,
            policy=violation.policy or (rules.OWN_SOURCE if rollout else None),
            reason="ResidencyViolation",
            message=str(violation),
        )
        await audit.record(None, entry, about=(), now=now, metrics=context.metrics)
    targets = [
        policy_refs[name]
        for name in sorted({v.policy for v in violations if v.policy})
        if name in policy_refs
    ]
    if about is not None:
        targets.append(about)
    for ref in targets:
        await events.post(
            context.api,
            about=ref,
            type_=audit.EVENT_TYPES[audit.Decision.REJECTED],
            reason=audit.EVENT_REASONS[audit.Decision.REJECTED],
            message=message,
            now=now,
        )


def _context(memo: Mapping[str, Any]) -> AdmissionContext:
    context = memo.get(MEMO_KEY)
    if not isinstance(context, AdmissionContext):
        raise kopf.AdmissionError(
            "the operator's admission is not configured (configure_admission was not called "
            "at start-up); fix the operator's entry point",
            code=UNAVAILABLE,
        )
    return context


def _parse(model: type[_M], body: kopf.Body) -> _M:
    try:
        return model.model_validate(_plain(body))
    except ValidationError as error:
        raise kopf.AdmissionError(
            f"{model.__name__} does not match the Edgewave API ({error.error_count()} "
            f"error(s): {error.errors()[0]['msg']}); install the CRDs of this operator's "
            "version",
            code=FORBIDDEN,
        ) from None


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in body}


def _spec(body: Mapping[str, Any] | None) -> Any:
    return None if body is None else body.get("spec")


def _rollout_residency_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether an update touches what residency depends on: the spec or the labels."""
    if old is None:
        return True
    if (new.get("metadata") or {}).get("deletionTimestamp"):
        return False  # being deleted: finalizers must be removable whatever the policies say
    labels_old = (old.get("metadata") or {}).get("labels") or {}
    labels_new = (new.get("metadata") or {}).get("labels") or {}
    return bool(_spec(old) != _spec(new) or labels_old != labels_new)


def _ref(obj: modelrollout.ModelRollout | residencypolicy.ResidencyPolicy) -> events.ObjectRef:
    return events.ObjectRef(
        kind=obj.kind,
        name=obj.metadata.name or "",
        uid=obj.metadata.uid or "",
        namespace=obj.metadata.namespace,
    )


def _accessible(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.is_unspecified:
        return "127.0.0.1" if ip.version == 4 else "::1"
    return address


def _generated_certificates(host: str) -> Path:
    """A private CA and a serving certificate for `host`, in a directory removed at exit."""
    ca = pki.new_ca("edgewave-webhook-ca")
    try:
        ip_addresses: tuple[str, ...] = (str(ipaddress.ip_address(host)),)
        dns_names: tuple[str, ...] = ("localhost",)
    except ValueError:
        ip_addresses, dns_names = (), (host,)
    serving = pki.issue(
        ca,
        common_name=host,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        server=True,
    )
    directory = Path(tempfile.mkdtemp(prefix="edgewave-webhook-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    (directory / "ca.crt").write_bytes(ca.cert_pem)
    (directory / "tls.crt").write_bytes(serving.cert_pem)
    (directory / "tls.key").write_bytes(serving.key_pem)
    (directory / "tls.key").chmod(0o600)
    return directory


class _GuardedWebhookServer(kopf.WebhookServer):
    """kopf's server, serving through `guard`."""

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for client_config in super().__call__(guard(fn)):
            yield client_config


def guard(fn: kopf.WebhookFn) -> kopf.WebhookFn:
    """`fn`, refusing reviews of our kinds that arrive on another path than their handler's.

    kopf runs only the handlers whose id matches the path, and admits the request when
    none does: a static configuration with a wrong path would silently admit everything.
    """

    async def guarded(request: Any, *, webhook: str | None = None, **kwargs: Any) -> Any:
        payload = request.get("request") or {}
        resource = payload.get("resource") or {}
        expected = _ROUTES.get((resource.get("group"), resource.get("resource")))
        if expected is not None and webhook != expected:
            return _refusal(
                request,
                f"{resource.get('resource')} admission arrived at path /{webhook or ''}; "
                f"point the webhook's clientConfig at path /{expected}",
            )
        return await fn(request, webhook=webhook, **kwargs)

    return guarded


def _refusal(request: Mapping[str, Any], message: str) -> dict[str, Any]:
    return {
        "apiVersion": request.get("apiVersion", "admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": {
            "uid": (request.get("request") or {}).get("uid", ""),
            "allowed": False,
            "status": {"code": UNAVAILABLE, "message": message},
        },
    }
