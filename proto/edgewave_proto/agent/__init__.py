"""The agent API (operator <-> edge agent); generated code lives in the versioned package."""
