"""On-premises instances: registration, tags, and what the agent-facing API records about them.

An instance name stays taken while the instance is registered; a deregistered instance keeps its
record (GetOnPremisesInstance shows ``deregisterTime``) and may be registered again, which
replaces that record. Tags are one value per key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, update

from opendeploy.service_errors import (
    IamSessionArnAlreadyRegisteredError,
    IamUserArnAlreadyRegisteredError,
    InstanceNameAlreadyRegisteredError,
    InstanceNotRegisteredError,
)
from opendeploy.store import driver_sql, tables
from opendeploy.store._base import Repository

_T = tables.on_premises_instances
_TAGS = tables.instance_tags
_TG = tables.deployment_targets
_D = tables.deployments

_TOUCH = (
    update(_T)
    .where(
        _T.c.name == bindparam("b_name"),
        or_(_T.c.last_seen_at.is_(None), _T.c.last_seen_at < bindparam("b_seen")),
    )
    .values(last_seen_at=bindparam("b_seen"), unreachable_since=None)
)
_TOUCH_ONE = (
    update(_T)
    .where(_T.c.name == bindparam("b_name"))
    .values(last_seen_at=bindparam("b_seen"), unreachable_since=None)
)
_TOUCH_ONE_WITH_VERSION = _TOUCH_ONE.values(agent_version=bindparam("b_version"))


def not_registered(name: str) -> InstanceNotRegisteredError:
    return InstanceNotRegisteredError(f"The on-premises instance {name} is not registered.")


def _tags_of(conn: Connection, names: Sequence[str]) -> dict[str, dict[str, str]]:
    rows = conn.execute(
        select(_TAGS.c.instance_name, _TAGS.c.key, _TAGS.c.value)
        .where(_TAGS.c.instance_name.in_(list(names)))
        .order_by(_TAGS.c.instance_name, _TAGS.c.key)
    ).all()
    out: dict[str, dict[str, str]] = {n: {} for n in names}
    for name, key, value in rows:
        out[str(name)][str(key)] = str(value)
    return out


class OnPremisesInstances(Repository):
    """Rows of ``on_premises_instances`` as dicts, with ``tags`` as a key → value dict."""

    def register(
        self,
        *,
        name: str,
        instance_arn: str,
        iam_user_arn: str | None,
        iam_session_arn: str | None,
        now: datetime,
    ) -> None:
        """Register ``name``; the AWS "already registered" errors for a taken name or IAM ARN."""
        with self.db.write() as conn:
            existing = conn.execute(select(_T.c.deregister_time).where(_T.c.name == name)).first()
            if existing is not None and existing[0] is None:
                raise InstanceNameAlreadyRegisteredError(
                    f"The on-premises instance name {name} is already registered."
                )
            active = _T.c.deregister_time.is_(None)
            if (
                iam_user_arn
                and conn.execute(
                    select(_T.c.name).where(_T.c.iam_user_arn == iam_user_arn, active)
                ).first()
            ):
                raise IamUserArnAlreadyRegisteredError(
                    f"The IAM user ARN {iam_user_arn} is already registered "
                    "with an on-premises instance."
                )
            if (
                iam_session_arn
                and conn.execute(
                    select(_T.c.name).where(_T.c.iam_session_arn == iam_session_arn, active)
                ).first()
            ):
                raise IamSessionArnAlreadyRegisteredError(
                    f"The IAM session ARN {iam_session_arn} is already registered "
                    "with an on-premises instance."
                )
            if existing is not None:
                conn.execute(delete(_TAGS).where(_TAGS.c.instance_name == name))
                conn.execute(delete(_T).where(_T.c.name == name))
            conn.execute(
                insert(_T).values(
                    name=name,
                    instance_arn=instance_arn,
                    iam_user_arn=iam_user_arn,
                    iam_session_arn=iam_session_arn,
                    register_time=now,
                )
            )

    def deregister(self, name: str, *, now: datetime) -> None:
        """Mark ``name`` deregistered; InstanceNotRegisteredException if it is not registered."""
        with self.db.write() as conn:
            changed = conn.execute(
                update(_T)
                .where(_T.c.name == name, _T.c.deregister_time.is_(None))
                .values(deregister_time=now)
            ).rowcount
        if not changed:
            raise not_registered(name)

    def get(self, name: str) -> dict[str, Any] | None:
        return self.get_many([name])[0]

    def names_for_arns(self, arns: Sequence[str]) -> dict[str, str]:
        """Instance ARN -> instance name, for the ARNs that name a known instance.

        An on-premises instance ARN ends in ``<name>_<suffix>`` (a new suffix per registration),
        and names may contain ``_`` themselves, so the name is looked up, never parsed out.
        """
        if not arns:
            return {}
        with self.db.read() as conn:
            rows = conn.execute(
                select(_T.c.instance_arn, _T.c.name).where(_T.c.instance_arn.in_(list(arns)))
            ).all()
        return {r[0]: r[1] for r in rows}

    def get_many(self, names: Sequence[str]) -> list[dict[str, Any] | None]:
        """Each name's record (None where unknown), in the order asked."""
        with self.db.read() as conn:
            rows = conn.execute(select(_T).where(_T.c.name.in_(list(names)))).mappings().all()
            tags = _tags_of(conn, [r["name"] for r in rows])
        by_name = {r["name"]: {**r, "tags": tags[r["name"]]} for r in rows}
        return [by_name.get(n) for n in names]

    def list_names(
        self,
        *,
        registration_status: str | None,
        tag_predicate: Callable[[Mapping[str, str]], bool] | None,
        after: str | None,
        limit: int,
    ) -> tuple[list[str], bool]:
        """One page of names (name order, after ``after``) by status ("Registered" or
        "Deregistered") and tags.

        ``tag_predicate`` (e.g. tag filters from ``engine.targets``) keeps the instances whose
        tags it accepts.
        """
        query = select(_T.c.name).order_by(_T.c.name)
        if after is not None:
            query = query.where(_T.c.name > after)
        if registration_status == "Registered":
            query = query.where(_T.c.deregister_time.is_(None))
        elif registration_status == "Deregistered":
            query = query.where(_T.c.deregister_time.is_not(None))
        with self.db.read() as conn:
            names: list[str] = list(conn.execute(query).scalars())
            if tag_predicate is not None:
                tags = _tags_of(conn, names)
                names = [n for n in names if tag_predicate(tags[n])]
        return names[:limit], len(names) > limit

    def up_to_date(self, deployment_group_id: str, revision: dict[str, Any]) -> set[str]:
        """The instances already running ``revision`` in the group (:func:`running_revision`)."""
        with self.db.read() as conn:
            return running_revision(conn, deployment_group_id, revision)

    def registered_with_tags(self) -> list[tuple[str, str, dict[str, str]]]:
        """Every registered instance as (name, arn, tags): the fleet that targeting looks at."""
        with self.db.read() as conn:
            return registered_with_tags(conn)

    def add_tags(self, names: Sequence[str], tags: Iterable[tuple[str, str]]) -> None:
        """Add or overwrite tags on every instance; InstanceNotRegisteredException if one is not."""
        tags = list(tags)
        with self.db.write() as conn:
            self._require_registered(conn, names)
            for name in names:
                for key, value in tags:
                    changed = conn.execute(
                        update(_TAGS)
                        .where(_TAGS.c.instance_name == name, _TAGS.c.key == key)
                        .values(value=value)
                    ).rowcount
                    if not changed:
                        conn.execute(insert(_TAGS).values(instance_name=name, key=key, value=value))

    def remove_tags(self, names: Sequence[str], tags: Iterable[tuple[str, str | None]]) -> None:
        """Remove tags (by key, and by value too when one is given) from every instance."""
        tags = list(tags)
        with self.db.write() as conn:
            self._require_registered(conn, names)
            for key, value in tags:
                query = delete(_TAGS).where(
                    _TAGS.c.instance_name.in_(list(names)), _TAGS.c.key == key
                )
                if value:
                    query = query.where(_TAGS.c.value == value)
                conn.execute(query)

    def last_deregistration(self) -> datetime | None:
        """When the most recent deregistration happened (an indexed read, cheap to poll)."""
        with self.db.read() as conn:
            newest: datetime | None = conn.execute(select(func.max(_T.c.deregister_time))).scalar()
        return newest

    def touch(self, name: str, *, now: datetime, agent_version: str | None = None) -> None:
        """Record an agent's poll (``last_seen_at``) and, when known, its version.

        A call from the agent is proof that it is reachable again: ``unreachable_since`` clears.
        """
        # Joins the agents' group commit: a fleet's first calls after a start (ten thousand at
        # once) each write one, and a transaction each was most of what those calls cost.
        if agent_version:
            statement = _TOUCH_ONE_WITH_VERSION
            params = {"b_name": name, "b_seen": now, "b_version": agent_version}
        else:
            statement, params = _TOUCH_ONE, {"b_name": name, "b_seen": now}
        self.db.combined(lambda conn: conn.execute(statement, params))

    def touch_many(self, seen: Mapping[str, datetime]) -> None:
        """Record many signs of life (name -> when) in one write transaction.

        The Command API batches them: one transaction per interval instead of one per agent call,
        which on SQLite also means one turn at the database-wide write lock. A time never moves
        ``last_seen_at`` back (a later call, or another replica, may have written a newer one).
        """
        if not seen:
            return
        rows = [{"b_name": name, "b_seen": when} for name, when in seen.items()]
        with self.db.write() as conn:
            driver_sql.execute_many(conn, _TOUCH, driver_sql.TOUCH_INSTANCES, rows)

    @staticmethod
    def _require_registered(conn: Connection, names: Sequence[str]) -> None:
        found: set[str] = set(
            conn.execute(
                select(_T.c.name).where(_T.c.name.in_(list(names)), _T.c.deregister_time.is_(None))
            ).scalars()
        )
        for name in names:
            if name not in found:
                raise not_registered(name)


