"""The next step of a rollout, as a pure function of intent, fleet, progress and time.

`next_step` is called after every change the operator sees (a spec edit, an agent's new
answer, a finished batch, an elapsed wait). It returns the progress to remember, the
actions to take now, the events that mark transitions, and when to look again. Because
"what is done" is read from the agents themselves (which version each one serves) and
"where we are" from the persisted progress, the same inputs after a crash give the same
step: no wave is skipped and an agent already serving the version is never updated again.

Rules:
- waves run in spec order; a wave starts after the previous one passed plus the pause;
- within a wave, at most `max_unavailable` agents are updated per batch, by name;
- `paused` stops before the next batch (a batch in flight completes);
- an offline agent is waited for, then counted against `max_failed` (`offline`);
- failed activations and agents offline past the unreachable timeout beyond `max_failed`,
  a failed health gate, or agents the operator has not heard from by the progress
  deadline fail the wave; with `auto_rollback` every agent of every started wave that
  serves the new version is reverted;
- a new revision (model version, digest or build) restarts the plan and supersedes;
- targets of passed waves that lack the version (they were offline, joined later, or
  drifted) are brought to it by `converging`, not here: no wave runs again for them.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from edgewave_operator.planning import gates, offline, progress, rollbacks, targeting, views

Phase = progress.Phase
WaveState = progress.WaveState


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Reason(StrEnum):
    """Reasons of events and failures decided here."""

    STARTED = "RolloutStarted"
    SUPERSEDED = "Superseded"
    WAVE_STARTED = "WaveStarted"
    WAVE_PASSED = "WavePassed"
    WAVE_FAILED = "WaveFailed"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    SUCCEEDED = "RolloutSucceeded"
    ACTIVATION_FAILED = "ActivationFailed"
    NO_ENGINE = "NoEngine"
    DEADLINE = "ProgressDeadlineExceeded"
    ROLLBACK_STARTED = "RollbackStarted"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_INCOMPLETE = "RollbackIncomplete"
    FAILED = "RolloutFailed"
    COMPILE_FAILED = "CompileFailed"


@dataclass(frozen=True, slots=True)
class Intent:
    """What the rollout's spec asks for, resolved to plain values."""

    model: str
    version: str
    revision: str
    gate: gates.GateSpec = field(default_factory=gates.GateSpec)
    pause: datetime.timedelta = datetime.timedelta(0)
    auto_rollback: bool = True
    paused: bool = False
    progress_deadline: datetime.timedelta = datetime.timedelta(seconds=600)
    offline: offline.Rule = field(default_factory=offline.Rule)


@dataclass(frozen=True, slots=True)
class Update:
    """Put `engine` on `agent` (Stat, push what is missing) and activate `version`."""

    agent: str
    model: str
    version: str
    engine: views.EngineRef
    repair: bool = False


@dataclass(frozen=True, slots=True)
class UpdateBatch:
    wave: str
    updates: tuple[Update, ...]


@dataclass(frozen=True, slots=True)
class Observe:
    """Watch the health of `agents` (serving the new version) until `until`."""

    wave: str
    agents: tuple[str, ...]
    until: datetime.datetime


@dataclass(frozen=True, slots=True)
class RevertBatch:
    reverts: tuple[rollbacks.Revert, ...]


Action = UpdateBatch | Observe | RevertBatch


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Observation:
    """Health gathered for one wave's gate (the result of an `Observe`)."""

    wave: str
    samples: tuple[gates.HealthSample, ...]


@dataclass(frozen=True, slots=True)
class Step:
    progress: progress.Progress
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    wake_at: datetime.datetime | None = None
    verdict: gates.Verdict | None = None


def is_updated(
    agent: views.AgentView, *, model: str, version: str, engine: views.EngineRef | None
) -> bool:
    """`agent` serves `version` of `model` (with the expected engine, when it says)."""
    active = agent.active(model)
    if active is None or active.version != version:
        return False
    return engine is None or not active.digest or active.digest == engine.digest


def failed_on_agent(agent: views.AgentView, *, model: str, version: str) -> bool:
    """The agent reports its activation of `version` failed (and it serves another)."""
    return any(
        held.version == version and held.state is views.ModelState.FAILED
        for held in agent.versions_of(model)
    )


