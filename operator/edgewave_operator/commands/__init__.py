"""One module per `edgewave` command group; each exposes `register(app)`."""
