"""kopf handlers and the loops they drive (the top layer; see the import-linter layers).

`registration` registers the handlers in its own kopf registry, run by the leader only:
EdgeAgents feed the inventory (`agents.inventory`), each ModelRollout gets a daemon
running a `rollouts.RolloutWorker` (`gathering` -> `planning.reconciling.decide` -> write
-> `kube.recording` -> `agents.acting`, engines from `compiling.engines`; `daemons` holds
its kopf daemon glue: sleeping, waking, cancelling superseded work), and `policies` writes
ResidencyPolicy status. `runtime` builds what they share; `serving` holds what every
replica serves (`/healthz`, the admission webhook).
"""
