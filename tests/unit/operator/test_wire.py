"""The agent's state words, the wire enum and the API's states stay one vocabulary."""

from __future__ import annotations

from edgewave_api import edgeagent
from edgewave_operator.agents import describing
from edgewave_proto.agent.v1 import agent_pb2 as pb
from edgewave_proto.agent.v1 import wire


def test_every_agent_state_is_a_wire_state_and_back() -> None:
    names = pb.VersionState.DESCRIPTOR.values_by_name
    on_wire = {name for name in names if name != "VERSION_STATE_UNSPECIFIED"}
    assert {state.wire_name for state in wire.VersionState} == on_wire
    for state in wire.VersionState:
        assert wire.VersionState.from_wire_name(state.wire_name) is state
    assert wire.VersionState.from_wire_name("VERSION_STATE_UNSPECIFIED") is None
    assert wire.VersionState.from_wire_name("ACTIVE") is None


def _held(state: int) -> list[edgeagent.HeldModel]:
    version = pb.VersionStatus(version="v1", digest="ab" * 32, backend="onnxruntime", state=state)
    return describing.held_models([pb.ModelStatus(model="m", versions=[version])])


def test_the_operator_maps_each_wire_state_to_the_api_once() -> None:
    mapped = {
        state: _held(pb.VersionState.Value(state.wire_name))[0].state for state in wire.VersionState
    }
    assert mapped == {
        wire.VersionState.ACTIVE: edgeagent.HeldModelState.ACTIVE,
        wire.VersionState.PREVIOUS: edgeagent.HeldModelState.STANDBY,
        wire.VersionState.STORED: edgeagent.HeldModelState.STAGED,
        wire.VersionState.FAILED: edgeagent.HeldModelState.FAILED,
    }


def test_an_unknown_or_unspecified_wire_state_is_skipped() -> None:
    assert _held(pb.VERSION_STATE_UNSPECIFIED) == []
    assert _held(99) == []
