"""Who may act through the dashboard: a table of requests and the one-line refusals. Pure."""

from __future__ import annotations

import pytest

from edgewave_api.errors import PermanentError
from edgewave_operator.dashboard import guards

HOST = "127.0.0.1:8480"
TOKEN = "s3cret-token"
POLICY = guards.Policy(allow_actions=True, token=TOKEN, hosts=guards.hosts_for("127.0.0.1", 8480))
GOOD = guards.Request(
    method="POST", host=HOST, origin=f"http://{HOST}", fetch_site="same-origin", token=TOKEN
)


def _with(**changes: object) -> guards.Request:
    fields = {
        "method": GOOD.method,
        "host": GOOD.host,
        "origin": GOOD.origin,
        "fetch_site": GOOD.fetch_site,
        "token": GOOD.token,
    }
    fields.update(changes)
    return guards.Request(**fields)  # type: ignore[arg-type]


def test_a_same_origin_post_with_the_token_may_act() -> None:
    assert guards.check_action(GOOD, POLICY) is None
    # Browsers that do not send Sec-Fetch-Site, and localhost instead of the address.
    assert guards.check_action(_with(fetch_site=None), POLICY) is None
    local = "localhost:8480"
    assert guards.check_action(_with(host=local, origin=f"http://{local}"), POLICY) is None


@pytest.mark.parametrize(
    ("request_", "status", "reason"),
    [
        (_with(method="GET"), 405, "actions are POST requests"),
        (_with(method="PUT"), 405, "actions are POST requests"),
        (_with(host="evil.example:8480"), 403, "unexpected Host header 'evil.example:8480'"),
        (_with(host="127.0.0.1:9999"), 403, "unexpected Host header"),
        (_with(host=None), 403, "unexpected Host header ''"),
        (_with(origin=None), 403, "cross-origin request refused: Origin 'missing'"),
        (_with(origin="http://evil.example"), 403, "Origin 'http://evil.example'"),
        (_with(origin="null"), 403, "cross-origin request refused"),
        (_with(origin=f"https://{HOST}"), 403, "cross-origin request refused"),
        (_with(fetch_site="cross-site"), 403, "cross-site request refused"),
        (_with(fetch_site="same-site"), 403, "cross-site request refused"),
        (_with(token=None), 403, "missing or wrong X-Edgewave-Token header"),
        (_with(token=""), 403, "missing or wrong X-Edgewave-Token header"),
        (_with(token=TOKEN + "x"), 403, "missing or wrong X-Edgewave-Token header"),
        (_with(token="é"), 403, "missing or wrong X-Edgewave-Token header"),
    ],
)
def test_refusals(request_: guards.Request, status: int, reason: str) -> None:
    refusal = guards.check_action(request_, POLICY)
    assert refusal is not None
    assert refusal.status == status
    assert reason in refusal.reason
    assert "\n" not in refusal.reason


def test_a_read_only_dashboard_refuses_every_action_even_a_perfect_one() -> None:
    read_only = guards.Policy(allow_actions=False, token=TOKEN, hosts=POLICY.hosts)
    assert guards.check_action(GOOD, read_only) == guards.Refusal(
        403, "the dashboard is read-only: start it with --allow-actions to enable actions"
    )


def test_hosts_of_a_bind() -> None:
    assert guards.hosts_for("127.0.0.1", 80) == {"127.0.0.1:80", "localhost:80", "[::1]:80"}
    assert "[::1]:80" in (guards.hosts_for("::1", 80) or ())
    assert "10.0.0.5:80" in (guards.hosts_for("10.0.0.5", 80) or ())
    assert guards.hosts_for("0.0.0.0", 80) is None
    assert guards.hosts_for("::", 80) is None
    anywhere = guards.Policy(allow_actions=False, token=TOKEN, hosts=None)
    assert guards.check_host(_with(host="my-box:80"), anywhere) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_need_no_warning(address: str) -> None:
    assert guards.check_address(address, explicit=False, allow_actions=True) is None


def test_a_non_loopback_address_must_be_explicit_and_warns() -> None:
    with pytest.raises(PermanentError, match="pass --address explicitly"):
        guards.check_address("0.0.0.0", explicit=False, allow_actions=False)
    warning = guards.check_address("0.0.0.0", explicit=True, allow_actions=False)
    assert warning is not None
    assert warning.startswith("warning: serving the dashboard on 0.0.0.0, not loopback")


def test_actions_are_never_offered_off_loopback() -> None:
    with pytest.raises(PermanentError, match="--allow-actions is only allowed on a loopback"):
        guards.check_address("10.1.2.3", explicit=True, allow_actions=True)


@pytest.mark.parametrize("address", ["example.com", "127.0.0.1:80", "", "1.2.3"])
def test_an_address_that_is_not_an_ip_is_one_line(address: str) -> None:
    with pytest.raises(PermanentError, match=r"--address must be an IP address \(or localhost\)"):
        guards.check_address(address, explicit=True, allow_actions=False)
