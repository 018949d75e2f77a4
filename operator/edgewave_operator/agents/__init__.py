"""Reaching edge agents: the gRPC client (`client`, `errors` turns RpcError into domain
errors), the interface actions go through (`links`), the live fleet (`inventory`) and the
executor of the planner's actions (`executing`)."""
