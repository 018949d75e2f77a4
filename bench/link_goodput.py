"""Goodput of a push through a gateway over a bandwidth-shaped link, against raw TCP.

At the edge the link, not the CPU, is the limit. Two network namespaces, `up` (the
operator's side) and `edge` (the agent's), each with a veth to this process's namespace
shaped to the same rate in both directions (tc tbf). The gateway (`edgewave gateway run`)
runs here; the agent runs in `edge` and dials it. In one run, one after another:
  raw up:    raw TCP, the engine's bytes from `up` to here (no TLS, no framing);
  upload:    `GatewayClient.push_engine` from `up` to the gateway's cache (mTLS gRPC);
  raw edge:  raw TCP, the same bytes from here to `edge`;
  deliver:   the gateway pushes the cached engine to the agent over its session; the agent
             hashes, writes and verifies every byte.
Both the push and the raw transfers cross both shaped links once, store-and-forward, so
`ratio = (raw up + raw edge seconds) / (upload + deliver seconds)`, the push's goodput over
raw TCP's. Prints a detail line and `link_goodput ratio=<push/raw> link_mbit=<rate>`.
Goal: >= 0.9. Needs root (network namespaces); `--size-mib 1` makes a quick smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edgewave_gateway import client as gateway_client  # noqa: E402
from edgewave_gateway import testing  # noqa: E402
from tests.integration.gateway import helpers  # noqa: E402
from tests.netlab import netns, rig  # noqa: E402

MiB = 1 << 20
CHUNK = MiB
TIMEOUT = 900.0


def _raw(
    *, sender: netns.Namespace | None, receiver: netns.Namespace | None, host: str,
    path: Path, workdir: Path,
) -> float:  # fmt: skip
    """Seconds for a raw TCP transfer of `path` to a sink listening on `host`."""
    port_file = workdir / f"sink-{time.monotonic_ns()}"
    sink = subprocess.Popen(
        [*(receiver.argv() if receiver else []), sys.executable, "-m", "tests.netlab.rawtcp",
         "sink", host, str(port_file)],
        cwd=REPO,
    )  # fmt: skip
    try:
        port = rig.wait_for(
            lambda: port_file.exists() and port_file.read_text(), what="the raw TCP sink"
        )
        sent = subprocess.run(
            [*(sender.argv() if sender else []), sys.executable, "-m", "tests.netlab.rawtcp",
             "send", host, port, str(path), str(CHUNK)],
            cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT, check=True,
        )  # fmt: skip
        sink.wait(timeout=60)
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    seconds: float = json.loads(sent.stdout.strip().splitlines()[-1])["seconds"]
    return seconds


async def _deliver(pki: testing.GatewayPki, address: str, agent: str, digest: str) -> float:
    async with gateway_client.GatewayClient(
        address, ca_pem=pki.ca.cert_pem, cert_pem=pki.operator.cert_pem,
        key_pem=pki.operator.key_pem, server_name="localhost",
    ) as client:  # fmt: skip
        await client.sessions()  # connected before timing
        started = time.perf_counter()
        final = await client.deliver(agent, digest, chunk_bytes=CHUNK)
        seconds = time.perf_counter() - started
    assert final.done and final.sent_bytes == final.size_bytes, final
    return seconds


def _run(*, root: Path, size: int, mbit: float) -> None:
    pki = testing.GatewayPki.create(root / "pki")
    rig.write_operator_files(pki)
    engine = root / "engine.bin"
    engine.write_bytes(os.urandom(size))
    digest = hashlib.sha256(engine.read_bytes()).hexdigest()
    with netns.Lab() as lab:
        up, edge = lab.add(), lab.add()
        for namespace in (up, edge):
            namespace.shape(mbit=mbit)
        up.route_to(edge.host_address)  # the gateway listens on edge's end of its veth
        gateway = rig.gateway_process(pki=pki, root=root, host=edge.host_address).start()
        agent = rig.agent_process(
            namespace=edge, pki=pki, root=root, name="edge-bench",
            gateway_address=f"{edge.host_address}:{gateway.port}",
        )  # fmt: skip
        try:
            address = f"{edge.host_address}:{gateway.port}"
            agent.start()
            asyncio.run(helpers.wait_sessions(pki, address, {"edge-bench"}))
            raw_up = _raw(
                sender=up, receiver=None, host=edge.host_address, path=engine, workdir=root
            )
            uploaded = rig.upload(
                up, pki_dir=pki.directory, gateway_address=address, engine=engine,
                digest=digest, chunk_bytes=CHUNK, timeout=TIMEOUT,
            )  # fmt: skip
            assert uploaded.get("response", {}).get("complete"), uploaded
            raw_edge = _raw(
                sender=None, receiver=edge, host=edge.address, path=engine, workdir=root
            )
            deliver = asyncio.run(_deliver(pki, address, "edge-bench", digest))
        finally:
            agent.kill()
            gateway.kill()
    upload = float(uploaded["seconds"])
    mib = size / MiB
    print(
        f"link_goodput detail size_mib={mib:.0f} raw_up_mib_s={mib / raw_up:.2f}"
        f" upload_mib_s={mib / upload:.2f} raw_edge_mib_s={mib / raw_edge:.2f}"
        f" deliver_mib_s={mib / deliver:.2f} upload_ratio={raw_up / upload:.3f}"
        f" deliver_ratio={raw_edge / deliver:.3f} load={os.getloadavg()[0]:.1f}",
        flush=True,
    )
    ratio = (raw_up + raw_edge) / (upload + deliver)
    print(f"link_goodput ratio={ratio:.3f} link_mbit={mbit:g}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=32)
    parser.add_argument("--mbit", type=float, default=20.0, help="link rate, both directions")
    args = parser.parse_args(argv)
    reason = netns.unavailable_reason()
    if reason is not None:
        print(f"link_goodput: {reason}; run as root", file=sys.stderr)
        return 1
    netns.sweep_stale()
    root = Path(tempfile.mkdtemp(prefix="ew-lg-", dir="/tmp"))
    try:
        _run(root=root, size=args.size_mib * MiB, mbit=args.mbit)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
