"""Pure decision code of the operator: targets, waves, gates, rollbacks, residency.

Nothing in this package performs I/O or reads the clock: every input (the rollout's
intent, the fleet as last observed, the rollout's remembered progress, the time) is a
parameter, and every output is data (the next actions, the new progress, the events to
record). A restarted operator that feeds the same inputs gets the same next step, which is
what makes rollouts resumable without pushing twice or skipping a wave. import-linter
forbids kopf, kubernetes_asyncio, grpc and the runtimes here.
"""
