"""The Edgewave edge gateway: agents dial out to it; the operator reaches them through it."""
