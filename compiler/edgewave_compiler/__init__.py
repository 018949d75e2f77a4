"""ONNX model intake and engine builds per target GPU class, built once, cached by content.

Modules, from pure decisions to effects:

- `keys` (pure): `BuildKey` (alias `BuildSpec`), backends, precisions, shape profiles.
- `planning` (pure): agents' platforms -> one `BuildKey` per agent, deduplicated builds,
  central or on-agent build location.
- `intake`: fetch by URI, sha256 before parsing, checker, shape inference, profile checks.
- `precisions`: FP16/BF16 graph conversion and the INT8 (Q/DQ) check for typed builders.
- `backends`: TensorRT-RTX, TensorRT and ONNX Runtime behind one `EngineBuilder` interface.
- `building`: one build in this process; `worker`: the same in a child process.
- `cache`: the content-addressed engine store (locks, metadata, LRU, rollout pins).
- `compiling`: `Compiler.ensure_engine`, the operator's asyncio entry point.
- `onagent`: `build_on_agent`, the agent's entry point for builds no central builder serves.
- `samples`: tiny generated ONNX models for examples, benchmarks and tests.
"""
