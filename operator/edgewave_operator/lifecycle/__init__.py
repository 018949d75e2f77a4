"""What people do to a running rollout (pause, resume, promote, abort, retry, undo,
restart), shared by the `edgewave rollout` commands and the dashboard.

`actions` is the table (pure: a button label per request, and whether it is offered now,
by the operator's own rule `planning.lifecycle.refusal`); `requesting.send` is the one way
any client acts: it writes the `edgewave.io/request` annotation and waits for the answer
in `status.control` (never a spec change); `applying.apply` is what the dashboard's
buttons call, `send` with a short wait and a queued request said in one line.
"""
