"""Who may read the dashboard and who may act through it: pure checks of a request.

The dashboard binds to loopback, but a web page in the same browser can still send it
requests, so every request and every action is checked:

- Host: only the names the dashboard was bound to (a DNS-rebinding page would send its own
  host name), unless it listens on every address.
- Actions: POST only; refused outright when the dashboard is read-only; the Origin must be
  the dashboard's own (and `Sec-Fetch-Site`, when the browser sends it, `same-origin`); the
  `X-Edgewave-Token` header must carry the per-process token embedded in the page (a custom
  header also forces a CORS preflight, which the dashboard never grants).

Each refusal is an HTTP status and a one-line reason.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from edgewave_api.errors import PermanentError

TOKEN_HEADER = "X-Edgewave-Token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Request:
    """What the checks read of an HTTP request."""

    method: str
    host: str | None
    origin: str | None = None
    fetch_site: str | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    allow_actions: bool
    token: str
    hosts: frozenset[str] | None
    """`host:port` values the Host header may take; None when any is fine (a wildcard bind)."""


def check_host(request: Request, policy: Policy) -> Refusal | None:
    if policy.hosts is None or (request.host or "").lower() in policy.hosts:
        return None
    host = (request.host or "")[:100]
    return Refusal(403, f"unexpected Host header {host!r}: open the URL the dashboard printed")


def check_action(request: Request, policy: Policy) -> Refusal | None:
    """None when `request` may act, else why not."""
    if request.method != "POST":
        return Refusal(405, "actions are POST requests")
    refused = check_host(request, policy)
    if refused is not None:
        return refused
    if not policy.allow_actions:
        return Refusal(
            403, "the dashboard is read-only: start it with --allow-actions to enable actions"
        )
    return _same_origin(request) or _token(request, policy)


def _same_origin(request: Request) -> Refusal | None:
    own = f"http://{request.host}"
    if request.origin != own:
        origin = (request.origin or "missing")[:100]
        return Refusal(403, f"cross-origin request refused: Origin {origin!r}, expected {own!r}")
    if request.fetch_site not in (None, "same-origin"):
        site = (request.fetch_site or "")[:40]
        return Refusal(403, f"cross-site request refused (Sec-Fetch-Site {site!r})")
    return None


def _token(request: Request, policy: Policy) -> Refusal | None:
    if request.token and hmac.compare_digest(request.token.encode(), policy.token.encode()):
        return None
    return Refusal(403, f"missing or wrong {TOKEN_HEADER} header: reload the dashboard page")


def hosts_for(address: str, port: int) -> frozenset[str] | None:
    """The Host header values of a dashboard bound to `address:port` (None: any)."""
    parsed = ipaddress.ip_address(address) if address != "localhost" else None
    if parsed is not None and parsed.is_unspecified:
        return None
    names = set(LOOPBACK_NAMES)
    if parsed is not None:
        names.add(f"[{parsed}]" if parsed.version == 6 else str(parsed))
    return frozenset(f"{name}:{port}" for name in names)


def check_address(address: str, *, explicit: bool, allow_actions: bool) -> str | None:
    """Whether the dashboard may bind `address`; a warning to print when it is not loopback.

    Raises `PermanentError` with one line when it may not: not an IP address (or
    `localhost`), a non-loopback address not given with `--address`, or actions on a
    non-loopback address (anyone who can load the page could act).
    """
    if address == "localhost":
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise PermanentError(
            f"--address must be an IP address (or localhost), not {address[:100]!r}"
        ) from None
    if parsed.is_loopback:
        return None
    if not explicit:
        raise PermanentError(
            f"refusing to serve the dashboard on non-loopback address {parsed}; "
            "pass --address explicitly to do so"
        )
    if allow_actions:
        raise PermanentError(
            f"--allow-actions is only allowed on a loopback address, not {parsed}: "
            "anyone who can load the page could act; use an SSH tunnel instead"
        )
    return (
        f"warning: serving the dashboard on {parsed}, not loopback: anyone who can reach it "
        "can read the rollouts and agents it shows (no authentication)"
    )
