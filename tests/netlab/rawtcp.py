"""A raw TCP transfer of a file, for the link benchmarks' baseline (no TLS, no framing).

`sink HOST PORT_FILE`: listen on HOST, write the bound port to PORT_FILE, accept one
connection, read until EOF, answer the byte count (8 bytes), exit.
`send HOST PORT FILE CHUNK`: send FILE in CHUNK-sized writes, half-close, wait for the
count; print one JSON line {"bytes": n, "seconds": s} (connect to acknowledgement).
Run either side inside a namespace with `ip netns exec`.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path


def sink(host: str, port_file: Path) -> int:
    with socket.create_server((host, 0)) as listener:
        listener.settimeout(600)
        port_file.write_text(str(listener.getsockname()[1]))
        connection, _ = listener.accept()
        with connection:
            buffer = memoryview(bytearray(4 << 20))
            total = 0
            while count := connection.recv_into(buffer):
                total += count
            connection.sendall(total.to_bytes(8, "big"))
    return 0


def send(host: str, port: int, path: Path, chunk: int) -> int:
    data = path.read_bytes()
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=600) as connection:
        view = memoryview(data)
        for offset in range(0, len(data), chunk):
            connection.sendall(view[offset : offset + chunk])
        connection.shutdown(socket.SHUT_WR)
        total = int.from_bytes(connection.recv(8), "big")
    seconds = time.perf_counter() - started
    if total != len(data):
        print(f"sink received {total} of {len(data)} bytes", file=sys.stderr)
        return 1
    print(json.dumps({"bytes": total, "seconds": seconds}), flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["sink"] and len(argv) == 3:
        return sink(argv[1], Path(argv[2]))
    if argv[:1] == ["send"] and len(argv) == 5:
        return send(argv[1], int(argv[2]), Path(argv[3]), int(argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
