"""Generated code for `edgewave.gateway.v1`; regenerate with `make generate`, never edit."""
