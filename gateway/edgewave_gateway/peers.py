"""Who is calling the gateway: the verified client certificate, mapped to a role.

Every handler starts here. TLS has already checked the chain to the operator's CA; this
module reads the role from the certificate's SPIFFE URI SAN (`edgewave_api.identities`, the
same rule the agents apply) and aborts with PERMISSION_DENIED, naming what was expected,
when a certificate calls what its role may not: only agents (`agent/<name>`) open sessions,
only the operator (`operator`) uses the operator-facing side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from edgewave_api import identities


@dataclass(frozen=True)
class Caller:
    identity: identities.Identity
    # The verified certificate, relayed to the agent so it can apply its own rule.
    cert_pem: bytes

    @property
    def name(self) -> str:
        return self.identity.name


async def require(
    context: grpc.aio.ServicerContext[Any, Any], role: identities.Role, *, trust_domain: str
) -> Caller:
    """The caller if its certificate names `role`; otherwise the call ends PERMISSION_DENIED."""
    certs = list(context.auth_context().get("x509_pem_cert") or [])
    if not certs:
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "the gateway needs a client certificate signed by the operator's CA (mTLS)",
        )
    try:
        identity = identities.of_client_certificate(certs[0], trust_domain=trust_domain)
    except identities.IdentityRefused as error:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"refused: {error}")
    if identity.role is not role:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"refused: this call needs an {role}'s certificate, not {identity}'s",
        )
    return Caller(identity=identity, cert_pem=certs[0])
