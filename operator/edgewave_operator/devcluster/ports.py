"""Free TCP ports on loopback, found by binding to port 0.

The kernel picks ports that are free now; a process may still take one before our server
binds it, so callers retry with fresh ports when a server reports "address already in use".
"""

from __future__ import annotations

import contextlib
import socket

from edgewave_operator.devcluster import commandlines


def free_ports(count: int) -> tuple[int, ...]:
    """`count` distinct ports that were free on 127.0.0.1 a moment ago."""
    with contextlib.ExitStack() as stack:
        ports = []
        # All sockets stay open until every port is chosen, so the ports are distinct.
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((commandlines.LOOPBACK, 0))
            ports.append(int(sock.getsockname()[1]))
        return tuple(ports)


def allocate() -> commandlines.Ports:
    etcd_client, etcd_peer, apiserver = free_ports(3)
    return commandlines.Ports(etcd_client=etcd_client, etcd_peer=etcd_peer, apiserver=apiserver)
