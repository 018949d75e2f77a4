"""Spawning and stopping the control plane's processes so that none is ever orphaned.

Each child leads its own process group, so a terminal's Ctrl-C reaches only its owner,
which then stops the children in order; stopping signals the whole group, SIGTERM first,
SIGKILL after a grace period, and waits until every process is gone.

Two modes:
- owned: the child gets `PR_SET_PDEATHSIG(SIGKILL)`, so the kernel kills it the moment the
  thread that started it dies, even by SIGKILL. Start owned children from a long-lived
  thread (the main thread in pytest and the CLI).
- detached: the child starts a new session and outlives its starter (`edgewave dev-cluster
  up`); it is found again by pid and start time, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from edgewave_api.errors import PermanentError

PR_SET_PDEATHSIG = 1
_POLL_INTERVAL = 0.05
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class UnstoppableProcessError(PermanentError):
    """A process survived SIGKILL (stuck in the kernel); it must be cleaned up by hand."""


@dataclass(frozen=True)
class Identity:
    """A process as the kernel knows it: pid plus start time (clock ticks after boot)."""

    pid: int
    start_time: int


@dataclass
class Child:
    """A process we started, with its log; `popen` is set while its starter owns it."""

    name: str
    identity: Identity
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None


def identity_of(pid: int) -> Identity | None:
    """The pid's identity if such a live (non-zombie) process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Fields after the parenthesised command name: state is field 3, starttime field 22.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return Identity(pid=pid, start_time=int(fields[19]))


def is_running(identity: Identity) -> bool:
    return identity_of(identity.pid) == identity


def child_environment(base: Mapping[str, str]) -> dict[str, str]:
    """`base` with loopback exempt from any proxy.

    The API server calls admission webhooks at local `url`s and kubectl calls the API
    server on 127.0.0.1; an HTTPS_PROXY in the environment must not intercept either.
    """
    env = dict(base)
    for key in ("NO_PROXY", "no_proxy"):
        present = [item for item in env.get(key, "").split(",") if item]
        env[key] = ",".join([*present, *(n for n in _LOOPBACK_NAMES if n not in present)])
    return env


def spawn(
    argv: Sequence[str], *, name: str, log_path: Path, detached: bool, env: Mapping[str, str]
) -> Child:
    """Starts `argv` with stdout and stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if detached:
        pid = _spawn_detached(argv, log_path=log_path, env=env)
        popen = None
    else:
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                process_group=0,
                # Only prctl and getppid run between fork and exec (see _die_with_owner).
                preexec_fn=_die_with_owner(os.getpid()),  # noqa: PLW1509
            )
        pid = popen.pid
    identity = identity_of(pid) or Identity(pid=pid, start_time=-1)
    return Child(name=name, identity=identity, log_path=log_path, popen=popen)


def _spawn_detached(argv: Sequence[str], *, log_path: Path, env: Mapping[str, str]) -> int:
    # posix_spawn instead of Popen: no Popen object is left to warn "still running" when
    # the starter exits, and setsid puts the child in a session of its own.
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    return os.posix_spawn(
        argv[0],
        list(argv),
        dict(env),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_path), flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
        # As Popen's restore_signals: Python ignores SIGPIPE/SIGXFSZ, the child must not.
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        setsigmask=(),
    )


def _die_with_owner(owner_pid: int) -> Callable[[], None]:
    """A preexec function tying the child's life to the thread that forks it."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    kill = int(signal.SIGKILL)

    def tie() -> None:
        # If the owner died between fork and prctl, no signal would ever come: exit now.
        if prctl(PR_SET_PDEATHSIG, kill, 0, 0) != 0 or os.getppid() != owner_pid:
            os._exit(1)

    return tie


def is_gone(child: Child) -> bool:
    """True once the child has exited (and, when we are its parent, been reaped)."""
    if child.popen is not None:
        return child.popen.poll() is not None
    with contextlib.suppress(ChildProcessError):
        # A detached child of this very process: reap it so it does not linger as a zombie.
        os.waitpid(child.identity.pid, os.WNOHANG)
    return not is_running(child.identity)


def stop(children: Sequence[Child], *, grace: float = 10.0) -> None:
    """SIGTERM to each child's group, SIGKILL after `grace` seconds, wait until all are gone."""
    _signal_groups(children, signal.SIGTERM)
    if _wait_gone(children, timeout=grace):
        return
    _signal_groups(children, signal.SIGKILL)
    if not _wait_gone(children, timeout=10.0):
        survivors = ", ".join(
            f"{c.name} (pid {c.identity.pid})" for c in children if not is_gone(c)
        )
        raise UnstoppableProcessError(f"{survivors} survived SIGKILL; check `ps` and kill by hand")


def _signal_groups(children: Sequence[Child], signum: signal.Signals) -> None:
    for child in children:
        # Re-check the identity so that a recycled pid never gets our signal.
        if not is_gone(child) and is_running(child.identity):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.identity.pid, signum)


def _wait_gone(children: Sequence[Child], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if all(is_gone(child) for child in children):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)


def log_tail(path: Path, *, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt like Ctrl-C does.

    So `with` blocks and pytest teardown run and stop the children in order, instead of the
    interpreter dying on the spot (in which case PR_SET_PDEATHSIG still kills them).
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
