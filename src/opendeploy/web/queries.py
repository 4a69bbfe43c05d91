"""The dashboard's read model: the few queries its pages need beyond the repositories.

Every query is bounded (a page of rows, or the last N deployments of a set of groups) so that a
page costs the same with 10 instances or 10,000. The repositories remain the way to change
anything; this module only reads, in one transaction per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from opendeploy.domain.configs import PREDEFINED, InvalidMinimumHealthyHosts, minimum_of
from opendeploy.engine.batches import max_in_flight
from opendeploy.store import tables
from opendeploy.store.database import Store

_D = tables.deployments
_TG = tables.deployment_targets
_EV = tables.lifecycle_events
_G = tables.deployment_groups
_I = tables.on_premises_instances

#: How many deployments a success chart shows.
CHART_DEPLOYMENTS = 20


def groups_of(store: Store, application_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """application id -> its deployment groups (name order) with the columns a list shows."""
    out: dict[str, list[dict[str, Any]]] = {a: [] for a in application_ids}
    if not application_ids:
        return out
    with store.database.read() as conn:
        rows = conn.execute(
            select(
                _G.c.application_id,
                _G.c.deployment_group_id,
                _G.c.name,
                _G.c.deployment_config_name,
                _G.c.compute_platform,
            )
            .where(_G.c.application_id.in_(list(application_ids)))
            .order_by(_G.c.name)
        ).mappings()
        for row in rows:
            out[row["application_id"]].append(dict(row))
    return out


def recent_by_group(
    store: Store, group_ids: Sequence[str], *, per_group: int = CHART_DEPLOYMENTS
) -> dict[str, list[dict[str, Any]]]:
    """group id -> its last ``per_group`` deployments, newest first (one windowed query)."""
    out: dict[str, list[dict[str, Any]]] = {g: [] for g in group_ids}
    if not group_ids:
        return out
    ranked = (
        select(
            _D.c.deployment_group_id,
            _D.c.deployment_id,
            _D.c.status,
            _D.c.create_time,
            _D.c.start_time,
            _D.c.complete_time,
            func.row_number()
            .over(
                partition_by=_D.c.deployment_group_id,
                order_by=(_D.c.create_time.desc(), _D.c.deployment_id.desc()),
            )
            .label("rank"),
        )
        .where(_D.c.deployment_group_id.in_(list(group_ids)))
        .subquery()
    )
    query = (
        select(ranked)
        .where(ranked.c.rank <= per_group)
        .order_by(ranked.c.deployment_group_id, ranked.c.rank)
    )
    with store.database.read() as conn:
        for row in conn.execute(query).mappings():
            out[row["deployment_group_id"]].append(dict(row))
    return out


def recent_deployments(store: Store, *, limit: int) -> list[dict[str, Any]]:
    """The newest deployments of every application (the home page's table)."""
    with store.database.read() as conn:
        rows = conn.execute(
            select(
                _D.c.deployment_id,
                _D.c.application_name,
                _D.c.deployment_group_name,
                _D.c.status,
                _D.c.creator,
                _D.c.create_time,
                _D.c.start_time,
                _D.c.complete_time,
                _D.c.revision,
            )
            .order_by(_D.c.create_time.desc(), _D.c.deployment_id.desc())
            .limit(limit)
        ).mappings()
        return [dict(r) for r in rows]


def failed_events(store: Store, deployment_id: str, *, limit: int = 5) -> list[dict[str, Any]]:
    """The deployment's failed lifecycle events (instance, event, diagnostics), first first."""
    with store.database.read() as conn:
        rows = conn.execute(
            select(
                _EV.c.target_id,
                _EV.c.name,
                _EV.c.status,
                _EV.c.start_time,
                _EV.c.end_time,
                _EV.c.diagnostics,
            )
            .where(_EV.c.deployment_id == deployment_id, _EV.c.status == "Failed")
            .order_by(_EV.c.end_time, _EV.c.target_id)
            .limit(limit)
        ).mappings()
        return [dict(r) for r in rows]


def first_target_with(store: Store, deployment_id: str, statuses: Sequence[str]) -> str | None:
    """The first target (id order) in one of ``statuses``: whose output to show by default."""
    with store.database.read() as conn:
        found = conn.execute(
            select(_TG.c.target_id)
            .where(_TG.c.deployment_id == deployment_id, _TG.c.status.in_(list(statuses)))
            .order_by(_TG.c.target_id)
            .limit(1)
        ).scalar_one_or_none()
    return None if found is None else str(found)


def start_order(store: Store, deployment_id: str) -> dict[str, int]:
    """target id -> 0-based position in the order the engine started the targets."""
    first = func.min(_EV.c.start_time)
    with store.database.read() as conn:
        rows = conn.execute(
            select(_EV.c.target_id, first.label("first"))
            .where(_EV.c.deployment_id == deployment_id, _EV.c.start_time.is_not(None))
            .group_by(_EV.c.target_id)
            .order_by(first, _EV.c.target_id)
        ).all()
    return {str(r[0]): index for index, r in enumerate(rows)}


def pace(store: Store, config_name: str, total: int) -> int:
    """How many instances the deployment configuration lets the engine run at once."""
    stored = None
    if config_name not in PREDEFINED:
        stored = (store.deployment_configs.get(config_name) or {}).get("minimum_healthy_hosts")
    try:
        minimum = minimum_of(config_name, stored)
    except InvalidMinimumHealthyHosts:
        return 1
    return max_in_flight(total, minimum)


def last_deployments(store: Store, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """instance name -> its newest deployment (id, status, target status, times)."""
    if not names:
        return {}
    ranked = (
        select(
            _TG.c.target_id,
            _TG.c.status.label("target_status"),
            _D.c.deployment_id,
            _D.c.status,
            _D.c.application_name,
            _D.c.deployment_group_name,
            _D.c.create_time,
            func.row_number()
            .over(
                partition_by=_TG.c.target_id,
                order_by=(_D.c.create_time.desc(), _D.c.deployment_id.desc()),
            )
            .label("rank"),
        )
        .join(_D, _D.c.deployment_id == _TG.c.deployment_id)
        .where(_TG.c.target_id.in_(list(names)))
        .subquery()
    )
    with store.database.read() as conn:
        rows = conn.execute(select(ranked).where(ranked.c.rank == 1)).mappings()
        return {str(r["target_id"]): dict(r) for r in rows}


def instance_page(
    store: Store, *, registered: bool, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of on-premises instances (name order) with their tags, and the total count."""
    active = _I.c.deregister_time.is_(None) if registered else _I.c.deregister_time.is_not(None)
    with store.database.read() as conn:
        total = int(conn.execute(select(func.count()).select_from(_I).where(active)).scalar_one())
        names: list[str] = list(
            conn.execute(
                select(_I.c.name).where(active).order_by(_I.c.name).offset(offset).limit(limit)
            ).scalars()
        )
    rows = [r for r in store.instances.get_many(names) if r is not None]
    return rows, total


def target_count(store: Store, deployment_id: str, statuses: Sequence[str] = ()) -> int:
    query = select(func.count()).select_from(_TG).where(_TG.c.deployment_id == deployment_id)
    if statuses:
        query = query.where(_TG.c.status.in_(list(statuses)))
    with store.database.read() as conn:
        return int(conn.execute(query).scalar_one())
