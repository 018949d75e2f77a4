"""The Edgewave API: pydantic models of each custom resource, the one schema source."""
