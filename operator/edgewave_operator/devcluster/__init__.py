"""A real local Kubernetes control plane (etcd + kube-apiserver) for tests and the demo.

Everything in Edgewave is tested against a real API server, never a fake. This package
starts the pinned binaries built by `tools/controlplane/build.sh` with their own CA,
serving certificate, service-account signing key and admin kubeconfig, on free ports, and
stops them without leaving a process behind.

- `locations`: where the repository, the pinned binaries, the CRDs and the state live.
- `commandlines`, `kubeconfigs`, `namespaces`, `states` (pure): what to run and record.
- `credentials`: the PKI material the control plane needs.
- `processes`: spawning and stopping child processes so none is ever orphaned.
- `clusters`: `DevCluster`, the running control plane (foreground, context manager).
- `background`: `up`/`down` of a detached control plane recorded in a state directory.
"""
