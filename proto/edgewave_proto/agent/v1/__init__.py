"""Generated code for `edgewave.agent.v1`; regenerate with `make generate`, never edit."""
