"""Hostile sample models: each tries to make its reader load a file, through one route.

Every model computes `y = x + c` over 16 bytes (or would), where `c` is a tensor whose bytes
live in an external file at a relative `location`. Given to ONNX Runtime from a directory
holding that file, the `constant` model returns the file's first 16 bytes for an input of
zeros; the other routes hide the same tensor deeper (subgraphs, sparse tensors, functions).
Tests use them to show that intake refuses each route, naming where the tensor sits; the
`WHERE` table says what the refusal must name. Never used outside tests and examples.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import TensorProto, helper

SIZE = 16
OPSET = 17

ModelMaker = Callable[[str], onnx.ModelProto]


def external_tensor(name: str, location: str) -> TensorProto:
    """A UINT8[16] tensor whose bytes are the first 16 bytes of the file `location`."""
    tensor = TensorProto(name=name, data_type=TensorProto.UINT8, dims=[SIZE])
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    for key, value in (("offset", "0"), ("length", str(SIZE))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _sparse(name: str, location: str) -> onnx.SparseTensorProto:
    indices = helper.make_tensor(f"{name}_indices", TensorProto.INT64, [SIZE], list(range(SIZE)))
    return helper.make_sparse_tensor(external_tensor(name, location), indices, [SIZE])


def _io() -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    return (
        helper.make_tensor_value_info("x", TensorProto.UINT8, [SIZE]),
        helper.make_tensor_value_info("y", TensorProto.UINT8, [SIZE]),
    )


def _model(graph: onnx.GraphProto, **extra: object) -> onnx.ModelProto:
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], **extra)


def _add_graph(nodes: list[onnx.NodeProto], **graph_extra: object) -> onnx.ModelProto:
    x, y = _io()
    nodes = [*nodes, helper.make_node("Add", ["x", "c"], ["y"], name="add")]
    return _model(helper.make_graph(nodes, "leak", [x], [y], **graph_extra))  # type: ignore[arg-type]


def constant(location: str) -> onnx.ModelProto:
    """A `Constant` node whose `value` attribute is the external tensor."""
    return _add_graph(
        [helper.make_node("Constant", [], ["c"], name="leak", value=external_tensor("c", location))]
    )


def constant_sparse(location: str) -> onnx.ModelProto:
    """A `Constant` node whose `sparse_value` holds external values."""
    return _add_graph(
        [helper.make_node("Constant", [], ["c"], name="leak", sparse_value=_sparse("c", location))]
    )


def initializer(location: str) -> onnx.ModelProto:
    """The external tensor as a graph initializer (the one route checked before)."""
    return _add_graph([], initializer=[external_tensor("c", location)])


def sparse_initializer(location: str) -> onnx.ModelProto:
    """The external tensor as the values of a sparse initializer."""
    return _add_graph([], sparse_initializer=[_sparse("c", location)])


def tensors_attribute(location: str) -> onnx.ModelProto:
    """A TENSORS attribute (a list of tensors) carrying the external tensor second."""
    node = helper.make_node("Constant", [], ["c"], name="leak")
    node.attribute.append(
        helper.make_attribute(
            "pads",
            [helper.make_tensor("ok", TensorProto.UINT8, [1], [0]), external_tensor("c", location)],
        )
    )
    return _add_graph([node])


def _branch(name: str, nodes: list[onnx.NodeProto], **extra: object) -> onnx.GraphProto:
    out = helper.make_tensor_value_info("c", TensorProto.UINT8, [SIZE])
    return helper.make_graph(nodes, name, [], [out], **extra)  # type: ignore[arg-type]


def _plain_branch() -> onnx.GraphProto:
    zeros = helper.make_tensor("zeros", TensorProto.UINT8, [SIZE], [0] * SIZE)
    return _branch("else", [helper.make_node("Constant", [], ["c"], name="zeros", value=zeros)])


def _if(then_branch: onnx.GraphProto, name: str = "cond") -> list[onnx.NodeProto]:
    flag = helper.make_tensor("flag", TensorProto.BOOL, [], [True])
    return [
        helper.make_node("Constant", [], ["flag"], name="flag", value=flag),
        helper.make_node(
            "If", ["flag"], ["c"], name=name, then_branch=then_branch, else_branch=_plain_branch()
        ),
    ]


def if_constant(location: str) -> onnx.ModelProto:
    """An `If` whose `then_branch` holds a `Constant` reading the file."""
    leak = helper.make_node(
        "Constant", [], ["c"], name="leak", value=external_tensor("c", location)
    )
    return _add_graph(_if(_branch("then", [leak])))


def if_initializer(location: str) -> onnx.ModelProto:
    """An `If` whose `then_branch` has the external tensor as its own initializer."""
    body = _branch(
        "then",
        [helper.make_node("Identity", ["w"], ["c"], name="pass")],
        initializer=[external_tensor("w", location)],
    )
    return _add_graph(_if(body))


def nested(location: str) -> onnx.ModelProto:
    """Two levels down: an `If` in the then-branch of an `If`, whose branch reads the file."""
    leak = helper.make_node(
        "Constant", [], ["c"], name="leak", value=external_tensor("c", location)
    )
    inner = _branch("inner", _if(_branch("deep", [leak]), name="inner_cond"))
    return _add_graph(_if(inner))


def function(location: str) -> onnx.ModelProto:
    """A model-local function whose body holds a `Constant` reading the file."""
    leak = helper.make_node(
        "Constant", [], ["c"], name="leak", value=external_tensor("c", location)
    )
    body = helper.make_function(
        "leaks", "ReadFile", [], ["c"], [leak], [helper.make_opsetid("", OPSET)]
    )
    x, y = _io()
    graph = helper.make_graph(
        [
            helper.make_node("ReadFile", [], ["c"], name="call", domain="leaks"),
            helper.make_node("Add", ["x", "c"], ["y"], name="add"),
        ],
        "leak",
        [x],
        [y],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("leaks", 1)],
        functions=[body],
    )
    return model


ROUTES: dict[str, ModelMaker] = {
    "initializer": initializer,
    "sparse-initializer": sparse_initializer,
    "constant": constant,
    "constant-sparse": constant_sparse,
    "tensors-attribute": tensors_attribute,
    "if-constant": if_constant,
    "if-initializer": if_initializer,
    "nested": nested,
    "function": function,
}
"""Every route, by name."""

WHERE: dict[str, str] = {
    "initializer": "graph: initializer 'c'",
    "sparse-initializer": "graph: sparse initializer 'c' (values)",
    "constant": "graph: node 'leak' (Constant) attribute 'value'",
    "constant-sparse": "graph: node 'leak' (Constant) attribute 'sparse_value' (values)",
    "tensors-attribute": "graph: node 'leak' (Constant) attribute 'pads'[1]",
    "if-constant": "graph: node 'cond' (If) attribute 'then_branch': node 'leak' (Constant)"
    " attribute 'value'",
    "if-initializer": "graph: node 'cond' (If) attribute 'then_branch': initializer 'w'",
    "nested": "graph: node 'cond' (If) attribute 'then_branch': node 'inner_cond' (If)"
    " attribute 'then_branch': node 'leak' (Constant) attribute 'value'",
    "function": "function leaks:ReadFile: node 'leak' (Constant) attribute 'value'",
}
"""What a refusal of each route must name (graph path, node and attribute)."""
