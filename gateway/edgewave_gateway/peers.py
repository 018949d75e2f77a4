"""Who is calling the gateway: the verified client certificate, mapped to a role.

Every handler starts here. TLS has already checked the chain to the operator's CA; this
module checks the role (`edgewave_api.identities`) and aborts with PERMISSION_DENIED,
naming what was expected, when a certificate calls what its role may not.
"""

from __future__ import annotations

from typing import Any

import grpc

from edgewave_api import identities


async def require(
    context: grpc.aio.ServicerContext[Any, Any], role: identities.Role
) -> identities.Identity:
    """The caller's identity if it has `role`; otherwise the call ends PERMISSION_DENIED."""
    certs = list(context.auth_context().get("x509_pem_cert") or [])
    if not certs:
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "the gateway needs a client certificate signed by the operator's CA (mTLS)",
        )
    try:
        identity = identities.identify(certs[0])
    except identities.IdentityError as error:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"refused: {error}")
    if identity.role != role:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"refused: this call needs an {role}'s certificate, not an {identity.role}'s"
            f" ({identity.name})",
        )
    return identity
