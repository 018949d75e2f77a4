"""Engines for rollouts: the operator's glue over `edgewave_compiler` (fetch, plan, build)."""
