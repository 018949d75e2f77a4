"""Data residency at admission, and the residency report.

`rules` is the pure decision code (named regions against residency rules, policies
against themselves); `objects` puts the API's models to those rules (pure); `reports`
builds the residency report from what agents hold (pure); `ownership` keeps a model name
to one ModelRollout (pure); `gathering` reads policies, agents and rollouts' claims from
the API server; `webhook` holds the kopf validating handlers and
`configure_admission`, which sets up kopf's HTTPS webhook server.
"""
