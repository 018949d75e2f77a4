"""`edgewave webhook-certificate`: make the admission webhook's certificate in the cluster.

Run by the operator chart's Helm hook Job (`webhook.tls.mode=job`, what `auto` picks without
cert-manager), before and after each install or upgrade: it creates the serving certificate's
Secret once (kept across upgrades) and puts its CA into the ValidatingWebhookConfiguration's
`caBundle`. The chart itself then renders the same bytes every time, which GitOps tools that
compare renders (Argo CD) need. See `edgewave_operator.admission.certificates`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgewave_operator.commands import common


def register(app: typer.Typer) -> None:
    app.command("webhook-certificate")(webhook_certificate)


def webhook_certificate(
    *,
    namespace: Annotated[str, typer.Option(help="The operator's namespace (Secret, Service).")],
    secret: Annotated[str, typer.Option(help="The kubernetes.io/tls Secret to read or create.")],
    service: Annotated[str, typer.Option(help="The webhook Service the certificate is for.")],
    configuration: Annotated[
        str, typer.Option(help="The ValidatingWebhookConfiguration whose caBundle to set.")
    ],
    kubeconfig: common.KubeconfigOption = None,
) -> None:
    """Create the webhook's serving certificate once and inject its CA into the webhooks."""
    import asyncio

    typer.echo(
        asyncio.run(
            _run(
                kubeconfig,
                namespace=namespace,
                secret=secret,
                service=service,
                configuration=configuration,
            )
        )
    )


async def _run(
    kubeconfig: Path | None, *, namespace: str, secret: str, service: str, configuration: str
) -> str:
    from edgewave_operator.admission import certificates
    from edgewave_operator.kube import clients

    api = await clients.connect(kubeconfig)
    async with api:
        data = await certificates.ensure_secret(
            api, namespace=namespace, name=secret, service=service
        )
        patched = await certificates.inject_ca_bundle(
            api,
            configuration=configuration,
            service=service,
            namespace=namespace,
            ca_pem=data["ca.crt"],
        )
    if patched is None:
        return (
            f"Secret {namespace}/{secret} ready; ValidatingWebhookConfiguration {configuration}"
            " does not exist yet (the post-install run sets its caBundle)"
        )
    return (
        f"Secret {namespace}/{secret} ready; caBundle set on {patched} webhook(s) of"
        f" {configuration}"
    )
