"""The operator's grants: the one gate every activate, rollback, remove and build passes.

Exists so a call changes the agent only with a grant the operator signed for exactly that
call, for this agent, still valid, and newer than every grant accepted before for the
model (`edgewave_api.grants` decides; `signing` verifies). When the request also names
its owner, that must be the grant's (INVALID_ARGUMENT otherwise), checked before the
sequence counts, so a relayed request with a changed owner spends nothing. The accepted sequence is
persisted with the agent's other state (`ledger`) before the call goes on, under the
serving lock, so two calls cannot both pass with one sequence and a restart forgets
nothing. Blocking; called from worker threads.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ed25519

from edgewave_agent import errors, owners
from edgewave_agent.serving.ledger import Ledger
from edgewave_api import grants, signing
from edgewave_api.telemetry import spans


class Gate:
    def __init__(
        self,
        *,
        public_key: ed25519.Ed25519PublicKey,
        ledger: Ledger,
        clock: Callable[[], float],
    ) -> None:
        self._public_key = public_key
        self._ledger = ledger
        self._clock = clock

    def admit(
        self,
        *,
        payload: bytes,
        signature: bytes,
        call: grants.Call,
        requested_owner: owners.Owner | None = None,
    ) -> grants.Grant:
        """The grant that permits `call`; SignatureInvalid or GrantRefused otherwise, and
        InvalidRequest when `requested_owner` (the request's own owner field) is not the
        grant's.

        `call.agent` must be this agent's own name (from its configuration).
        """
        try:
            with spans.verify(digest=call.digest):
                grant = signing.open_grant(self._public_key, payload=payload, signature=signature)
        except signing.SignatureRejected as error:
            raise errors.SignatureInvalid(f"{call.action} refused: {error}") from None
        except grants.GrantRefused as error:
            raise errors.GrantRefused(f"{call.action} refused: {error}") from None
        if requested_owner is not None:
            try:
                grants.check_owner(
                    grant,
                    namespace=requested_owner.namespace,
                    name=requested_owner.name,
                    uid=requested_owner.uid,
                )
            except grants.OwnerMismatch as error:
                raise errors.InvalidRequest(f"{call.action} refused: {error}") from None
        with self._ledger.lock:
            highest = self._ledger.sequence(call.model)
            try:
                grants.check(
                    grant,
                    call=call,
                    now_ms=int(self._clock() * 1000),
                    highest_sequence=highest,
                )
            except grants.GrantStale as error:
                raise errors.GrantRefused(
                    f"{call.action} refused: {error}", highest_sequence=error.highest
                ) from None
            except grants.GrantRefused as error:
                raise errors.GrantRefused(f"{call.action} refused: {error}") from None
            if grant.sequenced:
                self._ledger.accept_sequence(call.model, grant.sequence)
        return grant
