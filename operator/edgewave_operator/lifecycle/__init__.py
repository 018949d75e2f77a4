"""What people do to a running rollout (pause, resume, promote, abort, retry, undo,
restart), shared by the `edgewave rollout` commands and the dashboard."""
