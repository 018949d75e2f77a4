"""The Edgewave operator: reconciles ModelRollouts into engines on edge agents."""
