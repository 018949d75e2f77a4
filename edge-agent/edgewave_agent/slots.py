"""Pure state machine of the versions an agent holds for each model.

Decides which version is active, which one a rollback returns to, what a removal may take
(one version, or the whole model), which versions stay loaded and what garbage collection
forgets and deletes: every version transition is a function here. No I/O and no clocks:
`serving` loads engines and persists the state this module computes. A failed activation
never changes what is active, so the previous version keeps serving.

A model's `history` is its activation order (active last, each version once); `held` lists
every version whose artifact the agent keeps, least recently activated first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from edgewave_agent import errors, owners

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_name(kind: str, value: str) -> str:
    """A model or version name as a request gives it; refused unless it matches NAME_PATTERN."""
    if not NAME_PATTERN.fullmatch(value):
        raise errors.InvalidRequest(
            f"{kind} {value[:140]!r} is not valid: use 1-128 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return value


@dataclass(frozen=True)
class VersionRef:
    version: str
    digest: str
    backend: str


@dataclass(frozen=True)
class ModelSlots:
    model: str
    history: tuple[VersionRef, ...] = ()
    held: tuple[VersionRef, ...] = ()
    failures: tuple[tuple[str, str], ...] = ()
    owner: owners.Owner | None = None
    """The rollout the model is served for (`owners`); None: none recorded."""

    @property
    def active(self) -> VersionRef | None:
        return self.history[-1] if self.history else None

    @property
    def previous(self) -> VersionRef | None:
        return self.history[-2] if len(self.history) > 1 else None

    def find(self, version: str) -> VersionRef | None:
        return next((ref for ref in self.held if ref.version == version), None)

    def failure(self, version: str) -> str | None:
        return dict(self.failures).get(version)


def _without(refs: Iterable[VersionRef], version: str) -> tuple[VersionRef, ...]:
    return tuple(ref for ref in refs if ref.version != version)


def check_version(slots: ModelSlots, ref: VersionRef) -> None:
    """Versions are immutable: the same version must name the same digest and backend."""
    known = slots.find(ref.version)
    if known is not None and known != ref:
        raise errors.VersionConflict(
            f"{slots.model}:{ref.version} is already held as {known.backend}"
            f" {known.digest[:12]}; publish a new version instead of changing this one"
        )


def is_active(slots: ModelSlots, ref: VersionRef) -> bool:
    return slots.active == ref


def activated(slots: ModelSlots, ref: VersionRef) -> ModelSlots:
    """`ref` serves now; the version that served before becomes the previous one."""
    check_version(slots, ref)
    return replace(
        slots,
        history=(*_without(slots.history, ref.version), ref),
        held=(*_without(slots.held, ref.version), ref),
        failures=tuple((v, r) for v, r in slots.failures if v != ref.version),
    )


def activation_failed(slots: ModelSlots, ref: VersionRef, *, reason: str) -> ModelSlots:
    """Record a failed activation; the active version does not change."""
    check_version(slots, ref)
    held = slots.held if slots.find(ref.version) else (ref, *slots.held)
    failures = (*((v, r) for v, r in slots.failures if v != ref.version), (ref.version, reason))
    return replace(slots, held=held, failures=failures)


def deactivated(slots: ModelSlots) -> ModelSlots:
    """No version serves (the only one failed to load after a restart); all stay held."""
    return replace(slots, history=())


def restore_failed(slots: ModelSlots, ref: VersionRef, *, reason: str) -> ModelSlots:
    """The active `ref` did not load after a restart: its previous version serves, if any."""
    failed = activation_failed(slots, ref, reason=reason)
    return deactivated(failed) if failed.previous is None else rolled_back(failed)


def rolled_back(slots: ModelSlots) -> ModelSlots:
    """The previous version serves again; the rolled-back one stays held, out of history."""
    if slots.previous is None:
        raise errors.NothingToRollBack(
            f"{slots.model} has no previous version to roll back to: activate a version instead"
        )
    return replace(slots, history=slots.history[:-1])


def removed(
    slots: ModelSlots, *, version: str | None = None, digest: str | None = None
) -> tuple[ModelSlots, tuple[VersionRef, ...]]:
    """Forget the versions matching `version` or `digest`; never the active or previous."""
    targets = tuple(
        ref
        for ref in slots.held
        if (version is not None and ref.version == version)
        or (digest is not None and ref.digest == digest)
    )
    if not targets:
        named = f"version {version}" if version is not None else f"digest {digest}"
        raise errors.UnknownModel(f"{slots.model} holds no {named}: Describe lists what it holds")
    for ref in targets:
        if ref in (slots.active, slots.previous):
            role = "active" if ref == slots.active else "previous"
            raise errors.RemoveRefused(
                f"{slots.model}:{ref.version} is the {role} version and cannot be removed:"
                " activate another version (or roll back) first"
            )
    versions = {ref.version for ref in targets}
    kept = replace(
        slots,
        history=tuple(r for r in slots.history if r.version not in versions),
        held=tuple(r for r in slots.held if r.version not in versions),
        failures=tuple((v, r) for v, r in slots.failures if v not in versions),
    )
    return kept, targets


def without_model(
    models: Mapping[str, ModelSlots], model: str
) -> tuple[dict[str, ModelSlots], tuple[VersionRef, ...]]:
    """Forget every version of `model` (e.g. a residency eviction), active and previous too.

    Returns the other models and the versions that went.
    """
    before = models.get(model)
    if before is None:
        raise errors.UnknownModel(f"no model {model} on this agent: nothing to remove")
    return {name: s for name, s in models.items() if name != model}, before.held


def kept_loaded(slots: ModelSlots, *, keep_previous: bool) -> frozenset[str]:
    """The versions that stay loaded: the active one, and the previous one if asked."""
    keep = {slots.active.version} if slots.active else set()
    if keep_previous and slots.previous:
        keep.add(slots.previous.version)
    return frozenset(keep)


@dataclass(frozen=True)
class GcPlan:
    """What garbage collection forgets (per model) and deletes (artifacts)."""

    forget: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    delete: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.delete and not any(self.forget.values())


def protected_digests(models: Mapping[str, ModelSlots]) -> frozenset[str]:
    return frozenset(
        ref.digest
        for slots in models.values()
        for ref in (slots.active, slots.previous)
        if ref is not None
    )


def plan_gc(
    models: Mapping[str, ModelSlots],
    sizes: Mapping[str, int],
    *,
    keep_versions: int,
    quota_bytes: int,
    needed_bytes: int = 0,
    pinned: frozenset[str] = frozenset(),
) -> GcPlan:
    """Keep the last `keep_versions` versions per model, then free space down to the quota.

    `sizes` maps every stored artifact to its size. Artifacts no kept version refers to are
    deleted, except `pinned` ones (e.g. pushed moments ago for an activation still to
    come); active and previous versions are never touched. Under quota pressure the oldest
    held versions go next, oldest first across models.
    """
    protected = protected_digests(models) | pinned
    forget: dict[str, list[VersionRef]] = {}
    for name, model_slots in models.items():
        keep = {r.version for r in (model_slots.active, model_slots.previous) if r is not None}
        for ref in reversed(model_slots.held):
            if len(keep) >= keep_versions:
                break
            keep.add(ref.version)
        forget[name] = [ref for ref in model_slots.held if ref.version not in keep]

    def referenced() -> set[str]:
        return {
            ref.digest
            for name, model_slots in models.items()
            for ref in model_slots.held
            if ref not in forget[name]
        }

    delete = {d for d in sizes if d not in referenced() and d not in protected}
    used = sum(sizes.values()) - sum(sizes[d] for d in delete)
    if used + needed_bytes > quota_bytes:
        oldest_first = sorted(
            (
                (index, name, ref)
                for name, model_slots in models.items()
                for index, ref in enumerate(model_slots.held)
                if ref.digest not in protected and ref not in forget[name]
            ),
            key=lambda item: (item[0], item[1]),
        )
        for _, name, ref in oldest_first:
            if used + needed_bytes <= quota_bytes:
                break
            forget[name].append(ref)
            if ref.digest in sizes and ref.digest not in delete | referenced():
                delete.add(ref.digest)
                used -= sizes[ref.digest]
    return GcPlan(
        forget={n: tuple(r.version for r in refs) for n, refs in forget.items() if refs},
        delete=frozenset(delete),
    )


def apply_gc(
    models: Mapping[str, ModelSlots], plan: GcPlan, *, busy: frozenset[str]
) -> dict[str, ModelSlots]:
    """The models once `plan` forgot its versions, except of `busy` models (being changed)."""
    return {
        name: forget_versions(s, plan.forget[name])
        if name in plan.forget and name not in busy
        else s
        for name, s in models.items()
    }


def forget_versions(slots: ModelSlots, versions: Iterable[str]) -> ModelSlots:
    drop = set(versions)
    return replace(
        slots,
        history=tuple(r for r in slots.history if r.version not in drop),
        held=tuple(r for r in slots.held if r.version not in drop),
        failures=tuple((v, r) for v, r in slots.failures if v not in drop),
    )


# Serialization of the whole state, for `serving` to persist (pure: dicts in, dicts out).
STATE_FORMAT = 1


def _ref_dict(ref: VersionRef) -> dict[str, str]:
    return {"version": ref.version, "digest": ref.digest, "backend": ref.backend}


def _ref(data: Mapping[str, Any]) -> VersionRef:
    return VersionRef(
        version=str(data["version"]), digest=str(data["digest"]), backend=str(data["backend"])
    )


def to_document(models: Mapping[str, ModelSlots]) -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "models": {
            name: {
                "history": [r.version for r in slots.history],
                "held": [_ref_dict(r) for r in slots.held],
                "failures": dict(slots.failures),
                **_owner_dict(slots.owner),
            }
            for name, slots in sorted(models.items())
        },
    }


def from_document(document: Mapping[str, Any]) -> dict[str, ModelSlots]:
    if document.get("format") != STATE_FORMAT:
        raise errors.AgentError(
            f"agent state has format {document.get('format')!r}, expected {STATE_FORMAT}:"
            " this agent version cannot read it"
        )
    models: dict[str, ModelSlots] = {}
    for name, data in document.get("models", {}).items():
        held = tuple(_ref(r) for r in data.get("held", []))
        by_version = {r.version: r for r in held}
        history = tuple(by_version[v] for v in data.get("history", []) if v in by_version)
        failures = tuple((str(v), str(r)) for v, r in data.get("failures", {}).items())
        models[name] = ModelSlots(
            model=name, history=history, held=held, failures=failures, owner=_owner(data)
        )
    return models


def _owner_dict(owner: owners.Owner | None) -> dict[str, Any]:
    if owner is None:
        return {}
    return {"owner": {"namespace": owner.namespace, "name": owner.name, "uid": owner.uid}}


def _owner(data: Mapping[str, Any]) -> owners.Owner | None:
    """The recorded owner (state written before owners existed has none)."""
    found = data.get("owner")
    if not isinstance(found, Mapping):
        return None
    return owners.Owner(
        namespace=str(found.get("namespace", "")),
        name=str(found.get("name", "")),
        uid=str(found.get("uid", "")),
    )
