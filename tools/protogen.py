"""Generates the Python gRPC code (and its type stubs) from the .proto sources under proto/.

The generated `_pb2.py`, `_pb2.pyi`, `_pb2_grpc.py` and `_pb2_grpc.pyi` files are committed
next to their sources and never edited by hand: `make generate` writes them and `make verify`
fails when they drift. protoc runs from grpcio-tools with mypy-protobuf's plugins, with
`-I proto` so generated imports read `edgewave_proto.agent.v1...`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def proto_sources() -> list[Path]:
    """Every .proto file under proto/, in a stable order."""
    return sorted(PROTO_ROOT.rglob("*.proto"))


def _plugin(name: str) -> str:
    # The plugins are console scripts installed next to the interpreter running this.
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `make install` (mypy-protobuf provides it)"
        )
    return f"--plugin={name}={path}"


def generate() -> dict[str, str]:
    """{repo-relative path: content} of the code generated from every .proto source."""
    sources = [str(p.relative_to(PROTO_ROOT)) for p in proto_sources()]
    with tempfile.TemporaryDirectory(prefix="edgewave-protogen-") as scratch:
        out = Path(scratch)
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            _plugin("protoc-gen-mypy"),
            _plugin("protoc-gen-mypy_grpc"),
            *sources,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"protoc failed: {result.stderr.strip()}")
        return {
            str(Path("proto") / path.relative_to(out)): path.read_text()
            for path in sorted(out.rglob("*"))
            if path.is_file() and path.name.endswith(GENERATED_SUFFIXES)
        }
