"""Restoring after a restart: load every active model before the agent reports ready.

Exists because an agent that restarts must serve what it served before, or fall back
safely: an active version that no longer loads is recorded as failed and its previous
version serves (or none, if it has none), as `slots` decides. The problems met are
returned for the caller to report; the agent is ready afterwards either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edgewave_agent import errors, slots
from edgewave_agent.serving.ledger import Ledger
from edgewave_agent.serving.loaded import LoadedVersions
from edgewave_agent.serving.loading import Loader

log = logging.getLogger(__name__)


def restore(
    *,
    ledger: Ledger,
    loaded: LoadedVersions,
    loader: Loader,
    report: Callable[[slots.ModelSlots], None],
) -> list[str]:
    """Load the persisted state and every active model (and its previous one)."""
    problems: list[str] = []
    ledger.load()
    for name, model_slots in sorted(ledger.snapshot().items()):
        current = model_slots
        while current.active is not None:
            ref = current.active
            try:
                loaded.put(name, loader.prepare(name, ref))
                break
            except errors.AgentError as error:
                problems.append(f"{name}:{ref.version} did not load after restart: {error}")
                current = slots.restore_failed(current, ref, reason=str(error))
        if current != model_slots:
            ledger.commit(name, current)
        loader.load_previous(name, current)
        report(current)
    for problem in problems:
        log.warning("%s", problem)
    return problems
