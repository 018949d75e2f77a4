"""What the CLI shows: rich tables, JSON and YAML made from the API models. Pure.

Each module turns data it is given (ModelRollouts, EdgeAgents, a dry run) into rows, a
document for `-o json|yaml`, and rich renderables; none reads the cluster or the clock
(the time is passed in), so every view is tested with plain values.
"""
