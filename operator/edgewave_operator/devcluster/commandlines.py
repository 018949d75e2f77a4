"""What the control plane runs: file layout, ports and the exact etcd/kube-apiserver argv.

Pure: builds values from values, touches neither files nor processes, so the flags that
make the control plane real (RBAC, admission webhooks, service-account tokens) are pinned
by unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
ETCD_NAME = "edgewave-dev"
# Served by the API server's certificate; clients may use either.
SERVING_DNS_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
SERVING_IP_ADDRESSES = (LOOPBACK, "10.96.0.1")


@dataclass(frozen=True)
class Ports:
    """The three TCP ports one control plane listens on (all on 127.0.0.1)."""

    etcd_client: int
    etcd_peer: int
    apiserver: int


@dataclass(frozen=True)
class Files:
    """Where one control plane keeps its certificates, data, logs and kubeconfig."""

    workdir: Path

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def serving_cert(self) -> Path:
        return self.pki / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.pki / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.pki / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.pki / "admin.key"

    @property
    def service_account_key(self) -> Path:
        return self.pki / "sa.key"

    @property
    def service_account_pub(self) -> Path:
        return self.pki / "sa.pub"

    @property
    def etcd_data(self) -> Path:
        return self.workdir / "etcd"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def server_url(ports: Ports) -> str:
    return f"https://{LOOPBACK}:{ports.apiserver}"


def etcd_url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def etcd_command(*, bin_dir: Path, files: Files, ports: Ports) -> list[str]:
    """A single-member etcd on loopback, tuned for throw-away test data."""
    peer = etcd_url(ports.etcd_peer)
    client = etcd_url(ports.etcd_client)
    return [
        str(bin_dir / "etcd"),
        f"--name={ETCD_NAME}",
        f"--data-dir={files.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={ETCD_NAME}={peer}",
        "--initial-cluster-state=new",
        # The data is thrown away with the work directory; fsync only costs time.
        "--unsafe-no-fsync=true",
        "--quota-backend-bytes=2147483648",
        "--log-level=warn",
    ]


def apiserver_command(*, bin_dir: Path, files: Files, ports: Ports) -> list[str]:
    """kube-apiserver with TLS, client-certificate auth, RBAC and admission webhooks on.

    Admission plugins stay at the defaults, which include MutatingAdmissionWebhook and
    ValidatingAdmissionWebhook, so webhooks with a `url` clientConfig are called.
    """
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers={etcd_url(ports.etcd_client)}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={files.serving_cert}",
        f"--tls-private-key-file={files.serving_key}",
        f"--client-ca-file={files.ca_cert}",
        f"--service-account-key-file={files.service_account_pub}",
        f"--service-account-signing-key-file={files.service_account_key}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=0",
    ]