def record_failures(
    current: progress.Progress, *, wave: str, failures: Mapping[str, str]
) -> progress.Progress:
    """Remember agents whose activation failed in `wave`, and why (name -> reason)."""
    if not failures:
        return current
    record = current.wave(wave)
    failed = tuple(sorted(set(record.failed_agents) | set(failures)))
    reasons = tuple(sorted({**dict(record.failure_reasons), **failures}.items()))
    return current.with_wave(replace(record, failed_agents=failed, failure_reasons=reasons))


MAX_REASONS = 3
"""Agents whose own words a failure message quotes (the rest are named only)."""
MAX_REASON_CHARS = 600


def _reasons(record: progress.WaveProgress, failed: set[str]) -> str:
    """The first failed agents' own reasons, as `; agent: why` (empty when none said why)."""
    said = [(agent, why) for agent, why in record.failure_reasons if agent in failed and why]
    return "".join(f"; {agent}: {why[:MAX_REASON_CHARS]}" for agent, why in said[:MAX_REASONS])


@dataclass
class _Planner:
    intent: Intent
    waves: Sequence[targeting.Wave]
    engines: Mapping[str, views.EngineRef]
    now: datetime.datetime
    current: progress.Progress
    events: list[Event] = field(default_factory=list)

    def normal(self, reason: str, message: str) -> None:
        self.events.append(Event(type=EventType.NORMAL, reason=reason, message=message))

    def warning(self, reason: str, message: str) -> None:
        self.events.append(Event(type=EventType.WARNING, reason=reason, message=message))

    def step(
        self,
        *,
        actions: tuple[Action, ...] = (),
        wake_at: datetime.datetime | None = None,
        verdict: gates.Verdict | None = None,
    ) -> Step:
        return Step(
            progress=self.current,
            actions=actions,
            events=tuple(self.events),
            wake_at=wake_at,
            verdict=verdict,
        )

    def set_phase(self, phase: progress.Phase) -> None:
        if self.current.phase is not phase:
            finished = self.now if phase.terminal or phase is Phase.SUCCEEDED else None
            self.current = replace(self.current, phase=phase, finished_at=finished)

    def updated(self, agent: views.AgentView) -> bool:
        return is_updated(
            agent,
            model=self.intent.model,
            version=self.intent.version,
            engine=self.engines.get(agent.name),
        )

    # -- transitions -------------------------------------------------------------------

    def restart_if_new_revision(self) -> None:
        old = self.current
        if old.revision == self.intent.revision:
            return
        previous = old.version if old.phase is Phase.SUCCEEDED else old.previous_version
        if previous == self.intent.version:
            previous = old.previous_version
        if old.revision and old.phase.active:
            self.normal(
                Reason.SUPERSEDED,
                f"version {self.intent.version} supersedes the rollout of {old.version} "
                f"(was {old.phase})",
            )
        self.normal(
            Reason.STARTED,
            f"rolling out {self.intent.model} {self.intent.version}"
            + (f" (previous version {previous})" if previous else ""),
        )
        self.current = progress.Progress(
            revision=self.intent.revision,
            version=self.intent.version,
            previous_version=previous,
            phase=Phase.PROGRESSING,
            started_at=self.now,
        )

    def fail(
        self,
        wave: progress.WaveProgress,
        *,
        reason: str,
        message: str,
        numbers: Mapping[str, float] | None = None,
    ) -> Step:
        self.current = self.current.with_wave(
            replace(wave, state=WaveState.FAILED, finished_at=self.now, message=message)
        )
        self.current = replace(
            self.current,
            failure=progress.Failure(
                reason=reason,
                message=f"wave {wave.name}: {message}",
                at=self.now,
                wave=wave.name,
                numbers=dict(numbers or {}),
            ),
        )
        self.warning(Reason.WAVE_FAILED, f"wave {wave.name} failed: {message}")
        if not self.intent.auto_rollback:
            self.set_phase(Phase.FAILED)
            self.warning(
                Reason.FAILED,
                f"rollout of {self.intent.version} stopped; autoRollback is off, agents "
                "keep what they serve",
            )
            return self.step()
        self.set_phase(Phase.ROLLING_BACK)
        self.warning(
            Reason.ROLLBACK_STARTED,
            f"rolling back {self.intent.version} on every agent this rollout updated",
        )
        return self.roll_back()

    def roll_back(self) -> Step:
        started = [
            wave
            for wave in self.waves
            if self.current.wave(wave.name).state is not WaveState.PENDING
        ]
        agents = [agent for wave in started for agent in wave.agents]
        reverts = rollbacks.plan_reverts(
            model=self.intent.model,
            version=self.intent.version,
            previous_version=self.current.previous_version,
            agents=agents,
        )
        by_name = {agent.name: agent for agent in agents}
        ready = tuple(r for r in reverts if by_name[r.agent].reachable)
        if ready:
            return self.step(actions=(RevertBatch(reverts=ready),))
        failure = self.current.failure
        started_at = failure.at if failure else self.now
        deadline = started_at + self.intent.progress_deadline
        if reverts and self.now < deadline:
            return self.step(wake_at=deadline)
        self.set_phase(Phase.ROLLED_BACK)
        if reverts:
            names = ", ".join(r.agent for r in reverts)
            self.warning(
                Reason.ROLLBACK_INCOMPLETE,
                f"agents {names} stayed unreachable and still serve {self.intent.version}",
            )
        else:
            target = self.current.previous_version or "their previous versions"
            self.warning(
                Reason.ROLLED_BACK,
                f"rolled back {self.intent.version} to {target}",
            )
        return self.step()

    # -- waves -------------------------------------------------------------------------

    def run(self, observation: Observation | None) -> Step:
        self.restart_if_new_revision()
        self.current = self.current.aligned([wave.name for wave in self.waves])
        if self.current.phase is Phase.ROLLING_BACK:
            return self.roll_back()
        if self.current.phase.terminal:
            return self.step()
        passed_at: datetime.datetime | None = None
        for wave in self.waves:
            outcome = self.advance_wave(wave, passed_at=passed_at, observation=observation)
            if isinstance(outcome, Step):
                return outcome
            passed_at = outcome.finished_at
        return self.succeed()

    def advance_wave(
        self,
        wave: targeting.Wave,
        *,
        passed_at: datetime.datetime | None,
        observation: Observation | None,
    ) -> progress.WaveProgress | Step:
        """Move `wave` as far as it can go now: its passed record, or the step to take."""
        record = self.current.wave(wave.name)
        if record.state is WaveState.PENDING:
            started = self.start_wave(wave, passed_at)
            if isinstance(started, Step):
                return started
            record = started
        if record.state is WaveState.PROGRESSING:
            progressed = self.progress_wave(wave, record)
            if isinstance(progressed, Step):
                return progressed
            record = progressed
        if record.state is WaveState.VERIFYING:
            return self.verify_wave(wave, record=record, observation=observation)
        if record.state is WaveState.FAILED:
            # Only reachable if a failure was persisted without its phase.
            return self.fail(record, reason=Reason.FAILED, message=record.message)
        return record

    def start_wave(
        self, wave: targeting.Wave, passed_at: datetime.datetime | None
    ) -> progress.WaveProgress | Step:
        record = self.current.wave(wave.name)
        if not wave.agents:
            record = replace(
                record,
                state=WaveState.PASSED,
                started_at=self.now,
                finished_at=passed_at or self.now,
                message="no agents in this wave",
            )
            self.current = self.current.with_wave(record)
            return record
        if passed_at is not None:
            resume_at = passed_at + self.intent.pause
            if self.now < resume_at:
                self.set_phase(Phase.PROGRESSING)
                return self.step(wake_at=resume_at)
        if self.intent.paused:
            return self.pause()
        self.resume()
        record = replace(record, state=WaveState.PROGRESSING, started_at=self.now)
        self.current = self.current.with_wave(record)
        regions = sorted({agent.region for agent in wave.agents})
        self.normal(
            Reason.WAVE_STARTED,
            f"wave {wave.name} started: {len(wave.agents)} agents"
            + (f" in {', '.join(regions)}" if regions else "")
            + f", maxUnavailable {wave.max_unavailable}, maxFailed {wave.max_failed}",
        )
        return record

    def pause(self) -> Step:
        if self.current.phase is not Phase.PAUSED:
            self.normal(Reason.PAUSED, "paused before the next batch")
        self.set_phase(Phase.PAUSED)
        return self.step()

    def resume(self) -> None:
        if self.current.phase is Phase.PAUSED:
            self.normal(Reason.RESUMED, "resumed")
        self.set_phase(Phase.PROGRESSING)

    def progress_wave(
        self, wave: targeting.Wave, record: progress.WaveProgress
    ) -> progress.WaveProgress | Step:
        model, version = self.intent.model, self.intent.version
        reported = {
            agent.name
            for agent in wave.agents
            if failed_on_agent(agent, model=model, version=version) and not self.updated(agent)
        }
        # Only an agent the operator has heard from can lack an engine: the others wait.
        no_engine = {
            agent.name for agent in wave.agents if agent.observed and agent.name not in self.engines
        }
        failed = set(record.failed_agents) | reported | no_engine
        if no_engine - set(record.failed_agents):
            names = ", ".join(sorted(no_engine - set(record.failed_agents)))
            self.warning(
                Reason.NO_ENGINE,
                f"no engine could be built for agents {names} (see the Compiled condition)",
            )
        if tuple(sorted(failed)) != record.failed_agents:
            record = replace(record, failed_agents=tuple(sorted(failed)))
            self.current = self.current.with_wave(record)
        started_at = record.started_at or self.now
        absent = offline.waiting(
            self.intent.offline,
            [a for a in wave.agents if a.name not in failed and not self.updated(a)],
            reached=started_at,
            now=self.now,
        )
        record = self.note_offline(wave, record, absent)
        if len(failed) + len(absent.overdue) > wave.max_failed:
            return self.fail(
                record,
                reason=Reason.ACTIVATION_FAILED
                if len(failed) > wave.max_failed
                else offline.Reason.OFFLINE,
                message=offline.failure_message(
                    self.intent.offline,
                    version=version,
                    total=len(wave.agents),
                    max_failed=wave.max_failed,
                    failed=failed,
                    offline=absent.overdue,
                )
                + _reasons(record, failed),
                numbers={
                    "failed": len(failed) + len(absent.overdue),
                    "maxFailed": wave.max_failed,
                    **({"offline": len(absent.overdue)} if absent.overdue else {}),
                },
            )
        counted = failed | set(absent.overdue)
        pending = [a for a in wave.agents if a.name not in counted and not self.updated(a)]
        if not pending:
            record = replace(record, state=WaveState.VERIFYING, verifying_since=self.now)
            self.current = self.current.with_wave(record)
            return record
        if self.intent.paused:
            return self.pause()
        self.resume()
        ready = [agent for agent in pending if agent.reachable and agent.observed]
        deadline = started_at + self.intent.progress_deadline
        if not ready:
            # Offline agents wait for their timeout; connected ones the operator has not
            # heard from yet wait for the progress deadline.
            unheard = [agent.name for agent in pending if agent.reachable]
            if unheard and self.now >= deadline:
                seconds = self.intent.progress_deadline.total_seconds()
                return self.fail(
                    record,
                    reason=Reason.DEADLINE,
                    message=(
                        f"agents {', '.join(unheard)} did not answer by the progress deadline "
                        f"({seconds:g} s); bring them back or cordon them"
                    ),
                    numbers={"unanswered": len(unheard), "deadlineSeconds": seconds},
                )
            waits = [absent.wake_at] if absent.wake_at is not None else []
            return self.step(wake_at=min([*waits, deadline] if unheard else waits, default=None))
        batch = tuple(
            Update(agent=a.name, model=model, version=version, engine=self.engines[a.name])
            for a in ready[: wave.max_unavailable]
        )
        return self.step(actions=(UpdateBatch(wave=wave.name, updates=batch),))

    def note_offline(
        self, wave: targeting.Wave, record: progress.WaveProgress, absent: offline.Waiting
    ) -> progress.WaveProgress:
        """Remember the wave's agents offline past the timeout; warn about new ones."""
        if absent.overdue == record.offline_agents:
            return record
        new = set(absent.overdue) - set(record.offline_agents)
        if new:
            self.warning(
                offline.Reason.OFFLINE,
                offline.timed_out_message(self.intent.offline, wave=wave.name, agents=new),
            )
        record = replace(record, offline_agents=absent.overdue)
        self.current = self.current.with_wave(record)
        return record

    def verify_wave(
        self,
        wave: targeting.Wave,
        *,
        record: progress.WaveProgress,
        observation: Observation | None,
    ) -> progress.WaveProgress | Step:
        since = record.verifying_since or self.now
        # Offline agents are not observed: they cannot make a gate fail by themselves.
        serving = tuple(a.name for a in wave.agents if a.reachable and self.updated(a))
        if observation is None or observation.wave != wave.name:
            until = max(self.now, since + self.intent.gate.window)
            return self.step(actions=(Observe(wave=wave.name, agents=serving, until=until),))
        verdict = gates.evaluate(
            gate=self.intent.gate,
            window_started=since,
            now=self.now,
            samples=observation.samples,
            deadline=since + self.intent.progress_deadline,
        )
        record = replace(record, gate=_gate_result(verdict))
        self.current = self.current.with_wave(record)
        if verdict.outcome is gates.Outcome.WAIT:
            until = verdict.wait_until or self.now
            return self.step(
                actions=(Observe(wave=wave.name, agents=serving, until=until),), verdict=verdict
            )
        if verdict.outcome is gates.Outcome.FAIL:
            failed = self.fail(
                record, reason=verdict.reason, message=verdict.message, numbers=verdict.numbers
            )
            return replace(failed, verdict=verdict)
        record = replace(
            record, state=WaveState.PASSED, finished_at=self.now, message=verdict.message
        )
        self.current = self.current.with_wave(record)
        self.normal(Reason.WAVE_PASSED, f"wave {wave.name} passed: {verdict.message}")
        return record

    def succeed(self) -> Step:
        if self.current.phase is not Phase.SUCCEEDED:
            self.set_phase(Phase.SUCCEEDED)
            self.normal(
                Reason.SUCCEEDED,
                f"{self.intent.model} {self.intent.version} rolled out to every wave",
            )
        return self.step()


