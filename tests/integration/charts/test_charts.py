"""The Helm charts, rendered by the pinned helm and judged by the real API server.

The charts' CRDs are applied for real (once per session) so custom resources and everything
naming Edgewave kinds validate; every other object is a server-side dry run, so no test leaves
a webhook registered that would intercept other tests' ModelRollouts. The RBAC test is the one
exception: it applies the operator's RBAC for real to ask the API server what the operator's
ServiceAccount may do, and removes the cluster-scoped part afterwards.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgewave_agent import cli as agent_cli
from edgewave_agent import settings as agent_settings
from edgewave_api import kubeyaml
from edgewave_operator import cli as operator_cli
from edgewave_operator import settings as operator_settings
from edgewave_operator.admission import webhook
from edgewave_operator.devcluster import clusters
from edgewave_operator.kube import permissions
from tools import rbacgen

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
OPERATOR = REPO / "charts" / "edgewave-operator"
AGENT = REPO / "charts" / "edgewave-agent"
AGENT_TEST_VALUES = AGENT / "ci" / "test-values.yaml"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
CERT_MANAGER_GROUP = "cert-manager.io/"
STANDALONE_GATEWAYS = [
    {"name": "gw-eu-west", "tlsSecretName": "gw-eu-west-tls",
     "nodeSelector": {"topology.kubernetes.io/region": "eu-west"}},
    {"name": "gw-us-east", "tlsSecretName": "gw-us-east-tls", "port": 7445,
     "service": {"type": "LoadBalancer"}, "existingClaim": "gw-us-east-cache",
     "cacheCapacity": "100GiB", "resources": {"requests": {"cpu": "100m"}}},
]  # fmt: skip


# --- helm, offline ---------------------------------------------------------------------------


def pinned_kube_version() -> str:
    """The Kubernetes version of the pinned control plane, which `helm template` targets."""
    go_mod = (REPO / "tools" / "controlplane" / "go.mod").read_text()
    match = re.search(r"^\s*k8s\.io/kubernetes (v[0-9.]+)\s*$", go_mod, re.MULTILINE)
    assert match, "tools/controlplane/go.mod must require k8s.io/kubernetes"
    return match.group(1)


@dataclass(frozen=True)
class Helm:
    """The pinned helm binary, run against the charts in this repository."""

    binary: Path
    kube_version: str

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def _values_args(
        self, values: Mapping[str, Any] | None, files: Sequence[Path]
    ) -> tuple[list[str], str | None]:
        # `values` go last (through stdin), so they win over the files.
        args = [arg for path in files for arg in ("-f", str(path))]
        if values is None:
            return args, None
        return [*args, "-f", "-"], json.dumps(values)

    def lint(
        self, chart: Path, *, values: Mapping[str, Any] | None = None, files: Sequence[Path] = ()
    ) -> subprocess.CompletedProcess[str]:
        args, stdin = self._values_args(values, files)
        return self.run(
            "lint",
            str(chart),
            "--strict",
            f"--kube-version={self.kube_version}",
            *args,
            stdin=stdin,
        )

    def template(
        self,
        chart: Path,
        *,
        namespace: str,
        values: Mapping[str, Any] | None = None,
        files: Sequence[Path] = (),
        release: str = "t",
    ) -> subprocess.CompletedProcess[str]:
        args, stdin = self._values_args(values, files)
        return self.run(
            "template",
            release,
            str(chart),
            f"--namespace={namespace}",
            f"--kube-version={self.kube_version}",
            *args,
            stdin=stdin,
        )

    def render(
        self,
        chart: Path,
        *,
        namespace: str,
        values: Mapping[str, Any] | None = None,
        files: Sequence[Path] = (),
        release: str = "t",
    ) -> list[dict[str, Any]]:
        """The rendered objects; fails the test with helm's message when rendering fails."""
        result = self.template(
            chart, namespace=namespace, values=values, files=files, release=release
        )
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _operator_deployment(objects: Sequence[Mapping[str, Any]]) -> Any:
    """The operator's Deployment (gateways may render theirs too)."""
    (found,) = [
        o for o in objects
        if o["kind"] == "Deployment"
        and o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
        == "operator"
    ]  # fmt: skip
    return found


