"""The outbox of deployment events, as its delivery loop reads and settles it.

Rows are added by the engine's commit (``engine_store.record_events``), in the transaction of the
decisions they describe. A deliverer *leases* a batch of undelivered rows (``lease_owner``,
``lease_expires_at``: on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so replicas deliver
different batches), hands it to the sinks, and only then marks it delivered. A deliverer that dies
in between leaves its lease to run out: the batch is delivered again (at least once).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update

from opendeploy.engine.events import DeliveredEvent, DeploymentEvent, TriggerEvent
from opendeploy.store import tables
from opendeploy.store.database import Store

_O = tables.deployment_events
_B_NOW = bindparam("b_now", type_=_O.c.lease_expires_at.type)
_B_OWNER = bindparam("b_owner", type_=_O.c.lease_owner.type)
#: Not delivered, and not leased, or leased by this deliverer (its own lease from before a
#: restart: the replica's id survives one), or by one whose lease ran out.
_UNDELIVERED = and_(
    _O.c.delivered_at.is_(None),
    or_(
        _O.c.lease_expires_at.is_(None),
        _O.c.lease_owner == _B_OWNER,
        _O.c.lease_expires_at < _B_NOW,
    ),
)


class Outbox:
    """Leases, settles and prunes the outbox's rows."""

    def __init__(self, store: Store, owner: str) -> None:
        self.store = store
        self.owner = owner

    def lease_batch(
        self, now: datetime, *, lease_seconds: float, limit: int
    ) -> list[DeliveredEvent]:
        """Up to ``limit`` undelivered events in order, leased to this deliverer."""
        expires = now + timedelta(seconds=lease_seconds)
        with self.store.database.write() as conn:
            query = select(_O.c.seq).where(_UNDELIVERED).order_by(_O.c.seq).limit(limit)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            params = {"b_now": now, "b_owner": self.owner}
            seqs: list[int] = [int(row[0]) for row in conn.execute(query, params).all()]
            if not seqs:
                return []
            conn.execute(
                update(_O)
                .where(_O.c.seq.in_(seqs))
                .values(lease_owner=self.owner, lease_expires_at=expires)
            )
            rows = conn.execute(select(_O).where(_O.c.seq.in_(seqs)).order_by(_O.c.seq)).mappings()
            return [_event(r) for r in rows]

    def settle(self, seqs: list[int], now: datetime) -> None:
        """Mark these (leased, handed to every sink) events delivered."""
        if not seqs:
            return
        with self.store.database.write() as conn:
            conn.execute(
                update(_O)
                .where(_O.c.seq.in_(seqs), _O.c.lease_owner == self.owner)
                .values(delivered_at=now, lease_owner=None, lease_expires_at=None)
            )

    def prune(self, before: datetime) -> int:
        """Delete events delivered before ``before``; how many."""
        with self.store.database.write() as conn:
            return int(
                conn.execute(
                    delete(_O).where(_O.c.delivered_at.is_not(None), _O.c.delivered_at < before)
                ).rowcount
            )

    def undelivered(self) -> int:
        """How many events wait for delivery (metrics, tests)."""
        with self.store.database.read() as conn:
            query = select(func.count()).select_from(_O).where(_O.c.delivered_at.is_(None))
            return int(conn.execute(query).scalar_one())


def _event(row: Any) -> DeliveredEvent:
    event = DeploymentEvent(
        deployment_id=str(row["deployment_id"]),
        event_type=TriggerEvent(row["event_type"]),
        status=str(row["status"]),
        occurred_at=row["occurred_at"],
        instance_id=row["instance_id"],
        detail=dict(row["detail"] or {}),
    )
    return DeliveredEvent(int(row["seq"]), event)
