"""Who may change this agent: the one authorization rule of the agent API.

Being signed by the operator's CA is not enough: every certificate of the fleet is, agents'
own included. A mutating call must come from a client certificate that names the operator
(`spiffe://<trust-domain>/operator`), issued for clientAuth; an agent's certificate, a
gateway's (`gateway/<name>`: it relays the operator's calls, it does not command), one
without a role, one without an extended key usage or one of another trust domain is refused.
In gateway mode the certificate checked is the caller's as the gateway relays it
(`gatewaytrust`), so the rule is the same end to end, and the operator's signed grants
(`serving.granting`) keep a gateway from forging the operator's intent. Read-only calls
that show more than inference clients need go through the same rule
(`may_read_fleet_state`). Pure: takes the verified peer certificate's PEM (the TLS stack
checked its chain), imports no grpc; the servicer asks it once per call.
"""

from __future__ import annotations

from edgewave_agent import errors
from edgewave_api import identities

# Roles that may command an agent.
CONTROL_ROLES = frozenset({identities.Role.OPERATOR})


def control_caller(
    peer_cert_pem: bytes | None, *, trust_domain: str, method: str
) -> identities.Identity:
    """The operator identity behind a call; refused for anyone else."""
    if not peer_cert_pem:
        raise errors.Unauthenticated(
            f"{method} changes the agent and needs a client certificate signed by the"
            " operator's CA: call the control port with mTLS"
        )
    try:
        identity = identities.of_client_certificate(peer_cert_pem, trust_domain=trust_domain)
    except identities.IdentityRefused as error:
        raise errors.PermissionDenied(f"{method} refused: {error}") from None
    if identity.role not in CONTROL_ROLES:
        raise errors.PermissionDenied(
            f"{method} refused: the caller is {identity}, and only the operator may command"
            " an agent"
        )
    return identity


def may_read_fleet_state(peer_cert_pem: bytes | None, *, trust_domain: str) -> bool:
    """Whether a read-only call may see the agent's full state (artifacts, disk, history)."""
    try:
        control_caller(peer_cert_pem, trust_domain=trust_domain, method="read")
    except errors.AgentError:
        return False
    return True