def find(objects: Sequence[Mapping[str, Any]], kind: str, name: str | None = None) -> Any:
    """The one rendered object of `kind` (and `name`, when given).

    Without a name, Helm hooks are not candidates: the webhook-certificate hook's own
    ServiceAccount and RBAC live only while it runs, and are not the operator's.
    """
    matches = [
        o
        for o in objects
        if o["kind"] == kind
        and (
            o["metadata"]["name"] == name
            if name is not None
            else "helm.sh/hook" not in (o["metadata"].get("annotations") or {})
        )
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, rendered {len(matches)}"
    return matches[0]


def as_yaml(objects: Sequence[Mapping[str, Any]]) -> str:
    return kubeyaml.dump_all(objects)


@pytest.fixture(scope="session")
def helm() -> Helm:
    built = subprocess.run(
        [str(REPO / "tools" / "helm" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, f"tools/helm/build.sh failed:\n{built.stderr}"
    return Helm(binary=Path(built.stdout.strip()), kube_version=pinned_kube_version())


@pytest.fixture(scope="session")
def crds(kube: clusters.DevCluster) -> list[str]:
    """The operator chart's CRDs, applied for real and Established; their names."""
    files = sorted((OPERATOR / "crds").glob("*.yaml"))
    assert files, "charts/edgewave-operator/crds/ is empty: run `make generate`"
    names = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in files]
    apply = ["apply", "--server-side", "--force-conflicts", "--field-manager=edgewave-chart-tests"]
    kube.kubectl(*apply, *(arg for path in files for arg in ("-f", str(path))))
    kube.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names)
    )
    return names


def dry_run(
    kube: clusters.DevCluster, objects: Sequence[Mapping[str, Any]]
) -> subprocess.CompletedProcess[str]:
    return kube.kubectl(
        "apply", "--dry-run=server", "-o", "name", "-f", "-", input=as_yaml(objects), check=False
    )


# --- lint and schema ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chart", "values", "files"),
    [
        pytest.param(OPERATOR, None, (), id="operator-defaults"),
        pytest.param(
            OPERATOR, {"webhook": {"tls": {"mode": "certManager"}}}, (), id="operator-cert-manager"
        ),
        pytest.param(
            OPERATOR,
            {
                "webhook": {
                    "tls": {"mode": "existingSecret", "existingSecret": "wh", "caBundle": "Zm9v"}
                }
            },
            (),
            id="operator-existing-secret",
        ),
        pytest.param(AGENT, None, (AGENT_TEST_VALUES,), id="agent"),
    ],
)
def test_helm_lint_passes(
    helm: Helm, chart: Path, values: Mapping[str, Any] | None, files: Sequence[Path]
) -> None:
    result = helm.lint(chart, values=values, files=files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("chart", "values", "complaint"),
    [
        pytest.param(OPERATOR, {"replicaCount": "two"}, "at '/replicaCount'", id="replicas-string"),
        pytest.param(OPERATOR, {"replicas": 2}, "'replicas' not allowed", id="unknown-key"),
        pytest.param(
            OPERATOR,
            {"webhook": {"tls": {"mode": "selfSigned"}}},
            "at '/webhook/tls/mode'",
            id="unknown-tls-mode",
        ),
        pytest.param(
            OPERATOR,
            {"webhook": {"failurePolicy": {"modelRollout": "Sometimes"}}},
            "at '/webhook/failurePolicy/modelRollout'",
            id="unknown-failure-policy",
        ),
        pytest.param(OPERATOR, {"webhook": {"port": 70000}}, "at '/webhook/port'", id="port"),
        pytest.param(
            OPERATOR,
            {"leaderElection": {"leaseDurationSeconds": 2}},
            "at '/leaderElection/leaseDurationSeconds'",
            id="lease-too-short",
        ),
        pytest.param(
            OPERATOR,
            {"webhook": {"tls": {"mode": "existingSecret"}}},
            "at '/webhook/tls/existingSecret'",
            id="existing-secret-without-name",
        ),
        pytest.param(AGENT, {"region": "EU West"}, "at '/region'", id="region-not-dns-label"),
        pytest.param(AGENT, {"jurisdiction": "eu"}, "at '/jurisdiction'", id="jurisdiction-case"),
        pytest.param(AGENT, {"store": {"type": "nfs"}}, "at '/store/type'", id="unknown-store"),
        pytest.param(AGENT, {"store": {"quota": "lots"}}, "at '/store/quota'", id="quota"),
        pytest.param(AGENT, {"gpu": {"count": -1}}, "at '/gpu/count'", id="negative-gpus"),
        pytest.param(
            AGENT,
            {"edgeAgents": {"nodes": [{"name": "gpu-node-9"}]}},
            "at '/edgeAgents/nodes/0'",
            id="node-without-address",
        ),
    ],
)
def test_values_schema_violation_is_rejected(
    helm: Helm, chart: Path, values: Mapping[str, Any], complaint: str
) -> None:
    files = (AGENT_TEST_VALUES,) if chart == AGENT else ()
    result = helm.template(chart, namespace="edgewave", values=values, files=files)
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr, result.stderr
    assert complaint in result.stderr, result.stderr
    assert result.stdout == ""


def test_agent_chart_requires_its_region(helm: Helm) -> None:
    result = helm.template(AGENT, namespace="edge", values={"tls": {"secretName": "tls"}})
    assert result.returncode != 0
    assert "at '/region'" in result.stderr, result.stderr


# --- the real API server accepts what the charts render ------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(None, id="defaults"),
        pytest.param(
            {
                "replicaCount": 1,
                "webhook": {"enabled": False},
                "metrics": {"enabled": False},
                "leaderElection": {"enabled": False},
                "cache": {"existingClaim": "engine-cache"},
            },
            id="minimal",
        ),
        pytest.param(
            {
                "watchNamespaces": ["default"],
                "rbac": {"tlsSecretNamespaces": ["default"], "extraSecretNames": ["agent-client"]},
                "webhook": {
                    "namespaceSelector": {"matchLabels": {"edgewave.io/rollouts": "enabled"}},
                    "failurePolicy": {"modelRollout": "Fail", "residencyPolicy": "Ignore"},
                },
                "metrics": {"service": {"annotations": {"prometheus.io/scrape": "true"}}},
                "extraEnv": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel:4317"}],
            },
            id="scoped",
        ),
        pytest.param({"webhook": {"tls": {"mode": "certManager"}}}, id="cert-manager"),
        pytest.param(
            {
                "gateways": {
                    "embedded": {"service": {"type": "LoadBalancer"}, "hosts": ["ew.example"]},
                    "standalone": STANDALONE_GATEWAYS,
                }
            },
            id="gateways",
        ),
        pytest.param(
            {"gateways": {"embedded": {"enabled": False}, "standalone": STANDALONE_GATEWAYS}},
            id="standalone-gateways-only",
        ),
    ],
)
def test_operator_chart_is_accepted_by_the_api_server(
    kube: clusters.DevCluster,
    namespace: str,
    crds: list[str],
    helm: Helm,
    values: Mapping[str, Any] | None,
) -> None:
    objects = helm.render(OPERATOR, namespace=namespace, values=values)
    # No cert-manager in the dev control plane: its kinds are checked by the certificate test.
    objects = [o for o in objects if not o["apiVersion"].startswith(CERT_MANAGER_GROUP)]
    result = dry_run(kube, objects)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert len(result.stdout.split()) == len(objects)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(None, id="hostPath-store-with-edgeagents"),
        pytest.param(
            {"store": {"type": "ephemeral", "ephemeral": {"storageClassName": "local-ssd"}}},
            id="ephemeral-store",
        ),
        pytest.param(
            {"store": {"type": "persistentVolumeClaim", "existingClaim": "engines"}},
            id="claim-store",
        ),
        pytest.param(
            {
                "store": {"type": "emptyDir"},
                "insecure": True,
                "gpu": {"count": 0, "runtimeClassName": "nvidia"},
                "ports": {"hostPort": False},
                "activationPublicKey": {"pem": "", "configMap": {"name": "edgewave-activation"}},
                "edgeAgents": {
                    "cordoned": True,
                    "labels": {"fleet": "lab"},
                    "tlsSecretRef": {"name": "agent-client", "namespace": "edgewave-system"},
                },
            },
            id="lab",
        ),
        pytest.param({"gateway": {"address": "gw.example:7444"}}, id="behind-nat"),
    ],
)
def test_agent_chart_is_accepted_by_the_api_server(
    kube: clusters.DevCluster,
    namespace: str,
    crds: list[str],
    helm: Helm,
    values: Mapping[str, Any] | None,
) -> None:
    objects = helm.render(AGENT, namespace=namespace, values=values, files=(AGENT_TEST_VALUES,))
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "EdgeAgent"] == [
        "gpu-node-1",
        "gpu-node-2",
    ]
    result = dry_run(kube, objects)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert len(result.stdout.split()) == len(objects)


