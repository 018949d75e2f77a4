"""The committed protobuf code is exactly what the generator makes from the .proto files."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def _load_protogen() -> ModuleType:
    # tools/ is run from the repository root (`make generate`), not installed.
    path = Path(__file__).resolve().parents[3] / "tools" / "protogen.py"
    spec = importlib.util.spec_from_file_location("edgewave_tools_protogen", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


protogen = _load_protogen()


def test_generated_code_is_in_sync_with_the_protos() -> None:
    generated = protogen.generate()
    expected = {
        "proto/edgewave_proto/agent/v1/agent_pb2.py",
        "proto/edgewave_proto/agent/v1/agent_pb2_grpc.pyi",
        "proto/edgewave_proto/kserve/v2/grpc_predict_v2_pb2.pyi",
    }
    assert expected <= set(generated)
    stale = [p for p, content in generated.items() if (protogen.REPO / p).read_text() != content]
    assert not stale, f"run `make generate`: {stale}"
    assert protogen.generate() == generated  # deterministic


def test_the_kserve_service_coexists_with_tritonclient() -> None:
    import tritonclient.grpc  # noqa: F401 - registers Triton's `inference` package

    from edgewave_proto.kserve.v2 import grpc_predict_v2_pb2

    assert grpc_predict_v2_pb2.DESCRIPTOR.package == "edgewave.kserve.v2"
    assert Path(grpc_predict_v2_pb2.__file__).name == "grpc_predict_v2_pb2.py"
