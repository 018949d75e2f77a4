"""Find every tensor in an ONNX model that keeps its bytes in an external file. Pure.

A tensor with `data_location: EXTERNAL` (or any `external_data` entry) names a file by a
path that ONNX Runtime, TensorRT and the ONNX checker resolve against the working directory
or the model's directory. A model is hostile input: such a tensor would make the builder
read whatever the path names (a service-account token, another tenant's model) and fold the
bytes into the engine, where one inference returns them. A single `uri` cannot carry
external files anyway, so Edgewave refuses external data on *every* tensor, wherever it sits:

- graph initializers and sparse initializers (values and indices);
- node attributes: TENSOR, TENSORS, SPARSE_TENSOR, SPARSE_TENSORS (`Constant.value`, ...),
  whatever the attribute's declared type says, since a loader may read any field;
- subgraphs (GRAPH, GRAPHS: If, Loop, Scan bodies) at any depth, with the same rules;
- local functions (their nodes and their attributes' defaults) and training-info graphs.

The walk uses an explicit work list, so a deeply nested model cannot exhaust the stack, and
it visits each message once, so it ends. `find` names where the first offender sits, e.g.
`graph/node 'cond' (If) attribute 'then_branch': node 'leak' (Constant) attribute 'value'`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import onnx

MAX_LOCATION_CHARS = 80
"""How much of an offending path a message shows (it is the model author's text)."""


@dataclass(frozen=True)
class ExternalTensor:
    where: str
    """Graph path, node and attribute (or initializer) of the tensor."""
    location: str
    """The file the tensor names (its `location` entry; empty when it names none)."""

    def describe(self) -> str:
        shown = self.location[:MAX_LOCATION_CHARS]
        suffix = "..." if len(self.location) > MAX_LOCATION_CHARS else ""
        return f"{self.where} keeps its data in an external file ({shown!r}{suffix})"


def is_external(tensor: onnx.TensorProto) -> bool:
    """Whether a loader could read this tensor's bytes from a file."""
    return tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _location(tensor: onnx.TensorProto) -> str:
    for entry in tensor.external_data:
        if entry.key == "location":
            return str(entry.value)
    return ""


def _sparse(sparse: onnx.SparseTensorProto, where: str) -> Iterator[tuple[str, onnx.TensorProto]]:
    yield f"{where} (values)", sparse.values
    yield f"{where} (indices)", sparse.indices


def _node_label(node: onnx.NodeProto, index: int) -> str:
    name = repr(node.name) if node.name else f"#{index}"
    return f"node {name} ({node.op_type})"


def _attribute(
    attribute: onnx.AttributeProto, where: str, graphs: list[tuple[onnx.GraphProto, str]]
) -> Iterator[tuple[str, onnx.TensorProto]]:
    """The tensors an attribute holds; its subgraphs go onto `graphs` for later."""
    here = f"{where} attribute {attribute.name!r}"
    if attribute.HasField("t"):
        yield here, attribute.t
    for index, tensor in enumerate(attribute.tensors):
        yield f"{here}[{index}]", tensor
    if attribute.HasField("sparse_tensor"):
        yield from _sparse(attribute.sparse_tensor, here)
    for index, sparse in enumerate(attribute.sparse_tensors):
        yield from _sparse(sparse, f"{here}[{index}]")
    if attribute.HasField("g"):
        graphs.append((attribute.g, here))
    for index, graph in enumerate(attribute.graphs):
        graphs.append((graph, f"{here}[{index}]"))


def _nodes(
    nodes: Iterator[onnx.NodeProto] | list[onnx.NodeProto],
    where: str,
    graphs: list[tuple[onnx.GraphProto, str]],
) -> Iterator[tuple[str, onnx.TensorProto]]:
    for index, node in enumerate(nodes):
        label = f"{where}: {_node_label(node, index)}"
        for attribute in node.attribute:
            yield from _attribute(attribute, label, graphs)


def tensors(model: onnx.ModelProto) -> Iterator[tuple[str, onnx.TensorProto]]:
    """Every tensor in `model` (graphs, subgraphs, functions) with where it sits."""
    graphs: list[tuple[onnx.GraphProto, str]] = [(model.graph, "graph")]
    for index, info in enumerate(model.training_info):
        graphs.append((info.initialization, f"training_info[{index}].initialization"))
        graphs.append((info.algorithm, f"training_info[{index}].algorithm"))
    for function in model.functions:
        where = f"function {function.domain}:{function.name}"
        yield from _nodes(list(function.node), where, graphs)
        for attribute in function.attribute_proto:
            yield from _attribute(attribute, f"{where} default", graphs)
    # Each pop visits one graph message of the model; the list only grows by the subgraphs
    # that graph holds, so the walk ends after every graph has been visited once.
    while graphs:
        graph, where = graphs.pop()
        for initializer in graph.initializer:
            yield f"{where}: initializer {initializer.name!r}", initializer
        for sparse in graph.sparse_initializer:
            yield from _sparse(sparse, f"{where}: sparse initializer {sparse.values.name!r}")
        yield from _nodes(list(graph.node), where, graphs)


def find(model: onnx.ModelProto) -> ExternalTensor | None:
    """The first tensor of `model` that keeps its data in an external file, if any."""
    for where, tensor in tensors(model):
        if is_external(tensor):
            return ExternalTensor(where=where, location=_location(tensor))
    return None
