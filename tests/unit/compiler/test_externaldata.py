"""Every route by which a model could name an external file is found and named."""

from __future__ import annotations

import onnx
import pytest

from edgewave_compiler import externaldata, leaks, samples


@pytest.mark.parametrize("route", sorted(leaks.ROUTES))
def test_each_route_is_found_and_named(route: str) -> None:
    model = leaks.ROUTES[route]("secret.txt")
    found = externaldata.find(model)
    assert found is not None, route
    assert found.where == leaks.WHERE[route]
    assert found.location == "secret.txt"
    assert "\n" not in found.describe()


@pytest.mark.parametrize("route", sorted(leaks.ROUTES))
def test_a_round_trip_through_bytes_keeps_the_reference(route: str) -> None:
    # What intake sees is the parsed file, not the builder's object.
    model = onnx.load_model_from_string(leaks.ROUTES[route]("../x").SerializeToString())
    assert externaldata.find(model) is not None


def test_external_data_entries_without_the_location_flag_count() -> None:
    model = leaks.constant("secret.txt")
    model.graph.node[0].attribute[0].t.ClearField("data_location")
    found = externaldata.find(model)
    assert found is not None and found.where == leaks.WHERE["constant"]


def test_embedded_models_pass() -> None:
    for model in (samples.matmul_relu(), samples.quantized_matmul()):
        assert externaldata.find(model) is None
    assert sum(1 for _ in externaldata.tensors(samples.matmul_relu())) == 2


def test_long_locations_are_cut_in_messages() -> None:
    found = externaldata.find(leaks.constant("a" * 500))
    assert found is not None
    assert len(found.describe()) < 200 and found.describe().endswith("...)")


def test_any_depth_is_walked() -> None:
    # 30 levels: protobuf refuses to parse past 100 nested messages (3 per level).
    model = leaks.constant("secret.txt")
    graph = model.graph
    for level in range(30):
        holder = onnx.helper.make_node("If", ["flag"], ["c"], name=f"l{level}")
        holder.attribute.append(onnx.helper.make_attribute("then_branch", graph))
        graph = onnx.helper.make_graph([holder], f"g{level}", [], [])
    parsed = onnx.load_model_from_string(onnx.helper.make_model(graph).SerializeToString())
    found = externaldata.find(parsed)
    assert found is not None and found.where.count("attribute 'then_branch'") == 30
    assert found.where.endswith("node 'leak' (Constant) attribute 'value'")