# --- PodSecurity -------------------------------------------------------------------------------


def _pod_from(
    objects: Sequence[Mapping[str, Any]], kind: str, namespace: str, name: str | None = None
) -> dict[str, Any]:
    """The workload's pod template as a Pod, the object PodSecurity admission enforces on."""
    template = find(objects, kind, name)["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod-security-check", "namespace": namespace, **template["metadata"]},
        "spec": template["spec"],
    }


def _enforce(kube: clusters.DevCluster, namespace: str, level: str) -> None:
    kube.kubectl(
        "label",
        "namespace",
        namespace,
        f"pod-security.kubernetes.io/enforce={level}",
        "pod-security.kubernetes.io/enforce-version=latest",
    )


@dataclass(frozen=True)
class Workload:
    """A chart, the values to render it with, and the kind of its workload."""

    chart: Path
    kind: str
    values: Mapping[str, Any] | None = None
    files: Sequence[Path] = ()


RESTRICTED_WORKLOADS = [
    pytest.param(Workload(OPERATOR, "Deployment"), id="operator"),
    pytest.param(
        Workload(
            AGENT,
            "DaemonSet",
            {"store": {"type": "emptyDir"}, "ports": {"hostPort": False}},
            (AGENT_TEST_VALUES,),
        ),
        id="agent-emptyDir-store",
    ),
    pytest.param(
        Workload(
            AGENT,
            "DaemonSet",
            {"store": {"type": "ephemeral"}, "ports": {"hostPort": False}, "gpu": {"count": 2}},
            (AGENT_TEST_VALUES,),
        ),
        id="agent-ephemeral-store",
    ),
]


def test_network_policies_admit_only_whom_they_name(
    kube: clusters.DevCluster, namespace: str, crds: list[str], helm: Helm
) -> None:
    operator = helm.render(
        OPERATOR,
        namespace=namespace,
        values={
            "networkPolicy": {
                "apiServerCidrs": ["10.0.0.0/24", "fd00::/64"],
                "metricsNamespace": "observability",
            }
        },
    )
    agent = helm.render(
        AGENT,
        namespace=namespace,
        files=(AGENT_TEST_VALUES,),
        values={
            "ports": {"control": 7000, "serving": 7001},
            "networkPolicy": {
                "control": {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "edgewave-system"}
                            }
                        }
                    ]
                },
                "serving": {"from": [{"ipBlock": {"cidr": "192.168.0.0/16"}}]},
            },
        },
    )
    policies = [find(operator, "NetworkPolicy"), find(agent, "NetworkPolicy")]
    result = dry_run(kube, policies)
    assert result.returncode == 0, result.stderr
    webhook_rule, metrics_rule, health_rule = policies[0]["spec"]["ingress"]
    assert webhook_rule == {
        "ports": [{"port": 9443, "protocol": "TCP"}],
        "from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}, {"ipBlock": {"cidr": "fd00::/64"}}],
    }
    assert metrics_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}
    ]
    assert "from" not in health_rule and health_rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    control_rule, serving_rule = policies[1]["spec"]["ingress"]
    assert control_rule == {
        "ports": [{"port": 7000, "protocol": "TCP"}],
        "from": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "edgewave-system"}
                }
            }
        ],
    }
    assert serving_rule == {
        "ports": [{"port": 7001, "protocol": "TCP"}],
        "from": [{"ipBlock": {"cidr": "192.168.0.0/16"}}],
    }
    for policy in policies:
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert policy["spec"]["egress"] == [{}]


def test_network_policies_by_default_admit_only_the_pods_own_ports(helm: Helm) -> None:
    operator = find(helm.render(OPERATOR, namespace="edgewave"), "NetworkPolicy")
    agent = find(
        helm.render(AGENT, namespace="edgewave", files=(AGENT_TEST_VALUES,)), "NetworkPolicy"
    )
    # No source list: any address, but only on these ports.
    assert operator["spec"]["ingress"] == [
        {"ports": [{"port": 9443, "protocol": "TCP"}]},
        {"ports": [{"port": 9090, "protocol": "TCP"}]},
        {"ports": [{"port": 8080, "protocol": "TCP"}]},
    ]
    assert [rule["ports"][0]["port"] for rule in agent["spec"]["ingress"]] == [7443, 8001]
    assert all("from" not in rule for rule in agent["spec"]["ingress"])
    off = helm.render(OPERATOR, namespace="edgewave", values={"networkPolicy": {"enabled": False}})
    # The webhook certificate hook's own policy (its Job accepts nothing) is not this one.
    assert [o["metadata"]["name"] for o in off if o["kind"] == "NetworkPolicy"] == [
        n["metadata"]["name"]
        for n in helm.render(OPERATOR, namespace="edgewave")
        if n["kind"] == "NetworkPolicy" and "helm.sh/hook" in n["metadata"].get("annotations", {})
    ]


