"""Kubernetes I/O of the operator, and nothing else: clients, status patches, Events,
Secrets and the leader Lease. Every call takes the API client as an argument (no global
client), and every `ApiException` becomes a classified Edgewave error in `failures`.
"""
