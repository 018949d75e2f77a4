"""A Toxiproxy server for the network fault tests, and a small client of its HTTP API.

The server is the pinned build of `tools/toxiproxy/build.sh`, started on loopback with
`-proxy-metrics` (bytes each proxy received and sent, per direction). The client speaks the
documented REST API with urllib: proxies (listen -> upstream), toxics (latency, limit_data
to cut a connection after N bytes, reset_peer, bandwidth), reset. No maintained PyPI client
exists (`toxiproxy-python` was last released in 2019), and the API is five calls.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "tools" / "toxiproxy" / "build.sh"
START_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1


class ToxiproxyError(RuntimeError):
    pass


def binary() -> Path:
    """The pinned toxiproxy-server (built on first use, then cached)."""
    result = subprocess.run(
        ["bash", str(BUILD)], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise ToxiproxyError(f"{BUILD} failed: {result.stderr.strip()[-2000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def _die_with_us() -> Callable[[], None]:
    """A preexec function: the kernel kills the server when this process dies (SIGKILL of
    pytest included), so an aborted run leaves no proxy behind."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    owner = os.getpid()

    def tie() -> None:
        if prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0) != 0 or os.getppid() != owner:
            os._exit(1)

    return tie


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Proxy:
    name: str
    listen: str  # host:port, as bound
    upstream: str

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class Toxiproxy:
    """One toxiproxy-server process on loopback and its API."""

    def __init__(self, *, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.api = ""

    def start(self) -> Toxiproxy:
        server = binary()
        for _ in range(5):  # the free port may be taken between probe and bind
            port = _free_port()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [str(server), "-host", "127.0.0.1", "-port", str(port), "-proxy-metrics"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_us(),  # noqa: PLW1509  # prctl only, no locks
                )
            self.api = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + START_TIMEOUT
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    self._call("GET", "/version")
                    return self
                except (OSError, ToxiproxyError):
                    time.sleep(0.05)
            self.stop()
        raise ToxiproxyError(f"toxiproxy did not start; log:\n{self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.api + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # loopback
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise ToxiproxyError(
                f"{method} {path}: HTTP {error.code}: {error.read().decode()[:500]}"
            ) from None
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text

    def create(self, name: str, *, listen: str, upstream: str) -> Proxy:
        made = self._call(
            "POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream}
        )
        return Proxy(name=made["name"], listen=made["listen"], upstream=made["upstream"])

    def delete(self, proxy: Proxy) -> None:
        self.delete_named(proxy.name)

    def delete_named(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{name}")

    def proxy_names(self) -> list[str]:
        return sorted(self._call("GET", "/proxies") or {})

    def set_enabled(self, proxy: Proxy, *, enabled: bool) -> None:
        """A disabled proxy closes its connections and refuses new ones (a cut)."""
        self._call("POST", f"/proxies/{proxy.name}", {"enabled": enabled})

    def add_toxic(
        self,
        proxy: Proxy,
        *,
        name: str,
        kind: str,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: int,
    ) -> None:
        """`stream`: downstream is upstream -> client (the answer), upstream is client ->
        upstream. `kind`: latency (latency, jitter ms), limit_data (bytes), reset_peer
        (timeout ms), bandwidth (rate KB/s), timeout (timeout ms)."""
        self._call(
            "POST",
            f"/proxies/{proxy.name}/toxics",
            {
                "name": name,
                "type": kind,
                "stream": stream,
                "toxicity": toxicity,
                "attributes": attributes,
            },
        )

    def remove_toxic(self, proxy: Proxy, name: str) -> None:
        """Remove the toxic `name`, if it is there."""
        if any(t["name"] == name for t in self._call("GET", f"/proxies/{proxy.name}/toxics")):
            self._call("DELETE", f"/proxies/{proxy.name}/toxics/{name}")

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")

    def proxy_bytes(self, proxy: Proxy) -> dict[str, int]:
        """Bytes `proxy` received and sent, per direction ({received,sent}_{up,down}stream),
        from the server's Prometheus metrics."""
        text = self._call("GET", "/metrics")
        totals: dict[str, int] = {}
        for line in str(text).splitlines():
            if line.startswith("#") or f'proxy="{proxy.name}"' not in line:
                continue
            metric, value = line.rsplit(" ", 1)
            if metric.startswith("toxiproxy_proxy_received_bytes_total"):
                kind = "received"
            elif metric.startswith("toxiproxy_proxy_sent_bytes_total"):
                kind = "sent"
            else:
                continue
            direction = "upstream" if 'direction="upstream"' in metric else "downstream"
            key = f"{kind}_{direction}"
            totals[key] = totals.get(key, 0) + int(float(value))
        return totals
