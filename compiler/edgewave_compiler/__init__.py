"""ONNX model intake and engine builds per target GPU class, cached by content."""
