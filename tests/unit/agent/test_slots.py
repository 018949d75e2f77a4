"""The pure state machine of versions per model: activate, fail, roll back, remove, GC."""

from __future__ import annotations

import pytest

from edgewave_agent import errors, slots
from edgewave_agent.slots import ModelSlots, VersionRef


def ref(version: str, digest: str | None = None) -> VersionRef:
    return VersionRef(version=version, digest=digest or version * 64, backend="onnxruntime")


A, B, C, D = ref("a"), ref("b"), ref("c"), ref("d")


def chain(*refs: VersionRef, model: str = "m") -> ModelSlots:
    state = ModelSlots(model=model)
    for item in refs:
        state = slots.activated(state, item)
    return state


@pytest.mark.parametrize(
    ("refs", "active", "previous"),
    [
        ((), None, None),
        ((A,), A, None),
        ((A, B), B, A),
        ((A, B, C), C, B),
        ((A, B, A), A, B),  # re-activating an older version moves it to the top
        ((A, A), A, None),
    ],
)
def test_activation_order(
    refs: tuple[VersionRef, ...], active: VersionRef | None, previous: VersionRef | None
) -> None:
    state = chain(*refs)
    assert (state.active, state.previous) == (active, previous)


def test_failed_activation_keeps_the_active_version() -> None:
    state = slots.activation_failed(chain(A, B), C, reason="probe failed")
    assert (state.active, state.previous) == (B, A)
    assert state.failure("c") == "probe failed"
    assert state.find("c") == C
    # A later successful activation clears the failure.
    assert slots.activated(state, C).failure("c") is None


def test_versions_are_immutable() -> None:
    with pytest.raises(errors.VersionConflict, match="publish a new version"):
        slots.activated(chain(A), ref("a", "f" * 64))


@pytest.mark.parametrize(
    ("refs", "active", "previous"),
    [((A, B), A, None), ((A, B, C), B, A)],
)
def test_rollback(
    refs: tuple[VersionRef, ...], active: VersionRef, previous: VersionRef | None
) -> None:
    state = slots.rolled_back(chain(*refs))
    assert (state.active, state.previous) == (active, previous)
    assert refs[-1] in state.held  # the rolled-back version stays on disk


@pytest.mark.parametrize("refs", [(), (A,)])
def test_rollback_without_previous_is_refused(refs: tuple[VersionRef, ...]) -> None:
    with pytest.raises(errors.NothingToRollBack):
        slots.rolled_back(chain(*refs))


def test_remove_refuses_active_and_previous() -> None:
    state = chain(A, B, C)
    for version in ("c", "b"):
        with pytest.raises(errors.RemoveRefused):
            slots.removed(state, version=version)
    kept, removed = slots.removed(state, version="a")
    assert removed == (A,) and kept.find("a") is None
    kept, removed = slots.removed(state, digest=A.digest)
    assert removed == (A,)
    with pytest.raises(errors.UnknownModel):
        slots.removed(state, version="zzz")


def test_gc_keeps_the_last_versions_and_never_active_or_previous() -> None:
    models = {"m": chain(A, B, C, D)}
    sizes = {r.digest: 10 for r in (A, B, C, D)}
    plan = slots.plan_gc(models, sizes, keep_versions=3, quota_bytes=1000)
    assert plan.forget == {"m": ("a",)} and plan.delete == {A.digest}


def test_gc_frees_space_under_quota_pressure_oldest_first() -> None:
    models = {"m": slots.rolled_back(chain(A, B, C, D))}  # active C, previous B; D rolled back
    sizes = {r.digest: 10 for r in (A, B, C, D)} | {"e" * 64: 10}
    plan = slots.plan_gc(models, sizes, keep_versions=4, quota_bytes=25, needed_bytes=0)
    # Unreferenced first, then the oldest held; C and B are protected whatever the quota.
    assert plan.delete == {"e" * 64, A.digest, D.digest}
    assert set(plan.forget["m"]) == {"a", "d"}
    impossible = slots.plan_gc(models, sizes, keep_versions=4, quota_bytes=0)
    assert B.digest not in impossible.delete and C.digest not in impossible.delete


def test_gc_spares_pinned_and_shared_artifacts() -> None:
    shared = ref("x", A.digest)
    models = {"m": chain(A, B, C), "n": chain(shared, model="n")}
    sizes = {r.digest: 10 for r in (A, B, C)} | {"e" * 64: 10}
    plan = slots.plan_gc(
        models, sizes, keep_versions=2, quota_bytes=0, pinned=frozenset({"e" * 64})
    )
    assert plan.forget.get("m") == ("a",)
    assert A.digest not in plan.delete  # still the active version of model n
    assert "e" * 64 not in plan.delete


def test_gc_plan_is_applied_except_to_models_being_changed() -> None:
    models = {"m": chain(A, B, C, D), "n": chain(A, B, C, D, model="n")}
    plan = slots.GcPlan(forget={"m": ("a",), "n": ("a", "b")}, delete=frozenset())
    kept = slots.apply_gc(models, plan, busy=frozenset({"n"}))
    assert kept["m"].held == (B, C, D) and kept["m"].find("a") is None
    assert kept["n"] == models["n"]  # being changed: keeps every version


def test_removing_a_whole_model_takes_every_version() -> None:
    models = {"m": slots.activation_failed(chain(A, B), C, reason="bad"), "n": chain(D, model="n")}
    rest, gone = slots.without_model(models, "m")
    assert rest == {"n": models["n"]}
    assert set(gone) == {A, B, C}  # active and previous included, unlike `removed`
    with pytest.raises(errors.UnknownModel, match="no model x on this agent"):
        slots.without_model(models, "x")


@pytest.mark.parametrize(
    ("state", "keep_previous", "loaded"),
    [
        (ModelSlots(model="m"), True, frozenset()),
        (chain(A), True, {"a"}),
        (chain(A, B, C), True, {"c", "b"}),
        (chain(A, B, C), False, {"c"}),
        (slots.rolled_back(chain(A, B, C)), True, {"b", "a"}),
    ],
)
def test_kept_loaded(state: ModelSlots, keep_previous: bool, loaded: frozenset[str]) -> None:
    assert slots.kept_loaded(state, keep_previous=keep_previous) == loaded


@pytest.mark.parametrize(
    ("state", "failed", "active"),
    [
        (chain(A, B), B, A),  # falls back to the previous version
        (chain(A), A, None),  # nothing to fall back to: no version serves
    ],
)
def test_restore_failure_falls_back(
    state: ModelSlots, failed: VersionRef, active: VersionRef | None
) -> None:
    after = slots.restore_failed(state, failed, reason="gone")
    assert after.active == active
    assert after.failure(failed.version) == "gone" and after.find(failed.version) == failed


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 129, "../etc", "a/b"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(errors.InvalidRequest, match="is not valid: use 1-128 letters"):
        slots.validate_name("model", name)


@pytest.mark.parametrize("name", ["a", "A.b_c-1", "x" * 128])
def test_good_names_pass(name: str) -> None:
    assert slots.validate_name("version", name) == name


def test_state_round_trips_through_its_document() -> None:
    models = {"m": slots.activation_failed(chain(A, B), C, reason="bad"), "n": chain(D, model="n")}
    assert slots.from_document(slots.to_document(models)) == models


def test_unknown_state_format_is_refused() -> None:
    with pytest.raises(errors.AgentError, match="format"):
        slots.from_document({"format": 99})
