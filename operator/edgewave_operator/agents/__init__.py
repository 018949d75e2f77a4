"""The operator's gRPC client to edge agents; `errors` turns RpcError into domain errors."""
