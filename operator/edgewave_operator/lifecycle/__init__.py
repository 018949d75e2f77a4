"""What a person does to a rollout (pause, resume; promote, abort, retry and undo to come).

`actions` decides (pure: a rollout in, a change or a one-line refusal out); `applying`
reads the rollout, asks `actions`, and writes the change once. The CLI and the dashboard
both call `applying.apply`, so a rule such as "resume only a paused rollout" lives in one
place.
"""
