"""The Edgewave edge agent: stores, verifies, activates and serves engines."""
