"""Observability shared by the operator and the edge agent: traces, log context, metrics plumbing.

One package so that both sides name things the same way: the operator's spans and the agent's
spans join one trace per rollout generation (`tracing`, `spans`, `interceptors`), every log line
carries the rollout, wave, agent and trace id (`scope`, `logs`), and each component's Prometheus
registry is described (`catalogs`) and served (`exposition`) by the same code.

Call sites import modules, not names: `from edgewave_api.telemetry import spans`.
"""
