"""``apply_decisions(snapshot, decisions, now) -> snapshot``: what applying a pass means, pure.

The one statement of how each kind of decision changes a deployment. The worker's SQL apply
(``store.engine_store``) must leave the store so that loading it again gives exactly this
snapshot; ``tests/store/test_engine_store.py`` checks that on SQLite and PostgreSQL for every
scenario file, and the pure harness of the engine's tests uses this function itself.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from opendeploy.engine.reconcile import Decisions
from opendeploy.engine.snapshot import CommandSnapshot, DeploymentSnapshot, EventSnapshot


def apply_decisions(snap: DeploymentSnapshot, d: Decisions, now: datetime) -> DeploymentSnapshot:
    """The snapshot after ``d`` was applied at ``now`` (agents' later reports not included)."""
    target_updates = {u.instance_id: u for u in d.target_updates}
    event_updates = {(u.instance_id, u.event): u for u in d.event_updates}
    dispatch = {c.instance_id: c for c in d.dispatch}
    closed = set(d.close_commands)
    targets = []
    for t in snap.targets:
        events = []
        for ev in t.events:
            u = event_updates.get((t.instance_id, ev.name))
            if u is not None:
                ev = EventSnapshot(ev.name, u.status, u.start_time, u.end_time, u.diagnostics)
            events.append(ev)
        command = t.command
        if t.instance_id in closed:
            command = None
        hc = dispatch.get(t.instance_id)
        if hc is not None:
            command = CommandSnapshot(hc.event, dispatched_at=now, executor=hc.executor)
        tu = target_updates.get(t.instance_id)
        targets.append(
            replace(
                t,
                status=tu.status if tu else t.status,
                events=tuple(events),
                command=command,
            )
        )
    status, started = snap.status, snap.started_at
    if d.deployment is not None:
        status = d.deployment.status
        started = started or d.deployment.start_time
    return replace(
        snap,
        targets=tuple(targets),
        status=status,
        started_at=started,
        termination_wait_started=snap.termination_wait_started or d.termination_wait_started,
    )
