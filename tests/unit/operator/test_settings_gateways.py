"""The operator's gateway settings: a bad address or a clashing name is refused at start."""

from __future__ import annotations

import pydantic
import pytest

from edgewave_operator.settings import OperatorSettings


def test_standalone_gateways_are_read_from_json_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDGEWAVE_GATEWAYS", '{"gw-eu": "gw-eu.edge.svc:7444"}')
    monkeypatch.setenv("EDGEWAVE_GATEWAY_LISTEN", "")
    settings = OperatorSettings()
    assert settings.gateways == {"gw-eu": "gw-eu.edge.svc:7444"}
    assert not settings.gateway_listen


@pytest.mark.parametrize(
    ("gateways", "says"),
    [
        ({"gw-eu": "gw-eu.edge.svc"}, "is not host:port"),
        ({"gw-eu": "http://gw:7444"}, "is not host:port"),
        ({"embedded": "gw:7444"}, "embedded gateway's name"),
    ],
)
def test_a_bad_gateway_entry_is_refused_naming_it(gateways: dict[str, str], says: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=says):
        OperatorSettings(gateways=gateways)


def test_a_standalone_gateway_may_take_the_name_when_nothing_is_embedded() -> None:
    assert OperatorSettings(gateway_listen="", gateways={"embedded": "gw:7444"}).gateways
