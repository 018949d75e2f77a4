"""KServe v2 / Open Inference Protocol; generated code lives in the versioned package."""
