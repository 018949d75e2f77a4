"""Free ports are distinct and bindable."""

from __future__ import annotations

import socket

from edgewave_operator.devcluster import ports


def test_allocated_ports_are_distinct_and_free() -> None:
    chosen = ports.allocate()
    numbers = {chosen.etcd_client, chosen.etcd_peer, chosen.apiserver}
    assert len(numbers) == 3
    for number in numbers:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", number))
