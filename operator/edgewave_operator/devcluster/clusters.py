"""`DevCluster`: a running etcd + kube-apiserver, started, probed, used and stopped.

    with DevCluster.start() as cluster:
        cluster.kubectl("get", "namespaces")

`start` generates fresh credentials, picks free ports (retrying if one is taken before
the server binds it), starts both processes and returns once `/readyz` is ok and the
`default` namespace and service account exist. Leaving the `with` block, `stop()`, Ctrl-C
or the death of the starting thread stops both processes. `detached=True` starts them in a
session of their own instead, for `edgewave dev-cluster up`; `attach` finds them again.

There is no kube-controller-manager (as in controller-runtime's envtest): nothing garbage
collects owned objects, deleted namespaces stay Terminating, and namespaces get no
`default` service account unless their creator makes one.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from edgewave_api.errors import PermanentError, TemporaryError
from edgewave_operator.devcluster import (
    commandlines,
    credentials,
    kubeconfigs,
    locations,
    ports,
    processes,
    states,
)

DEFAULT_READY_TIMEOUT = 60.0
_PORT_ATTEMPTS = 4
_PROBE_INTERVAL = 0.1
_ADDRESS_IN_USE = "address already in use"
_TEMP_PREFIX = "edgewave-devcluster-"


class StartupError(TemporaryError):
    """The control plane did not become ready; the message carries the log that says why."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; unlike its base class, the message includes kubectl's stderr."""

    def __str__(self) -> str:
        command = " ".join(str(part) for part in self.cmd[2:])
        return f"kubectl {command} exited {self.returncode}: {str(self.stderr).strip()}"


class _PortTaken(Exception):
    pass


