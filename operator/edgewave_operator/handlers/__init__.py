"""kopf handlers and the loops they drive (the top layer; see the import-linter layers).

`registration` registers the handlers in its own kopf registry, run by the leader only:
EdgeAgents feed the inventory (`agents.inventory`), each ModelRollout gets a daemon
running a `rollouts.RolloutWorker` (gather -> `planning.reconciling.decide` -> write ->
act through `agents.executing`, engines from `compiling.engines`), and `policies` writes
ResidencyPolicy status. `runtime` builds what they share; `serving` holds what every
replica serves (`/healthz`, the admission webhook).
"""