def registered_with_tags(conn: Connection) -> list[tuple[str, str, dict[str, str]]]:
    """Every registered instance as (name, arn, tags), inside an open transaction."""
    rows = conn.execute(
        select(_T.c.name, _T.c.instance_arn).where(_T.c.deregister_time.is_(None))
    ).all()
    tags = _tags_of(conn, [r[0] for r in rows])
    return [(r[0], r[1], tags[r[0]]) for r in rows]


def running_revision(
    conn: Connection, deployment_group_id: str, revision: dict[str, Any]
) -> set[str]:
    """The instances whose last successful deployment in the group installed ``revision``: the
    ones CreateDeployment's ``updateOutdatedInstancesOnly`` leaves out."""
    from opendeploy.store.revisions import location_key

    wanted = location_key(revision)
    rows = conn.execute(
        select(_TG.c.target_id, _D.c.revision)
        .join(_D, _D.c.deployment_id == _TG.c.deployment_id)
        .where(_D.c.deployment_group_id == deployment_group_id, _TG.c.status == "Succeeded")
        .order_by(_TG.c.last_updated_at, _D.c.create_time)
    ).all()
    last: dict[str, Any] = {}
    for name, installed in rows:
        last[str(name)] = installed
    return {
        name for name, installed in last.items() if installed and location_key(installed) == wanted
    }
