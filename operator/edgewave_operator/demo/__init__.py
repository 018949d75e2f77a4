"""`edgewave demo`: the whole product on one machine, one module per concern.

`models` makes the ONNX models, `manifests` renders the documentation's rollouts for
them, `fleet` runs the edge agents, `traffic` sends them requests (so health gates have
samples), `inference` asks one agent for an answer, `sessions` runs the whole flow and
`commands.demo` is the command line.
"""
