"""Linux network namespaces for the network fault tests and the link benchmarks.

Each `Namespace` is one `ip netns` with a veth pair to the test's (root) namespace and a
/30 that this run chose and checked unused, so the only traffic is between the test and
namespaces it made (or loopback). Processes run inside with `ip netns exec`; `shape` puts a
token bucket (`tc ... tbf`, this kernel has no netem) on both ends of the veth, so both
directions are limited to the same rate. Latency, resets and cuts come from Toxiproxy
(`tests.netlab.toxiproxy`).

Names carry the creating process's pid and a random token: parallel runs never clash, and
`sweep_stale` removes what an aborted run (its pid gone) left behind. Every command has a
timeout; `Lab.close` removes everything it made, also after a failure.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import secrets
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "ewt"
# /30s are taken from this /16 (private, unlikely to be routed on a CI machine).
POOL = ipaddress.IPv4Network("10.213.0.0/16")
COMMAND_TIMEOUT = 30.0
OPT_OUT_ENV = "EDGEWAVE_NETNS_OPTOUT"
LISTEN, ESTABLISHED = "0A", "01"
_NAME = re.compile(rf"^{PREFIX}([0-9a-f]+)x[0-9a-f]+n\d+$")


@dataclass(frozen=True)
class TcpSocket:
    state: str  # hex, as in /proc: 0A LISTEN, 01 ESTABLISHED
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int


def _endpoint(text: str) -> tuple[str, int]:
    """'0100007F:1F90' -> ('127.0.0.1', 8080): the kernel prints each 32-bit word in host
    (little-endian) order; an IPv4-mapped IPv6 address is given as its IPv4 address."""
    hex_address, port = text.rsplit(":", 1)
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return str(ipaddress.IPv4Address(words)), int(port, 16)
    v6 = ipaddress.IPv6Address(words)
    return str(v6.ipv4_mapped or v6), int(port, 16)


class NetnsError(RuntimeError):
    """A namespace command failed; the message names the command and its output."""


def run(*argv: str, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> str:
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespace tests need root (CI runs them as root)"
    try:
        run("ip", "netns", "list")
        run("tc", "-V")
    except (OSError, NetnsError) as error:
        return f"ip/tc are not usable: {error}"
    return None


def gate(reason: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """What a test needing namespaces does: ("run", ""), ("skip", why) when a developer
    opted out, or ("fail", why): never a silent skip, since CI runs as root."""
    if reason is None:
        return "run", ""
    if environ.get(OPT_OUT_ENV) == "1":
        return "skip", f"{reason}; opted out with {OPT_OUT_ENV}=1"
    return "fail", (
        f"{reason}. Run as root (sudo), or set {OPT_OUT_ENV}=1 to skip these tests on a"
        " developer machine."
    )


def sweep_stale() -> list[str]:
    """Delete namespaces an earlier run of this harness left behind (its pid is gone), and
    end the processes it left running in them."""
    removed = []
    for line in run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        match = _NAME.match(name)
        if match and not Path(f"/proc/{int(match.group(1), 16)}").exists():
            for pid in run("ip", "netns", "pids", name, check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            run("ip", "netns", "del", name, check=False)
            removed.append(name)
    return removed


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    for line in run("ip", "-o", "-4", "addr", "show").splitlines():
        fields = line.split()
        if "inet" in fields:
            used.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    return used


def _free_slash30(
    taken: list[ipaddress.IPv4Network],
    rng: random.Random,
    pool: ipaddress.IPv4Network = POOL,
) -> ipaddress.IPv4Network:
    """A /30 of `pool` that overlaps nothing in `taken`, from a random place on (bounded
    by the pool's size: every block is looked at once at most)."""
    blocks: list[ipaddress.IPv4Network] = list(pool.subnets(new_prefix=30))
    start = rng.randrange(len(blocks))
    for step in range(len(blocks)):
        block = blocks[(start + step) % len(blocks)]
        if not any(block.overlaps(other) for other in taken):
            return block
    raise NetnsError(f"no free /30 in {pool}")


@dataclass
class Namespace:
    name: str
    host_if: str
    peer_if: str
    host_address: str  # the test's end of the veth (root namespace)
    address: str  # the namespace's end
    shaped_mbit: float | None = None

    def argv(self, *command: str) -> list[str]:
        """`command` run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def run(self, *command: str, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> str:
        return run(*self.argv(*command), timeout=timeout, check=check)

    def shape(self, *, mbit: float) -> None:
        """Limit both directions of the veth to `mbit` (token bucket filter)."""
        rate = f"{int(mbit * 1000)}kbit"
        # A bucket of ~4 ms at the rate (at least a few full frames) and a 100 ms queue.
        burst = max(16 << 10, int(mbit * 1e6 / 8 * 0.004))
        spec = ["tbf", "rate", rate, "burst", str(burst), "latency", "100ms"]
        run("tc", "qdisc", "replace", "dev", self.host_if, "root", *spec)
        self.run("tc", "qdisc", "replace", "dev", self.peer_if, "root", *spec)
        self.shaped_mbit = mbit

    def route_to(self, address: str) -> None:
        """Reach `address`, one of the test namespace's own addresses (e.g. the end of
        another namespace's veth), through this veth: delivered locally there, not routed
        on, so namespaces still never reach each other or anything else."""
        self.run("ip", "route", "replace", f"{address}/32", "via", self.host_address)

    def qdiscs(self) -> str:
        return run("tc", "qdisc", "show", "dev", self.host_if) + self.run(
            "tc", "qdisc", "show", "dev", self.peer_if
        )

    def tcp_sockets(self) -> list[TcpSocket]:
        """Every TCP socket in this namespace, IPv4 and IPv6, as the kernel lists them in
        /proc/net/tcp and /proc/net/tcp6 (read inside the namespace)."""
        found = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in self.run("cat", table).splitlines()[1:]:
                fields = line.split()
                if len(fields) > 3:
                    local, remote = _endpoint(fields[1]), _endpoint(fields[2])
                    found.append(TcpSocket(fields[3], *local, *remote))
        return found

    def tcp_listeners(self) -> list[TcpSocket]:
        return [s for s in self.tcp_sockets() if s.state == LISTEN]

    def link_bytes(self) -> tuple[int, int]:
        """Bytes the test's end of the veth sent into and received from this namespace."""
        base = Path("/sys/class/net") / self.host_if / "statistics"
        return int((base / "tx_bytes").read_text()), int((base / "rx_bytes").read_text())


@dataclass
class Lab:
    """Namespaces of one test (or benchmark) run; `close` removes them all."""

    token: str = field(default_factory=lambda: secrets.token_hex(2))
    namespaces: list[Namespace] = field(default_factory=list)

    def add(self) -> Namespace:
        index = len(self.namespaces)
        stem = f"{PREFIX}{os.getpid():x}x{self.token}n{index}"
        if len(stem) + 1 > 15:  # interface names are at most 15 bytes
            stem = f"{PREFIX}{os.getpid():x}x{self.token[:1]}n{index}"
        name = stem
        taken = _used_networks() + [
            ipaddress.IPv4Interface(f"{n.address}/30").network for n in self.namespaces
        ]
        block = _free_slash30(taken, random.Random(secrets.randbits(32)))
        host, peer = (str(a) for a in block.hosts())
        namespace = Namespace(
            name=name, host_if=f"{stem}h", peer_if=f"{stem}p", host_address=host, address=peer
        )
        self.namespaces.append(namespace)
        run("ip", "netns", "add", name)
        run(
            "ip",
            "link",
            "add",
            namespace.host_if,
            "type",
            "veth",
            "peer",
            "name",
            namespace.peer_if,
        )
        run("ip", "link", "set", namespace.peer_if, "netns", name)
        run("ip", "addr", "add", f"{host}/30", "dev", namespace.host_if)
        run("ip", "link", "set", namespace.host_if, "up")
        namespace.run("ip", "addr", "add", f"{peer}/30", "dev", namespace.peer_if)
        namespace.run("ip", "link", "set", namespace.peer_if, "up")
        namespace.run("ip", "link", "set", "lo", "up")
        return namespace

    def close(self) -> list[str]:
        """Remove every namespace (its veth goes with it); the problems, if any."""
        problems = []
        for namespace in reversed(self.namespaces):
            run("ip", "link", "del", namespace.host_if, check=False)
            try:
                run("ip", "netns", "del", namespace.name)
            except (NetnsError, subprocess.TimeoutExpired) as error:
                problems.append(str(error))
        self.namespaces.clear()
        return problems

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
