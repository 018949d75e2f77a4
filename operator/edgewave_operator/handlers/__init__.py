"""kopf handlers and the runtime pieces they drive.

Handlers follow parse -> gather -> plan -> write status -> act: `agents` keeps the fleet
in a kopf index and feeds the `inventory` (Describe on a timer, economical status
writes); `rollouts` runs one daemon per ModelRollout that plans with
`edgewave_operator.planning` and acts through `execution` (push, activate, observe,
revert, evict) and `compiling`; `policies` writes ResidencyPolicy status. Importing
`registration` registers them in its own kopf registry, run by the leader only;
`serving` holds what every replica serves (`/healthz`, the admission webhook).
"""
