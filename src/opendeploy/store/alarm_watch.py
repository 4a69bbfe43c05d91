"""What the alarm watcher reads and records: the deployments it watches, a stop by an alarm, and
the state of an analysis gate.

The watcher records facts (an alarm stopped this deployment; the gate's metric has been in
bounds since then); the engine's reconcile decides what they mean on its next pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from opendeploy.domain.status import TERMINAL_DEPLOYMENT_STATUSES
from opendeploy.store import tables
from opendeploy.store.database import Store

_D = tables.deployments
_G = tables.deployment_groups
_TERMINAL = [str(s) for s in TERMINAL_DEPLOYMENT_STATUSES]


@dataclass(frozen=True, slots=True)
class Watched:
    """A deployment that is not over and whose stop is not requested yet."""

    deployment_id: str
    application_name: str
    deployment_group_name: str
    group_alarms: dict[str, Any] | None
    override_alarms: dict[str, Any] | None
    gate_state: dict[str, Any] | None
    creator: str = "user"


_WATCHED = (
    select(
        _D.c.deployment_id,
        _D.c.application_name,
        _D.c.deployment_group_name,
        _G.c.alarm_configuration,
        _D.c.override_alarm_configuration,
        _D.c.gate_state,
        _D.c.creator,
    )
    .select_from(_D.outerjoin(_G, _G.c.deployment_group_id == _D.c.deployment_group_id))
    .where(_D.c.status.notin_(_TERMINAL), _D.c.stop_requested.is_(False))
    .order_by(_D.c.create_time)
)


class AlarmWatchStore:
    """The alarm watcher's reads and writes."""

    def __init__(self, store: Store) -> None:
        self.db = store.database

    def watched(self) -> list[Watched]:
        with self.db.read() as conn:
            rows = conn.execute(_WATCHED).all()
        return [
            Watched(
                str(r.deployment_id),
                str(r.application_name or ""),
                str(r.deployment_group_name or ""),
                r.alarm_configuration,
                r.override_alarm_configuration,
                r.gate_state,
                str(r.creator or "user"),
            )
            for r in rows
        ]

    def record_alarm_stop(
        self, deployment_id: str, alarms: tuple[str, ...], *, unreadable: bool
    ) -> bool:
        """Record a stop by these alarms (as StopDeployment records a user's, with no
        ``autoRollbackEnabled``: ``DEPLOYMENT_STOP_ON_ALARM`` decides); False when the
        deployment is over or already stopping."""
        with self.db.write() as conn:
            done = conn.execute(
                update(_D)
                .where(
                    _D.c.deployment_id == deployment_id,
                    _D.c.status.notin_(_TERMINAL),
                    _D.c.stop_requested.is_(False),
                )
                .values(
                    stop_requested=True,
                    auto_rollback_on_stop=None,
                    stop_by_alarm=True,
                    stop_alarms={"alarms": list(alarms), "unreadable": unreadable},
                )
            )
        return bool(done.rowcount)

    def record_gate(self, deployment_id: str, state: dict[str, Any]) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(_D)
                .where(_D.c.deployment_id == deployment_id, _D.c.status.notin_(_TERMINAL))
                .values(gate_state=state)
            )