def _gate_result(verdict: gates.Verdict) -> progress.GateResult:
    numbers = verdict.numbers
    passed = {gates.Outcome.PASS: True, gates.Outcome.FAIL: False}.get(verdict.outcome)
    return progress.GateResult(
        samples=int(numbers.get("requests", 0)),
        p95_latency_ms=numbers.get("p95LatencyMs"),
        error_rate=numbers.get("errorRate"),
        passed=passed,
    )


def next_step(
    *,
    intent: Intent,
    waves: Sequence[targeting.Wave],
    engines: Mapping[str, views.EngineRef],
    current: progress.Progress,
    now: datetime.datetime,
    observation: Observation | None = None,
) -> Step:
    """The rollout's next step at `now` (see the module docstring for the rules)."""
    planner = _Planner(intent=intent, waves=waves, engines=engines, now=now, current=current)
    return planner.run(observation)


def compile_failed(
    *, intent: Intent, current: progress.Progress, message: str, now: datetime.datetime
) -> Step:
    """No engine can be built for this revision: stop before any agent is touched.

    Terminal until the spec changes (the caller retries compiling on a new generation and
    resumes with `compile_recovered`).
    """
    planner = _Planner(intent=intent, waves=(), engines={}, now=now, current=current)
    planner.restart_if_new_revision()
    failure = planner.current.failure
    already = failure is not None and failure.reason == Reason.COMPILE_FAILED
    if planner.current.phase is Phase.FAILED and already:
        return planner.step()
    planner.current = replace(
        planner.current,
        failure=progress.Failure(reason=Reason.COMPILE_FAILED, message=message, at=now),
    )
    planner.set_phase(Phase.FAILED)
    planner.warning(Reason.COMPILE_FAILED, message)
    return planner.step()


def compile_recovered(current: progress.Progress) -> progress.Progress:
    """Progress to resume with once engines build again after a compile failure."""
    failure = current.failure
    if current.phase is Phase.FAILED and failure and failure.reason == Reason.COMPILE_FAILED:
        return replace(current, phase=Phase.PROGRESSING, failure=None, finished_at=None)
    return current
