"""A harness for the pure engine: applies Decisions to a snapshot the way the worker will.

Like Nomad's scheduler test harness, it keeps a copy of the state and lets tests play agents
(poll, acknowledge, complete) and call ``reconcile`` without any store; it applies decisions with
the engine's pure ``apply_decisions``, which the worker's SQL apply is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.status import DeploymentStatus, LifecycleErrorCode
from opendeploy.engine.apply import apply_decisions
from opendeploy.engine.reconcile import Decisions, EngineSettings, ErrorInformation, reconcile
from opendeploy.engine.rollback import RollbackDecision
from opendeploy.engine.snapshot import (
    CommandSnapshot,
    DeploymentSnapshot,
    Diagnostics,
    TargetSnapshot,
)

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


#: The pure apply the worker's SQL apply is checked against (kept under its old name here).
apply = apply_decisions


@dataclass
class Harness:
    """A deployment under test, its agents, and everything the engine decided so far."""

    snap: DeploymentSnapshot
    settings: EngineSettings = field(default_factory=EngineSettings)
    error: ErrorInformation | None = None
    rollback: RollbackDecision | None = None
    history: list[Decisions] = field(default_factory=list)

    # -- agents ------------------------------------------------------------------------------

    def target(self, instance_id: str) -> TargetSnapshot:
        for t in self.snap.targets:
            if t.instance_id == instance_id:
                return t
        raise KeyError(instance_id)

    def _set(self, instance_id: str, **changes: object) -> None:
        targets = tuple(
            replace(t, **changes) if t.instance_id == instance_id else t  # type: ignore[arg-type]
            for t in self.snap.targets
        )
        self.snap = replace(self.snap, targets=targets)

    def poll(self, instance_id: str, now: datetime) -> None:
        self._set(instance_id, last_seen_at=now)

    def command(self, instance_id: str) -> CommandSnapshot:
        cmd = self.target(instance_id).command
        assert cmd is not None, f"{instance_id} has no outstanding command"
        return cmd

    def ack(self, instance_id: str, now: datetime, *, noop: bool = False) -> None:
        cmd = replace(self.command(instance_id), acknowledged_at=now, noop=noop)
        self._set(instance_id, command=cmd)

    def complete(
        self,
        instance_id: str,
        now: datetime,
        result: Literal["Succeeded", "Failed"],
        diagnostics: Diagnostics | None = None,
    ) -> None:
        cmd = self.command(instance_id)
        cmd = replace(
            cmd,
            acknowledged_at=cmd.acknowledged_at or now,
            completed_at=now,
            result=result,
            diagnostics=diagnostics,
        )
        self._set(instance_id, command=cmd)

    def fail(
        self, instance_id: str, now: datetime, code: str = "ScriptFailed", msg: str = ""
    ) -> None:
        event = self.command(instance_id).event
        message = msg or f"Script at specified location: scripts/{event}.sh failed with exit code 1"
        self.complete(
            instance_id,
            now,
            "Failed",
            Diagnostics(LifecycleErrorCode(code), message, "x.sh", "boom"),
        )

    def outstanding(self, instance_id: str) -> LifecycleEvent | None:
        """The event of the command awaiting an answer, if any."""
        cmd = self.target(instance_id).command
        if cmd is None or cmd.result is not None:
            return None
        return cmd.event

    # -- engine ------------------------------------------------------------------------------

    def step(self, now: datetime) -> Decisions:
        d = reconcile(self.snap, now, settings=self.settings)
        self.snap = apply(self.snap, d, now)
        if d.deployment is not None and d.deployment.error is not None:
            self.error = d.deployment.error
        if d.rollback is not None:
            self.rollback = d.rollback
        self.history.append(d)
        again = reconcile(self.snap, now, settings=self.settings)
        assert not again.has_changes, f"reconcile is not idempotent: {again}"
        return d

    @property
    def status(self) -> DeploymentStatus:
        return self.snap.status
