"""Serves a component's Prometheus registry on `/metrics` over HTTP.

prometheus-client's own threaded WSGI server, one per registry: the port is configurable, 0
picks a free one (tests), and the bound port is reported so callers can print or register it.
"""

from __future__ import annotations

import dataclasses
import threading
from wsgiref.simple_server import WSGIServer

import prometheus_client

from edgewave_api.errors import PermanentError


class MetricsServeError(PermanentError):
    """The metrics endpoint could not be opened."""


@dataclasses.dataclass
class MetricsServer:
    """A running `/metrics` endpoint; `close()` stops it."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve(
    registry: prometheus_client.CollectorRegistry,
    *,
    port: int = 0,
    host: str = "0.0.0.0",  # scraped from other pods; tests bind to loopback
) -> MetricsServer:
    """Start serving `registry` on `host:port` in a daemon thread."""
    try:
        server, thread = prometheus_client.start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise MetricsServeError(
            f"cannot serve metrics on {host}:{port}: {error.strerror}; "
            "choose another --metrics-port (0 picks a free one)"
        ) from error
    return MetricsServer(host=host, port=server.server_port, _server=server, _thread=thread)