class DevCluster:
    """A running dev control plane. Use `start` or `attach`; never construct directly."""

    def __init__(
        self,
        *,
        files: commandlines.Files,
        bin_dir: Path,
        ports: commandlines.Ports,
        children: list[processes.Child],
        owns_workdir: bool,
    ) -> None:
        self._files = files
        self._ports = ports
        self._children = children
        self._owns_workdir = owns_workdir
        self._stopped = False
        self.bin_dir = bin_dir
        self.kubeconfig = files.kubeconfig
        self.server = commandlines.server_url(ports)
        self.workdir = files.workdir

    # --- lifecycle ----------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        workdir: Path | None = None,
        bin_dir: Path | None = None,
        detached: bool = False,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
    ) -> DevCluster:
        """Starts etcd and kube-apiserver and returns once the API server is ready.

        `workdir` holds certificates, etcd data, logs and the kubeconfig; by default a
        temporary directory that `stop()` removes. Builds the pinned binaries on the
        first call on a machine unless `bin_dir` is given.
        """
        bin_dir = bin_dir or locations.controlplane_bin_dir()
        owns_workdir = workdir is None and not detached
        if workdir is None:
            _remove_abandoned_workdirs()
            workdir = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-"))
        files = commandlines.Files(workdir)
        files.workdir.mkdir(parents=True, exist_ok=True)
        try:
            credentials.write(credentials.generate(), files)
            for _attempt in range(_PORT_ATTEMPTS):
                cluster = cls._launch(files=files, bin_dir=bin_dir, detached=detached)
                cluster._owns_workdir = owns_workdir
                try:
                    cluster._wait_ready(timeout=ready_timeout)
                except _PortTaken:
                    cluster._stop_processes()
                    continue
                except BaseException:
                    cluster._stop_processes()
                    raise
                return cluster
            raise StartupError(
                f"ports were taken before the control plane could bind them {_PORT_ATTEMPTS} "
                "times in a row; something on this machine is grabbing ports, try again",
                retry_after=1.0,
            )
        except BaseException:
            if owns_workdir:
                shutil.rmtree(files.workdir, ignore_errors=True)
            raise

    @classmethod
    def _launch(cls, *, files: commandlines.Files, bin_dir: Path, detached: bool) -> DevCluster:
        chosen = ports.allocate()
        shutil.rmtree(files.etcd_data, ignore_errors=True)
        files.kubeconfig.write_text(_render_kubeconfig(files, commandlines.server_url(chosen)))
        files.kubeconfig.chmod(0o600)
        env = processes.child_environment(os.environ)
        children: list[processes.Child] = []
        cluster = cls(
            files=files, bin_dir=bin_dir, ports=chosen, children=children, owns_workdir=False
        )
        try:
            for name, argv in (
                ("etcd", commandlines.etcd_command(bin_dir=bin_dir, files=files, ports=chosen)),
                (
                    "kube-apiserver",
                    commandlines.apiserver_command(bin_dir=bin_dir, files=files, ports=chosen),
                ),
            ):
                log_path = files.log(name)
                log_path.unlink(missing_ok=True)
                children.append(
                    processes.spawn(argv, name=name, log_path=log_path, detached=detached, env=env)
                )
        except BaseException:
            cluster._stop_processes()
            raise
        return cluster

    @classmethod
    def attach(cls, state: states.ClusterState) -> DevCluster:
        """The control plane `state` describes, as started by another process."""
        children = [
            processes.Child(
                name=p.name,
                identity=processes.Identity(pid=p.pid, start_time=p.start_time),
                log_path=p.log_path,
            )
            for p in state.processes
        ]
        return cls(
            files=commandlines.Files(state.workdir),
            bin_dir=state.bin_dir,
            ports=commandlines.Ports(
                etcd_client=state.etcd_client_port,
                etcd_peer=state.etcd_peer_port,
                apiserver=state.apiserver_port,
            ),
            children=children,
            owns_workdir=False,
        )

    def state(self) -> states.ClusterState:
        return states.ClusterState(
            server=self.server,
            kubeconfig=self.kubeconfig,
            bin_dir=self.bin_dir,
            workdir=self.workdir,
            etcd_client_port=self._ports.etcd_client,
            etcd_peer_port=self._ports.etcd_peer,
            apiserver_port=self._ports.apiserver,
            processes=tuple(
                states.RecordedProcess(
                    name=c.name,
                    pid=c.identity.pid,
                    start_time=c.identity.start_time,
                    log_path=c.log_path,
                )
                for c in self._children
            ),
        )

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(child.identity.pid for child in self._children)

    def is_running(self) -> bool:
        """True while every process of the control plane is alive."""
        return all(not processes.is_gone(child) for child in self._children)

    def stop(self) -> None:
        """Stops both processes (waiting until they are gone); idempotent."""
        if self._stopped:
            return
        self._stop_processes()
        self._stopped = True
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_processes(self) -> None:
        # One at a time, the API server first: stopped together, the API server spends its
        # whole grace period retrying a gone etcd.
        for child in reversed(self._children):
            processes.stop([child])

    def __enter__(self) -> DevCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- use ----------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """This process's environment pointed at the cluster: KUBECONFIG, pinned kubectl."""
        env = processes.child_environment(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        # Discovery cache per cluster: ports are reused across runs, caches must not be.
        env["KUBECACHEDIR"] = str(self.workdir / "kubectl-cache")
        return env

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float | None = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Runs the pinned kubectl against this cluster; raises `KubectlError` if `check`."""
        command = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            command,
            input=input,
            capture_output=True,
            text=True,
            env=self.environment(),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, command, result.stdout, result.stderr)
        return result

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, bytes]:
        """One HTTPS request to the API server as the admin user; returns (status, body)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._tls(), timeout=5) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())

    def version(self) -> str:
        """The API server's version, e.g. "Kubernetes v1.34.4"."""
        status, body = self.request("GET", "/version")
        if status != 200:
            raise TemporaryError(f"GET /version answered {status}; is the control plane up?")
        return f"Kubernetes {json.loads(body)['gitVersion']}"

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self._files.ca_cert))
        context.load_cert_chain(str(self._files.admin_cert), str(self._files.admin_key))
        return context

    # --- readiness ----------------------------------------------------------------------

    def _wait_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._wait_for(deadline, "/readyz to be ok", lambda: self._get_ok("/readyz"))
        self._wait_for(
            deadline,
            "the default namespace",
            lambda: self._get_ok("/api/v1/namespaces/default"),
        )
        self._wait_for(deadline, "the default service account", self._ensure_default_account)

    def _wait_for(self, deadline: float, what: str, probe: Any) -> None:
        while True:
            self._check_children()
            try:
                if probe():
                    return
            except (OSError, ssl.SSLError):
                pass  # not listening yet, or mid-start
            if time.monotonic() >= deadline:
                raise StartupError(
                    f"the dev control plane did not get {what} in time; logs are in "
                    f"{self._files.logs}; kube-apiserver says:\n"
                    + processes.log_tail(self._files.log("kube-apiserver")),
                    retry_after=1.0,
                )
            time.sleep(_PROBE_INTERVAL)

    def _check_children(self) -> None:
        for child in self._children:
            if processes.is_gone(child):
                tail = processes.log_tail(child.log_path)
                if _ADDRESS_IN_USE in tail:
                    raise _PortTaken(child.name)
                raise PermanentError(
                    f"{child.name} exited during start-up; its log ({child.log_path}) ends:\n{tail}"
                )

    def _get_ok(self, path: str) -> bool:
        status, _ = self.request("GET", path)
        return status == 200

    def _ensure_default_account(self) -> bool:
        status, _ = self.request(
            "POST",
            "/api/v1/namespaces/default/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
        )
        return status in (201, 409)  # created, or already there


def _remove_abandoned_workdirs() -> None:
    """Removes temporary work directories whose owner died without cleaning up (SIGKILL).

    Each is named after its owner's pid; etcd preallocates ~120 MB in it.
    """
    for path in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*-*"):
        owner = path.name.removeprefix(_TEMP_PREFIX).split("-", 1)[0]
        if owner.isdigit() and processes.identity_of(int(owner)) is None:
            shutil.rmtree(path, ignore_errors=True)


def _render_kubeconfig(files: commandlines.Files, server: str) -> str:
    return kubeconfigs.render(
        server=server,
        ca_pem=files.ca_cert.read_bytes(),
        client_cert_pem=files.admin_cert.read_bytes(),
        client_key_pem=files.admin_key.read_bytes(),
    )
