"""Generated protobuf and gRPC code; regenerate with `make generate`, never edit."""