@pytest.mark.parametrize(
    ("chart", "values"),
    [
        (OPERATOR, {"networkPolicy": {"apiServerCidrs": ["apiserver"]}}),
        (OPERATOR, {"networkPolicy": {"metricsNamespace": "Not_A_Namespace"}}),
        (AGENT, {"networkPolicy": {"control": {"from": "edgewave-system"}}}),
    ],
)
def test_network_policy_values_are_checked(
    helm: Helm, chart: Path, values: Mapping[str, Any]
) -> None:
    files = (AGENT_TEST_VALUES,) if chart == AGENT else ()
    result = helm.template(chart, namespace="edgewave", values=values, files=files)
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr, result.stderr


@pytest.mark.parametrize("workload", RESTRICTED_WORKLOADS)
def test_pod_meets_the_restricted_pod_security_profile(
    kube: clusters.DevCluster, namespace: str, helm: Helm, workload: Workload
) -> None:
    _enforce(kube, namespace, "restricted")
    objects = helm.render(
        workload.chart, namespace=namespace, values=workload.values, files=workload.files
    )
    # The ServiceAccount admission plugin wants the pod's account to exist: create it for real.
    kube.kubectl("apply", "-f", "-", input=as_yaml([find(objects, "ServiceAccount")]))
    pod = _pod_from(objects, workload.kind, namespace)
    result = dry_run(kube, [pod])
    assert result.returncode == 0, result.stderr
    assert "violate" not in result.stderr, result.stderr

    # The same pod, one field away from compliance, is refused: the namespace does enforce.
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    refused = dry_run(kube, [pod])
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr
    assert "allowPrivilegeEscalation != false" in refused.stderr


