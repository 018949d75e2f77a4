"""Names the demo's steps share: namespaces, models, versions, and its error and output types."""

from __future__ import annotations

from collections.abc import Callable

from edgewave_api.errors import PermanentError

Say = Callable[[str], None]
"""Prints one line for the person watching."""

OPERATOR_NAMESPACE = "edgewave-system"
ROLLOUT_NAMESPACE = "default"
WEBHOOK_CONFIGURATION = "residency.edgewave.io"
GLOBAL_MODEL = "classifier"
EU_MODEL = "classifier-eu"
GLOBAL_ROLLOUT = "classifier-global"
EU_ROLLOUT = "classifier-eu"
FIRST_VERSION = "1.0.0"
UPGRADE_VERSION = "1.1.0"
POLL_SECONDS = 0.5


class DemoFailed(PermanentError):
    """A step of the demo did not reach its goal; the message says which and where to look."""
