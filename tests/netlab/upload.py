"""Upload one engine to a gateway's cache from inside a network namespace (the operator's leg).

Run as `ip netns exec NS python -m tests.netlab.upload ARGS`: the bytes then cross that
namespace's veth (shaped) and any Toxiproxy on the way. Prints one JSON line: the data
bytes this attempt handed to gRPC, seconds, and the PushResponse or the gRPC error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from edgewave_gateway import client as gateway_client


async def _upload(args: argparse.Namespace) -> dict[str, Any]:
    pki = Path(args.pki)
    client = gateway_client.GatewayClient(
        args.gateway,
        ca_pem=(pki / "ca.pem").read_bytes(),
        cert_pem=(pki / "operator.pem").read_bytes(),
        key_pem=(pki / "operator-key.pem").read_bytes(),
        server_name="localhost",
        chunk_bytes=args.chunk_bytes,
    )
    started = time.perf_counter()
    outcome: dict[str, Any] = {}
    try:
        response = await client.push_engine(Path(args.engine), args.digest)
        outcome["response"] = {
            "complete": response.complete,
            "resumed_from": response.resumed_from,
            "received_bytes": response.received_bytes,
            "already_present": response.already_present,
            "verified_offset": response.verified_offset,
        }
    except grpc.aio.AioRpcError as error:
        outcome["error"] = f"{error.code().name}: {error.details()}"
    except asyncio.InvalidStateError as error:  # a write after the stream broke
        outcome["error"] = f"stream ended: {error}"
    finally:
        outcome["seconds"] = time.perf_counter() - started
        outcome["uploaded_bytes"] = client.uploaded_bytes
        await client.close()
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True, help="host:port")
    parser.add_argument("--pki", required=True, help="directory with ca.pem, operator(-key).pem")
    parser.add_argument("--engine", required=True)
    parser.add_argument("--digest", required=True)
    parser.add_argument("--chunk-bytes", type=int, default=gateway_client.DEFAULT_CHUNK_BYTES)
    outcome = asyncio.run(_upload(parser.parse_args(argv)))
    print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