def test_a_standalone_gateway_is_restricted_and_has_no_kubernetes_api_access(
    kube: clusters.DevCluster, namespace: str, helm: Helm
) -> None:
    _enforce(kube, namespace, "restricted")
    objects = helm.render(
        OPERATOR, namespace=namespace, release="ew",
        values={"gateways": {"standalone": STANDALONE_GATEWAYS}},
    )  # fmt: skip
    name = "ew-edgewave-operator-gw-eu-west"
    account = find(objects, "ServiceAccount", name)
    assert account["automountServiceAccountToken"] is False
    pod = _pod_from(objects, "Deployment", namespace, name)
    assert pod["spec"]["serviceAccountName"] == name
    assert pod["spec"]["automountServiceAccountToken"] is False
    # No role of the chart names the gateway's account: it may call nothing on the API.
    for binding in (o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert all(s["name"] != name for s in binding.get("subjects", [])), binding
    service = find(objects, "Service", name)
    assert service["spec"]["selector"]["edgewave.io/gateway"] == "gw-eu-west"
    assert pod["metadata"]["labels"]["edgewave.io/gateway"] == "gw-eu-west"
    kube.kubectl("apply", "-f", "-", input=as_yaml([account]))
    result = dry_run(kube, [pod])
    assert result.returncode == 0, result.stderr
    assert "violate" not in result.stderr, result.stderr
    # The operator reaches each gateway at its Service.
    operator = find(objects, "Deployment", "ew-edgewave-operator")
    env = {
        e["name"]: e.get("value")
        for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert json.loads(env["EDGEWAVE_GATEWAYS"]) == {
        "gw-eu-west": f"ew-edgewave-operator-gw-eu-west.{namespace}.svc:7444",
        "gw-us-east": f"ew-edgewave-operator-gw-us-east.{namespace}.svc:7445",
    }


def test_a_standalone_gateway_accepts_callers_of_the_operators_trust_domain(
    helm: Helm,
) -> None:
    objects = helm.render(
        OPERATOR, namespace="edgewave-system", release="ew",
        values={
            "gateways": {"standalone": STANDALONE_GATEWAYS},
            "pki": {"trustDomain": "fleet.example"},
        },
    )  # fmt: skip
    gateway = find(objects, "Deployment", "ew-edgewave-operator-gw-eu-west")
    args = gateway["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--trust-domain=fleet.example" in args, args


def test_a_standalone_gateway_without_its_tls_secret_is_rejected(helm: Helm) -> None:
    result = helm.run("template", "ew", str(OPERATOR), "--set", "gateways.standalone[0].name=gw-a")
    assert result.returncode != 0
    assert "tlsSecretName" in result.stderr


def test_agent_host_store_and_ports_need_a_privileged_namespace(
    kube: clusters.DevCluster, namespace: str, helm: Helm
) -> None:
    # What docs/operations.md and values.yaml say: hostPath and hostPort are beyond "baseline".
    _enforce(kube, namespace, "baseline")
    objects = helm.render(AGENT, namespace=namespace, files=(AGENT_TEST_VALUES,))
    kube.kubectl("apply", "-f", "-", input=as_yaml([find(objects, "ServiceAccount")]))
    refused = dry_run(kube, [_pod_from(objects, "DaemonSet", namespace)])
    assert refused.returncode != 0
    assert "hostPath volumes" in refused.stderr, refused.stderr
    assert "hostPort" in refused.stderr, refused.stderr


# --- RBAC, asked of the real authorizer -------------------------------------------------------


@pytest.fixture
def operator_rbac(
    kube: clusters.DevCluster, namespace: str, crds: list[str], helm: Helm
) -> Iterator[list[dict[str, Any]]]:
    """The operator chart's RBAC applied for real (release = namespace, so names are unique).

    The CRDs must be served: `kubectl auth can-i` resolves resource names through discovery.
    """
    objects = helm.render(
        OPERATOR,
        namespace=namespace,
        release=namespace,
        values={
            "rbac": {"tlsSecretNamespaces": ["default"]},
            "pki": {"caSecretName": "edgewave-ca"},
            "leaderElection": {"leaseName": "edgewave-operator"},
        },
    )
    rbac = [o for o in objects if o["kind"] in RBAC_KINDS]
    kube.kubectl("apply", "-f", "-", input=as_yaml(rbac))
    yield rbac
    kube.kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false", input=as_yaml(rbac))


# (verb, resource, namespace or None for all, allowed). {ns}, {ca}, {lease} are filled in.
# The chart's rules are generated from `kube.permissions` (tools/rbacgen.py); these questions
# pin what that means to the real authorizer, including what the operator must NOT be able to do.
OPERATOR_PERMISSIONS = [
    ("watch", "modelrollouts.edgewave.io", None, True),
    ("list", "edgeagents.edgewave.io", None, True),
    ("get", "residencypolicies.edgewave.io", None, True),
    ("patch", "modelrollouts.edgewave.io/status", "team-a", True),
    ("update", "modelrollouts.edgewave.io/status", "team-a", False),
    ("patch", "edgeagents.edgewave.io/status", None, True),
    ("update", "edgeagents.edgewave.io/status", None, False),
    ("patch", "residencypolicies.edgewave.io/status", None, True),
    ("update", "residencypolicies.edgewave.io/status", None, False),
    ("patch", "modelrollouts.edgewave.io", "team-a", True),  # kopf's finalizer and annotations
    ("update", "modelrollouts.edgewave.io", "team-a", False),
    ("update", "modelrollouts.edgewave.io/finalizers", "team-a", False),
    ("create", "modelrollouts.edgewave.io", "team-a", False),
    ("delete", "modelrollouts.edgewave.io", "team-a", False),
    ("patch", "edgeagents.edgewave.io", None, False),
    ("create", "edgeagents.edgewave.io", None, False),
    ("patch", "residencypolicies.edgewave.io", None, False),
    ("delete", "residencypolicies.edgewave.io", None, False),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", None, True),
    ("get", "customresourcedefinitions.apiextensions.k8s.io", None, False),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", None, False),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io", None, False),
    ("create", "events", "team-a", True),
    ("patch", "events", "team-a", False),
    ("create", "events.events.k8s.io", "team-a", False),
    ("get", "secrets/{ca}", "{ns}", True),  # its own Secrets, by name only
    ("get", "secrets/someone-elses", "{ns}", False),
    ("get", "secrets", "{ns}", False),
    ("create", "secrets", "{ns}", True),
    ("update", "secrets/{ca}", "{ns}", False),  # created once, never rewritten
    ("update", "secrets/someone-elses", "{ns}", False),
    ("list", "secrets", "{ns}", False),
    ("watch", "secrets", "{ns}", False),
    ("get", "secrets", "default", True),  # rbac.tlsSecretNamespaces
    ("update", "secrets", "default", False),
    ("get", "secrets", "kube-system", False),
    ("create", "secrets", "team-a", False),
    ("get", "leases.coordination.k8s.io/{lease}", "{ns}", True),
    ("update", "leases.coordination.k8s.io/{lease}", "{ns}", True),
    ("patch", "leases.coordination.k8s.io/{lease}", "{ns}", False),
    ("create", "leases.coordination.k8s.io", "{ns}", True),
    ("update", "leases.coordination.k8s.io/another-lease", "{ns}", False),
    ("get", "leases.coordination.k8s.io", "kube-system", False),
    ("patch", "validatingwebhookconfigurations.admissionregistration.k8s.io", None, False),
    ("get", "pods", "{ns}", False),
    ("get", "configmaps", "{ns}", False),
    ("list", "namespaces", None, False),  # only with watchNamespaces
]


def test_operator_rbac_is_least_privilege(
    kube: clusters.DevCluster, namespace: str, operator_rbac: list[dict[str, Any]]
) -> None:
    for rule_holder in operator_rbac:
        for rule in rule_holder.get("rules", []):
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
    cluster_role = find(operator_rbac, "ClusterRole")
    assert all("secrets" not in rule["resources"] for rule in cluster_role["rules"])

    account = find(operator_rbac, "ServiceAccount")["metadata"]["name"]
    names = {"ns": namespace, "ca": "edgewave-ca", "lease": "edgewave-operator"}
    wrong = []
    for verb, resource, where, allowed in OPERATOR_PERMISSIONS:
        kind, _, subresource = resource.partition("/")
        args = ["auth", "can-i", verb, kind.format(**names)]
        if subresource in ("status", "finalizers"):
            args.append(f"--subresource={subresource}")
        elif subresource:
            args[-1] = f"{kind}/{subresource.format(**names)}"
        args += ["-A"] if where is None else [f"--namespace={where.format(**names)}"]
        args.append(f"--as=system:serviceaccount:{namespace}:{account}")
        answer = kube.kubectl(*args, check=False).stdout.strip()
        if answer != ("yes" if allowed else "no"):
            wrong.append(f"{verb} {resource} in {where or 'all namespaces'}: {answer}")
    assert not wrong, "\n".join(wrong)


Grant = tuple[str, str, str]  # (API group, resource, verb)


def grants(rules: Sequence[Mapping[str, Any]]) -> set[Grant]:
    """Every (group, resource, verb) the rules allow, whatever resourceNames narrow them to."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _is_secret(grant: Grant) -> bool:
    return grant[:2] == ("", "secrets")


@pytest.mark.parametrize(
    ("values", "optional"),
    [
        pytest.param(
            {"watchNamespaces": ["a"], "rbac": {"tlsSecretNamespaces": ["tls"]}}, set(), id="all"
        ),
        pytest.param(
            {"leaderElection": {"enabled": False}},
            {("", "namespaces"), ("coordination.k8s.io", "leases")},
            id="no-watch-namespaces-no-leader-election",
        ),
    ],
)
def test_operator_chart_rbac_is_exactly_the_permissions_module(
    helm: Helm, values: dict[str, Any], optional: set[tuple[str, str]]
) -> None:
    # One source of truth: the chart may place and narrow the operator's rules, never add one.
    objects = helm.render(OPERATOR, namespace="ew", release="ew", values=values)
    expected_cluster = grants(permissions.CLUSTER_RULES)
    cluster = grants(find(objects, "ClusterRole")["rules"])
    released = grants(find(objects, "Role", "ew-edgewave-operator")["rules"])
    assert cluster == {g for g in expected_cluster if not _is_secret(g) and g[:2] not in optional}
    assert released == {g for g in grants(permissions.NAMESPACE_RULES) if g[:2] not in optional}
    tls_roles = [
        o for o in objects if o["kind"] == "Role" and o["metadata"]["name"].endswith("-tls")
    ]
    assert [o["metadata"]["namespace"] for o in tls_roles] == values.get("rbac", {}).get(
        "tlsSecretNamespaces", []
    )
    for role in tls_roles:
        assert grants(role["rules"]) == {g for g in expected_cluster if _is_secret(g)}
    for rule in find(objects, "Role", "ew-edgewave-operator")["rules"]:
        if "leases" in rule["resources"] and rule["verbs"] != ["create"]:
            assert rule["resourceNames"] == ["ew-edgewave-operator"], rule


def test_extra_secret_names_are_the_one_opt_in_extra(helm: Helm) -> None:
    values = {"rbac": {"extraSecretNames": ["agent-client"]}}
    role = find(helm.render(OPERATOR, namespace="ew", release="ew", values=values), "Role")
    extra = [rule for rule in role["rules"] if rule.get("resourceNames") == ["agent-client"]]
    assert extra == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["agent-client"],
            "verbs": ["update", "patch"],
        }
    ]
    assert grants(role["rules"]) - grants(extra) == grants(permissions.NAMESPACE_RULES)


def test_model_fetch_limits_reach_the_operator(helm: Helm) -> None:
    values = {"modelFetch": {"maxBytes": 3221225472, "deadlineSeconds": 600}}
    deployment = find(
        helm.render(OPERATOR, namespace="ew", release="ew", values=values), "Deployment"
    )
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["EDGEWAVE_MAX_MODEL_BYTES"] == "3221225472"
    assert env["EDGEWAVE_MODEL_FETCH_DEADLINE_SECONDS"] == "600"
    assert "EDGEWAVE_MODEL_ROOT" not in env  # file:// refused unless configured


def test_operator_reads_secrets_only_by_name(helm: Helm) -> None:
    values = {
        "pki": {"caSecretName": "my-ca"},
        "rbac": {"tlsSecretNamespaces": ["tls"], "tlsSecretNames": ["agent-client"]},
    }
    objects = helm.render(OPERATOR, namespace="ew", release="ew", values=values)
    secret_rules = [
        rule
        for role in objects
        if role["kind"] in ("Role", "ClusterRole")
        for rule in role["rules"]
        if "secrets" in rule["resources"]
    ]
    for rule in secret_rules:
        assert rule["verbs"] == ["create"] or "resourceNames" in rule, rule
    released = find(objects, "Role", "ew-edgewave-operator")["rules"]
    (reader,) = [
        rule for rule in released if "get" in rule["verbs"] and "secrets" in rule["resources"]
    ]
    assert reader["resourceNames"] == ["my-ca", "ew-edgewave-operator-signing-key", "agent-client"]
    tls = find(objects, "Role", "ew-edgewave-operator-agent-tls")
    assert tls["rules"][0]["resourceNames"] == ["agent-client"]


def test_chart_rbac_template_is_generated_from_the_permissions_module() -> None:
    # `make verify` checks this too; here a stale template fails the chart tests directly.
    generated = rbacgen.generate()
    assert generated, "rbacgen generated nothing: the loop below would check nothing"
    for relative, content in generated.items():
        assert (REPO / relative).read_text() == content, f"{relative} is stale: make generate"


# --- certificates and wiring, from the rendered objects ---------------------------------------


def test_webhook_certificate_is_signed_for_the_service_and_trusted_by_the_webhook(
    helm: Helm,
) -> None:
    namespace = "edgewave-system"
    objects = helm.render(
        OPERATOR, namespace=namespace, release="ew", values={"webhook": {"tls": {"mode": "helm"}}}
    )
    service = find(objects, "Service", "ew-edgewave-operator-webhook")
    secret = find(objects, "Secret", "ew-edgewave-operator-webhook-tls")
    configuration = find(objects, "ValidatingWebhookConfiguration")
    deployment = find(objects, "Deployment")

    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    key = serialization.load_pem_private_key(base64.b64decode(secret["data"]["tls.key"]), None)
    leaf.verify_directly_issued_by(ca)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"ew-edgewave-operator-webhook.{namespace}.svc" in sans.get_values_for_type(x509.DNSName)

    by_resource = {hook["rules"][0]["resources"][0]: hook for hook in configuration["webhooks"]}
    assert set(by_resource) == {"modelrollouts", "residencypolicies"}
    assert by_resource["modelrollouts"]["failurePolicy"] == "Fail"
    # kopf runs the handler whose id the path names; the operator refuses any other path.
    rollout_path = by_resource["modelrollouts"]["clientConfig"]["service"]["path"]
    assert rollout_path == f"/{webhook.ROLLOUT_WEBHOOK}"
    policy_path = by_resource["residencypolicies"]["clientConfig"]["service"]["path"]
    assert policy_path == f"/{webhook.POLICY_WEBHOOK}"
    for hook in configuration["webhooks"]:
        assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
        assert hook["clientConfig"]["service"]["name"] == service["metadata"]["name"]
        assert hook["clientConfig"]["service"]["namespace"] == namespace
        assert hook["clientConfig"]["service"]["port"] == service["spec"]["ports"][0]["port"]
        assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
        assert hook["sideEffects"] == "NoneOnDryRun"

    # The pod serves the webhook from that Secret, on the port the Service targets.
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["webhook-tls"]["secret"]["secretName"] == secret["metadata"]["name"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EDGEWAVE_WEBHOOK_PORT"] == str(ports["webhook"])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "webhook-tls")
    assert env["EDGEWAVE_WEBHOOK_CERT_DIR"] == mount["mountPath"]
    assert "items" not in volumes["webhook-tls"]["secret"], "ca.crt too, where there is one"


def test_cert_manager_mode_lets_cainjector_fill_the_ca_bundle(helm: Helm) -> None:
    namespace = "edgewave-system"
    objects = helm.render(
        OPERATOR,
        namespace=namespace,
        release="ew",
        values={"webhook": {"tls": {"mode": "certManager"}}},
    )
    assert not [o for o in objects if o["kind"] == "Secret"], "cert-manager writes the Secret"
    certificate = find(objects, "Certificate", "ew-edgewave-operator-webhook")
    configuration = find(objects, "ValidatingWebhookConfiguration")
    annotation = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{namespace}/{certificate['metadata']['name']}"
    assert all("caBundle" not in hook["clientConfig"] for hook in configuration["webhooks"])
    assert f"ew-edgewave-operator-webhook.{namespace}.svc" in certificate["spec"]["dnsNames"]
    volumes = find(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    tls = next(v for v in volumes if v["name"] == "webhook-tls")
    assert tls["secret"]["secretName"] == certificate["spec"]["secretName"]
    issuer = certificate["spec"]["issuerRef"]["name"]
    assert (
        find(objects, "Issuer", issuer)["spec"]["ca"]["secretName"]
        == find(objects, "Certificate", issuer)["spec"]["secretName"]
    )


def test_operator_runs_two_replicas_with_leader_election_and_probes(helm: Helm) -> None:
    objects = helm.render(OPERATOR, namespace="edgewave-system", release="ew")
    deployment = find(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EDGEWAVE_LEADER_ELECTION"] == "true"
    lease = env["EDGEWAVE_LEASE_NAME"]
    role = find(objects, "Role")
    assert any(lease in rule.get("resourceNames", []) for rule in role["rules"])
    health = next(p["containerPort"] for p in container["ports"] if p["name"] == "health")
    assert env["EDGEWAVE_HEALTH_PORT"] == str(health)
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    # Ready when it can answer admission reviews (the webhook Service sends them only then).
    assert container["readinessProbe"]["tcpSocket"] == {"port": "webhook"}
    pdb = find(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    # A drain may evict a pod that is not Ready: it protects nothing and would block the node.
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    metrics = find(objects, "Service", "ew-edgewave-operator-metrics")
    assert metrics["spec"]["ports"][0]["targetPort"] == "metrics"


def _known_settings() -> set[str]:
    operator = operator_settings.OperatorSettings.model_fields
    admission = webhook.AdmissionConfig.model_fields
    return {f"EDGEWAVE_{name.upper()}" for name in operator} | {
        f"EDGEWAVE_WEBHOOK_{name.upper()}" for name in admission
    }


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(None, id="defaults"),
        pytest.param(
            {"webhook": {"enabled": False}, "metrics": {"enabled": False}}, id="no-webhook"
        ),
        pytest.param({"watchNamespaces": ["team-a", "team-b"]}, id="scoped"),
        pytest.param({"gateways": {"standalone": STANDALONE_GATEWAYS}}, id="gateways"),
        pytest.param({"gateways": {"embedded": {"enabled": False}}}, id="no-embedded-gateway"),
    ],
)
def test_operator_environment_is_what_the_operator_reads(
    helm: Helm, monkeypatch: pytest.MonkeyPatch, values: Mapping[str, Any] | None
) -> None:
    objects = helm.render(OPERATOR, namespace="edgewave-system", release="ew", values=values)
    pod = find(objects, "Deployment", "ew-edgewave-operator")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    rendered = {e["name"]: e.get("value", f"from-{e['name'].lower()}") for e in container["env"]}
    for name in list(rendered):
        if name.startswith("EDGEWAVE_"):
            monkeypatch.delenv(name, raising=False)
    unknown = sorted(
        name for name in rendered if name.startswith("EDGEWAVE_") and name not in _known_settings()
    )
    assert not unknown, f"the operator reads no such setting: {unknown}"
    for name, value in rendered.items():
        monkeypatch.setenv(name, value)

    settings = operator_settings.OperatorSettings()
    admission = webhook.AdmissionConfig()
    role = find(objects, "Role")
    names = {
        (resource, name)
        for rule in role["rules"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames", [])
    }
    # The one Lease it may update, and the only Secrets it may read: its CA and signing key.
    assert names == {
        ("leases", settings.lease_name),
        ("secrets", settings.ca_secret),
        ("secrets", settings.signing_secret),
    }
    # Its CA and signing key: read by name, or created once, in the release namespace.
    assert {("", "secrets", "get"), ("", "secrets", "create")} <= grants(role["rules"])
    assert role["metadata"]["namespace"] == "edgewave-system"
    assert settings.ca_secret == "ew-edgewave-operator-ca"
    assert settings.signing_secret == "ew-edgewave-operator-signing-key"
    assert settings.identity == "from-edgewave_identity"  # the pod's name, from the downward API
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[str(settings.cache_dir)] == "cache"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.metrics_port == ports.get("metrics")
    assert settings.health_port == ports["health"]  # what the probes ask
    assert settings.watch_namespaces == tuple((values or {}).get("watchNamespaces", ()))
    gateways = (values or {}).get("gateways", {})
    if gateways.get("embedded", {}).get("enabled", True):
        assert settings.gateway_listen == f"0.0.0.0:{ports['gateway']}"
        assert "ew-edgewave-operator-gateway.edgewave-system.svc" in settings.gateway_hosts
    else:
        assert not settings.gateway_listen and "gateway" not in ports
    assert sorted(settings.gateways) == sorted(g["name"] for g in gateways.get("standalone", []))
    assert admission.managed is False, "the chart, not the operator, owns the webhook config"
    assert settings.admission_webhook is ("webhook" in ports)
    if "webhook" in ports:
        assert (admission.listen_address, admission.port) == ("0.0.0.0", ports["webhook"])
        assert admission.cert_dir is not None
        assert mounts[str(admission.cert_dir)] == "webhook-tls"


# --- the agent's config is what the agent reads -------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(None, id="defaults"),
        pytest.param(
            {
                "labels": {"rack": "r12"},
                "store": {"quota": "500GB"},
                "config": {"probe": {"max_latency_seconds": 0.05}, "keep_previous_loaded": False},
            },
            id="overrides",
        ),
        pytest.param(
            {
                "insecure": True,
                "activationPublicKey": {
                    "pem": "",
                    "configMap": {"name": "k", "key": "ed25519.pem"},
                },
            },
            id="insecure-key-file",
        ),
        pytest.param(
            {"gateway": {"address": "gw.example:7444", "serverName": "gw"}}, id="behind-nat"
        ),
    ],
)
def test_agent_config_is_what_the_agent_accepts(
    helm: Helm, values: Mapping[str, Any] | None
) -> None:
    objects = helm.render(AGENT, namespace="edge", values=values, files=(AGENT_TEST_VALUES,))
    config = yaml.safe_load(find(objects, "ConfigMap")["data"]["agent.yaml"])
    pod = find(objects, "DaemonSet")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert "--config=/etc/edgewave/agent.yaml" in container["args"]
    assert "--agent-id=$(EDGEWAVE_NODE_NAME)" in container["args"]

    # The agent id comes from the node (a flag); everything else from the ConfigMap.
    parsed = agent_settings.parse({**config, "agent_id": "gpu-node-1"}, source="agent.yaml")
    assert (parsed.region, parsed.zone, parsed.jurisdiction) == ("eu-west", "eu-west-1a", "EU")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert parsed.listen.serving == f"0.0.0.0:{ports['serving']}"
    if values and "gateway" in values:
        # Behind NAT: the agent dials out, opens no control port, its EdgeAgents no endpoint.
        assert parsed.gateway is not None and parsed.gateway.address == "gw.example:7444"
        assert parsed.gateway.server_name == "gw" and "control" not in ports
        probed = {container[p]["tcpSocket"]["port"] for p in ("startupProbe", "livenessProbe")}
        assert probed == {"serving"}
        assert all("endpoint" not in o["spec"] for o in objects if o["kind"] == "EdgeAgent")
    else:
        assert parsed.gateway is None
        assert parsed.listen.control == f"0.0.0.0:{ports['control']}"

    # Every file the config names is mounted, from the right volume.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[str(parsed.data_dir)] == "store"
    files = [parsed.tls.cert_file, parsed.tls.key_file, parsed.tls.client_ca_file]
    files.append(parsed.activation_public_key_file)
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in filter(None, files):
        volume = volumes[mounts[str(path.parent)]]
        source = volume.get("secret") or volume.get("configMap")
        assert path.name in [item["path"] for item in source["items"]], path


# --- the commands accept the arguments the charts give them ---------------------------------------


def _parse_command_line(root: Any, argv: Sequence[str]) -> Any:
    """Parse `argv` the way the entry point would, without running the command.

    `root` is the click command typer builds (typer ships its own click, hence `Any`).
    """
    command, args = root, list(argv)
    while args and args[0] in getattr(command, "commands", {}):
        command, args = command.commands[args[0]], args[1:]
    assert not hasattr(command, "commands"), f"{' '.join(argv)} names no command"
    return command.make_context(command.name, args)


def test_agent_command_accepts_the_daemonset_arguments(helm: Helm) -> None:
    objects = helm.render(AGENT, namespace="edge", files=(AGENT_TEST_VALUES,))
    container = find(objects, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["edgewave-agent"]
    # kubelet expands $(EDGEWAVE_NODE_NAME) from the container's env before exec.
    env = {e["name"] for e in container["env"]}
    argv = [arg.replace("$(EDGEWAVE_NODE_NAME)", "gpu-node-1") for arg in container["args"]]
    assert "EDGEWAVE_NODE_NAME" in env
    context = _parse_command_line(typer.main.get_command(agent_cli.app), argv)
    assert context.params["agent_id"] == "gpu-node-1"
    assert str(context.params["config"]) == "/etc/edgewave/agent.yaml"


def test_operator_command_accepts_the_deployment_arguments(helm: Helm) -> None:
    root: Any = typer.main.get_command(operator_cli.build_app())
    operator = root.commands.get("operator")
    assert "run" in getattr(operator, "commands", {}), "`edgewave operator run` is missing"
    for values in (None, {"watchNamespaces": ["team-a", "team-b"]}):
        objects = helm.render(OPERATOR, namespace="edgewave-system", values=values)
        container = _operator_deployment(objects)["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["edgewave"]
        _parse_command_line(root, container["args"])


# --- the documented installs render -----------------------------------------------------------


def _documented_helm_installs() -> list[list[str]]:
    """Every `helm install` in docs/operations.md's shell blocks, as argv."""
    text = (REPO / "docs" / "operations.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    commands = [
        shlex.split(line)
        for block in blocks
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip().startswith("helm install")
    ]
    assert commands, "docs/operations.md shows how to install with helm"
    return commands


@pytest.mark.parametrize("argv", _documented_helm_installs(), ids=lambda argv: argv[3])
def test_documented_helm_install_renders(helm: Helm, argv: list[str]) -> None:
    _, _, release, chart, *flags = argv
    flags = [flag for flag in flags if flag != "--create-namespace"]
    result = helm.run(
        "template", release, str(REPO / chart), f"--kube-version={helm.kube_version}", *flags
    )
    assert result.returncode == 0, result.stderr
    if chart.endswith("edgewave-operator"):
        # The kubectl lines in the docs name the Secrets this install creates.
        docs = (REPO / "docs" / "operations.md").read_text()
        objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        container = _operator_deployment(objects)["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        for setting in ("EDGEWAVE_CA_SECRET", "EDGEWAVE_SIGNING_SECRET"):
            assert f"get secret {env[setting]} " in docs, setting


def test_flux_helmrelease_values_pass_the_chart_schema(helm: Helm) -> None:
    path = REPO / "docs" / "gitops" / "flux" / "edgewave-operator-helmrelease.yaml"
    release = yaml.safe_load(path.read_text())
    objects = helm.render(
        REPO / release["spec"]["chart"]["spec"]["chart"],
        namespace=release["metadata"]["namespace"],
        values=release["spec"]["values"],
        release=release["metadata"]["name"],
    )
    assert find(objects, "Deployment")["metadata"]["name"] == "edgewave-operator"
