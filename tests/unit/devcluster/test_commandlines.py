"""The flags that make the dev control plane real are pinned here."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgewave_operator.devcluster import commandlines

BIN = Path("/opt/bin")
FILES = commandlines.Files(Path("/w"))
PORTS = commandlines.Ports(etcd_client=2001, etcd_peer=2002, apiserver=6443)


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in argv[1:])


def test_etcd_listens_only_on_loopback_ports_it_was_given() -> None:
    argv = commandlines.etcd_command(bin_dir=BIN, files=FILES, ports=PORTS)
    flags = _flags(argv)
    assert argv[0] == "/opt/bin/etcd"
    assert flags["listen-client-urls"] == "http://127.0.0.1:2001"
    assert flags["listen-peer-urls"] == "http://127.0.0.1:2002"
    assert flags["initial-cluster"] == "edgewave-dev=http://127.0.0.1:2002"
    assert flags["data-dir"] == "/w/etcd"


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("etcd-servers", "http://127.0.0.1:2001"),
        ("secure-port", "6443"),
        ("bind-address", "127.0.0.1"),
        ("tls-cert-file", "/w/pki/apiserver.crt"),
        ("tls-private-key-file", "/w/pki/apiserver.key"),
        ("client-ca-file", "/w/pki/ca.crt"),
        ("service-account-key-file", "/w/pki/sa.pub"),
        ("service-account-signing-key-file", "/w/pki/sa.key"),
        ("service-account-issuer", "https://kubernetes.default.svc.cluster.local"),
        ("authorization-mode", "Node,RBAC"),
    ],
)
def test_apiserver_flag(flag: str, value: str) -> None:
    argv = commandlines.apiserver_command(bin_dir=BIN, files=FILES, ports=PORTS)
    assert argv[0] == "/opt/bin/kube-apiserver"
    assert _flags(argv)[flag] == value


def test_apiserver_keeps_admission_webhooks_and_never_serves_insecurely() -> None:
    flags = _flags(commandlines.apiserver_command(bin_dir=BIN, files=FILES, ports=PORTS))
    assert "disable-admission-plugins" not in flags
    assert "anonymous-auth" not in flags or flags["anonymous-auth"] == "true"
    assert not any(flag.startswith("insecure") for flag in flags)


def test_server_url_is_https_on_the_apiserver_port() -> None:
    assert commandlines.server_url(PORTS) == "https://127.0.0.1:6443"


def test_files_keep_everything_under_the_workdir() -> None:
    paths = [
        FILES.ca_cert,
        FILES.serving_key,
        FILES.admin_cert,
        FILES.service_account_key,
        FILES.etcd_data,
        FILES.kubeconfig,
        FILES.log("etcd"),
    ]
    assert all(path.is_relative_to(FILES.workdir) for path in paths)
    assert len(set(paths)) == len(paths)
