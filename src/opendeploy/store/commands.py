"""Host commands: the rows behind the Command API (PollHostCommand … PutHostCommandComplete).

The engine creates a command when it dispatches a lifecycle event to a target and closes it when
it has turned the agent's reports into statuses (or gives up on it); the Command API records what
the agent says about it. A command moves ``Pending`` (created, maybe delivered) → ``InProgress``
(acknowledged) → ``Succeeded``/``Failed`` (completed), and to ``Closed`` whenever the engine is
done with it. Reports about a closed command are accepted and ignored (the official agent reports
late after a crash, and must not be told off for it).

Host identity is bound here too: an instance key is an access key of kind ``instance`` whose
principal is the instance's ARN. That ARN carries a random suffix per registration, so
deregistering an instance (or registering the name again) revokes every key issued before.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from opendeploy.store import driver_sql, tables
from opendeploy.store._base import Repository

_C = tables.host_commands
_K = tables.access_keys
_I = tables.on_premises_instances
_D = tables.deployments
_TG = tables.deployment_targets

#: The deployment columns a deployment specification is built from (none of them ever change).
_SPEC_COLUMNS = (
    _D.c.deployment_id,
    _D.c.deployment_group_id,
    _D.c.deployment_group_name,
    _D.c.application_name,
    _D.c.creator,
    _D.c.deployment_style,
    _D.c.file_exists_behavior,
    _D.c.revision,
)

PENDING = "Pending"
#: A server step not yet taken up by an effector runner (never handed to an agent).
QUEUED = "Queued"
IN_PROGRESS = "InProgress"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
CLOSED = "Closed"

#: ``host_commands.executor``: the host's agent, or the server's effector runner.
AGENT = "agent"
SERVER = "server"

#: The most hook output kept per command (the newest characters win).
OUTPUT_LIMIT_CHARS = 64 * 1024

#: A delivered but unacknowledged command is handed out again after this long (the poll's answer
#: may have been lost on the way, e.g. a connection cut as it was written).
REDELIVER_AFTER = timedelta(seconds=60)

#: Names per ``IN (…)`` list: well below SQLite's bound-parameter limit (999 before 3.32).
_IN_CHUNK = 500


# The Command API's statements, built once: building them per call (SQLAlchemy's clause
# construction and coercion) cost more than running them, on every agent call of a fleet.
_STALE = bindparam("b_stale", type_=_C.c.delivered_at.type)
_DELIVERABLE = (
    _C.c.status == PENDING,
    _C.c.closed_at.is_(None),
    or_(_C.c.delivered_at.is_(None), _C.c.delivered_at < _STALE),
)
_HAS_DELIVERABLE = (
    select(_C.c.command_id).where(_C.c.instance_name == bindparam("b_name"), *_DELIVERABLE).limit(1)
)
# Two rows: the second says whether the claimed command was the last one deliverable.
_NEXT = (
    select(_C)
    .where(_C.c.instance_name == bindparam("b_name"), *_DELIVERABLE)
    .order_by(_C.c.dispatched_at, _C.c.command_id)
    .limit(2)
)
_NEXT_LOCKED = _NEXT.with_for_update(skip_locked=True)
_ALL_DELIVERABLE = select(_C.c.instance_name).where(*_DELIVERABLE).distinct()
_MARK_DELIVERED = (
    update(_C)
    .where(_C.c.command_id == bindparam("b_id"))
    .values(delivered_at=bindparam("b_now", type_=_C.c.delivered_at.type))
)
_IS_TARGET = select(_TG.c.target_id).where(
    _TG.c.deployment_id == bindparam("b_dep"), _TG.c.target_id == bindparam("b_target")
)


def _mine(owned: bool) -> list[Any]:
    """The WHERE clause naming one command, and its owner when ``owned``."""
    clauses = [_C.c.command_id == bindparam("b_id")]
    if owned:
        clauses.append(_C.c.instance_name == bindparam("b_owner"))
    return clauses


#: By ``owned`` (whether the caller's instance must own the command).
_ACKNOWLEDGE = {
    owned: update(_C)
    .where(*_mine(owned), _C.c.status == PENDING)
    .values(
        status=IN_PROGRESS,
        acknowledged_at=bindparam("b_now", type_=_C.c.acknowledged_at.type),
        noop=bindparam("b_noop", type_=_C.c.noop.type),
    )
    for owned in (False, True)
}
_STATUS_OF = {
    owned: select(_C.c.status, _C.c.result).where(*_mine(owned)) for owned in (False, True)
}
_COMPLETE = {
    owned: update(_C)
    .where(*_mine(owned), _C.c.status.in_([PENDING, IN_PROGRESS]), _C.c.closed_at.is_(None))
    .values(
        status=bindparam("b_result", type_=_C.c.status.type),
        result=bindparam("b_result", type_=_C.c.result.type),
        completed_at=bindparam("b_now", type_=_C.c.completed_at.type),
        diagnostics=bindparam("b_diagnostics", type_=_C.c.diagnostics.type),
        # A completion without an acknowledgement implies one.
        acknowledged_at=func.coalesce(
            _C.c.acknowledged_at, bindparam("b_now", type_=_C.c.acknowledged_at.type)
        ),
    )
    for owned in (False, True)
}
_EXISTS = {owned: select(_C.c.command_id).where(*_mine(owned)) for owned in (False, True)}


def new_command_id() -> str:
    """An opaque, unguessable HostCommandIdentifier."""
    return "hc-" + secrets.token_urlsafe(24)


def _bounded(text: str, limit: int = OUTPUT_LIMIT_CHARS) -> str:
    """The last ``limit`` characters of ``text``, cut at a line start where there is one."""
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    newline = tail.find("\n")
    return tail[newline + 1 :] if 0 <= newline < len(tail) - 1 else tail


class Commands(Repository):
    """Rows of ``host_commands`` as dicts of column names; instance keys and their hosts."""

    # --- identity ----------------------------------------------------------------------------

    def lookup_secret(self, access_key_id: str) -> str | None:
        """The key's secret for SigV4; None for unknown keys and keys of deregistered instances."""
        with self.db.read() as conn:
            row = conn.execute(_SECRET_OF, {"b_key": access_key_id}).first()
        if row is None or (row.kind == "instance" and row.instance_name is None):
            return None
        return str(row.secret_access_key)

    def revoked_instance(self, access_key_id: str) -> tuple[str, datetime | None] | None:
        """(name, deregister time) when ``access_key_id`` is the key of an instance that was
        deregistered since it was issued; (name, None) when the name was registered again since
        (a new registration, with a new key); None otherwise."""
        with self.db.read() as conn:
            key = conn.execute(
                select(_K.c.principal).where(
                    _K.c.access_key_id == access_key_id, _K.c.kind == "instance"
                )
            ).first()
            if key is None:
                return None
            row = conn.execute(
                select(_I.c.name, _I.c.deregister_time).where(_I.c.instance_arn == key.principal)
            ).first()
            if row is not None:
                return None if row.deregister_time is None else (str(row.name), row.deregister_time)
            # The ARN is ``…:instance/<name>_<suffix>``; a new registration has a new suffix.
            name = str(key.principal).rpartition(":instance/")[2].rpartition("_")[0]
            again = conn.execute(select(_I.c.name).where(_I.c.name == name)).first()
        return (name, None) if again is not None else None

    def key_kind(self, access_key_id: str) -> str | None:
        """``"admin"`` or ``"instance"`` for a known key, else None."""
        with self.db.read() as conn:
            kind = conn.execute(
                select(_K.c.kind).where(_K.c.access_key_id == access_key_id)
            ).scalar_one_or_none()
        return None if kind is None else str(kind)

    def instance_for_key(self, access_key_id: str) -> dict[str, Any] | None:
        """The registered instance an instance key belongs to (None for other keys)."""
        with self.db.read() as conn:
            row = conn.execute(_INSTANCE_OF_KEY, {"b_key": access_key_id}).mappings().first()
        return None if row is None else dict(row)

    # --- the agent's side ----------------------------------------------------------------------

    def claim_next(
        self, instance_name: str, *, now: datetime, expected: bool = False
    ) -> dict[str, Any] | None:
        """The oldest deliverable Pending command of the instance, marked delivered; or None.

        A read comes first unless a command is ``expected`` (the poll was woken for one): most
        polls start with nothing waiting, and on SQLite a write transaction takes the
        database-wide write lock even when it then changes nothing. The command's
        ``others_deliverable`` says whether another was deliverable too.
        """
        if not expected and not self.has_deliverable(instance_name, now=now):
            return None
        return self.db.combined(_claim(instance_name, now))

    async def claim_expected_async(
        self, instance_name: str, *, now: datetime
    ) -> dict[str, Any] | None:
        """:meth:`claim_next` with ``expected``, for a caller on an event loop (no thread)."""
        return await self.db.combined_async(_claim(instance_name, now))

    def has_deliverable(self, instance_name: str, *, now: datetime) -> bool:
        """Whether :meth:`claim_next` would find something (a cheap read for long polls)."""
        with self.db.read() as conn:
            found = conn.execute(
                _HAS_DELIVERABLE, {"b_name": instance_name, "b_stale": now - REDELIVER_AFTER}
            ).first()
        return found is not None

    def deliverable_among(self, instance_names: Iterable[str], *, now: datetime) -> set[str]:
        """Those of ``instance_names`` with a command :meth:`claim_next` would hand out.

        One read for many hosts: a server process asks it once per sweep for every poll held
        there (commands created by another replica), instead of each poll asking for itself. The
        read asks for every deliverable command (few: a command stops being Pending when its
        agent acknowledges it; an index on ``status`` finds them) rather than sending the names,
        so that it costs the same for ten held polls as for ten thousand.
        """
        wanted = set(instance_names)
        if not wanted:
            return set()
        with self.db.read() as conn:
            rows = conn.execute(_ALL_DELIVERABLE, {"b_stale": now - REDELIVER_AFTER}).all()
        return {str(row.instance_name) for row in rows} & wanted

    def target_names(self, deployment_id: str) -> list[str]:
        """Every target of the deployment (they never change once it is created)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_TG.c.target_id).where(_TG.c.deployment_id == deployment_id)
            ).all()
        return [str(row.target_id) for row in rows]

    def spec_source(self, deployment_id: str, instance_name: str) -> dict[str, Any] | None:
        """The deployment's specification columns, if the instance is one of its targets.

        Only what GetDeploymentSpecification needs: loading the deployment with its overview
        (a count over all its targets) on each of a fleet's calls made the calls O(fleet size).
        """
        with self.db.read() as conn:
            if not _is_target(conn, deployment_id, instance_name):
                return None
            row = (
                conn.execute(select(*_SPEC_COLUMNS).where(_D.c.deployment_id == deployment_id))
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def delivered_unacknowledged(self, instance_name: str) -> list[str]:
        """The instance's commands handed out by a poll and not acknowledged yet."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_C.c.command_id).where(
                    _C.c.instance_name == instance_name,
                    _C.c.status == PENDING,
                    _C.c.closed_at.is_(None),
                    _C.c.delivered_at.is_not(None),
                )
            ).all()
        return [str(row.command_id) for row in rows]

    def release(self, instance_name: str, command_ids: Sequence[str]) -> int:
        """Make delivered but unacknowledged commands deliverable again at once (their agent
        showed it never received them); returns how many were released. A command that was
        acknowledged meanwhile, or closed, stays as it is."""
        if not command_ids:
            return 0
        with self.db.write() as conn:
            result = conn.execute(
                update(_C)
                .where(
                    _C.c.instance_name == instance_name,
                    _C.c.command_id.in_(list(command_ids)),
                    _C.c.status == PENDING,
                    _C.c.closed_at.is_(None),
                )
                .values(delivered_at=None)
            )
        return int(result.rowcount)

    def get(self, command_id: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(select(_C).where(_C.c.command_id == command_id)).mappings().first()
        return None if row is None else dict(row)

    def acknowledge(
        self, command_id: str, *, now: datetime, noop: bool, owner: str | None = None
    ) -> str | None:
        """Record PutHostCommandAcknowledgement; returns the CommandStatus to answer.

        ``InProgress`` tells the agent to run the command; ``Failed`` (a command the engine closed
        before the agent took it up, e.g. a stopped deployment, or an unknown one) tells it to
        skip it. With ``owner`` (an instance name), a command that is not that instance's counts
        as unknown and the answer is None: the caller checks ownership in this same transaction.
        """
        row = self.db.combined(_acknowledge(command_id, now, noop, owner))
        return _acknowledged(row, owner)

    async def acknowledge_async(
        self, command_id: str, *, now: datetime, noop: bool, owner: str | None = None
    ) -> str | None:
        """:meth:`acknowledge` for a caller on an event loop (no thread of its own)."""
        row = await self.db.combined_async(_acknowledge(command_id, now, noop, owner))
        return _acknowledged(row, owner)

    def complete(
        self,
        command_id: str,
        *,
        now: datetime,
        result: str,
        diagnostics: dict[str, Any] | None,
        owner: str | None = None,
    ) -> bool | None:
        """Record PutHostCommandComplete; False when it came too late to count (ignored).

        With ``owner`` (an instance name), None when the command is not that instance's (or is
        unknown); that is only looked up when the completion did not count.
        """
        return self.db.combined(_complete(command_id, now, result, diagnostics, owner))

    async def complete_async(
        self,
        command_id: str,
        *,
        now: datetime,
        result: str,
        diagnostics: dict[str, Any] | None,
        owner: str | None = None,
    ) -> bool | None:
        """:meth:`complete` for a caller on an event loop (no thread of its own)."""
        work = _complete(command_id, now, result, diagnostics, owner)
        return await self.db.combined_async(work)

    def append_output(self, command_id: str, text: str, *, owner: str | None = None) -> str | None:
        """Add streamed hook output (kept bounded); the CommandStatus to answer, None if unknown.

        A closed command answers its result (``Failed`` when it has none), as acknowledgements
        do. With ``owner`` (an instance name), another instance's command counts as unknown.
        """
        mine = [_C.c.command_id == command_id]
        if owner is not None:
            mine.append(_C.c.instance_name == owner)
        with self.db.write() as conn:
            row = conn.execute(select(_C.c.status, _C.c.result, _C.c.output).where(*mine)).first()
            if row is None:
                return None
            if text:
                conn.execute(
                    update(_C)
                    .where(_C.c.command_id == command_id)
                    .values(output=_bounded((row.output or "") + text))
                )
        if row.status == CLOSED:
            return str(row.result or FAILED)
        return str(row.status)

    def output(self, deployment_id: str, instance_name: str) -> list[dict[str, Any]]:
        """The target's commands in dispatch order with their streamed output (CLI, dashboard)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(
                    _C.c.command_id,
                    _C.c.lifecycle_event,
                    _C.c.status,
                    _C.c.result,
                    _C.c.dispatched_at,
                    _C.c.output,
                )
                .where(_C.c.deployment_id == deployment_id, _C.c.instance_name == instance_name)
                .order_by(_C.c.dispatched_at, _C.c.command_id)
            ).mappings()
            return [dict(r) for r in rows]

    # --- the engine's side ----------------------------------------------------------------------

    def open_commands(self, deployment_id: str) -> dict[str, dict[str, Any]]:
        with self.db.read() as conn:
            return open_commands(conn, deployment_id)

    def still_running(self, instance_names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per instance, the command it started last if, as far as the server knows, the host is
        still running it: the engine closed it (its deployment was stopped, or failed elsewhere)
        before the agent reported its end. A stopped deployment's script is not killed (as in
        CodeDeploy), so that host takes no other command of the group until the script ends.

        Values: ``deployment_id``, ``lifecycle_event``, ``acknowledged_at``, ``status`` (of
        the deployment).
        """
        if not instance_names:
            return {}
        last = (
            select(_C.c.instance_name, func.max(_C.c.acknowledged_at).label("at"))
            .where(_C.c.instance_name.in_(list(instance_names)), _C.c.acknowledged_at.is_not(None))
            .group_by(_C.c.instance_name)
            .subquery()
        )
        query = (
            select(
                _C.c.instance_name,
                _C.c.deployment_id,
                _C.c.lifecycle_event,
                _C.c.acknowledged_at,
                _D.c.status,
            )
            .join(
                last,
                and_(_C.c.instance_name == last.c.instance_name, _C.c.acknowledged_at == last.c.at),
            )
            .join(_D, _D.c.deployment_id == _C.c.deployment_id)
            .where(_C.c.completed_at.is_(None), _C.c.closed_at.is_not(None))
        )
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        return {str(r["instance_name"]): dict(r) for r in rows}


def _claim(instance_name: str, now: datetime) -> Callable[[Connection], dict[str, Any] | None]:
    """The write of :meth:`Commands.claim_next`."""

    def claim(conn: Connection) -> dict[str, Any] | None:
        if driver_sql.supports(conn):
            return driver_sql.claim(conn, instance_name, now, now - REDELIVER_AFTER)
        rows = (
            conn.execute(_NEXT_LOCKED, {"b_name": instance_name, "b_stale": now - REDELIVER_AFTER})
            .mappings()
            .all()
        )
        if not rows:
            return None
        row = rows[0]
        conn.execute(_MARK_DELIVERED, {"b_id": row["command_id"], "b_now": now})
        return {**row, "delivered_at": now, "others_deliverable": len(rows) > 1}

    return claim


def _acknowledge(
    command_id: str, now: datetime, noop: bool, owner: str | None
) -> Callable[[Connection], Any]:
    """The write of :meth:`Commands.acknowledge`."""
    owned = owner is not None
    params = {"b_id": command_id, "b_owner": owner, "b_now": now, "b_noop": noop}

    def acknowledge(conn: Connection) -> Any:
        if driver_sql.supports(conn):
            found = driver_sql.acknowledge(conn, command_id, now, noop, owner)
            return IN_PROGRESS if found is True else found
        # The usual case first, in one statement: a Pending command taken up.
        if conn.execute(_ACKNOWLEDGE[owned], params).rowcount:
            return IN_PROGRESS
        row = conn.execute(_STATUS_OF[owned], params).first()
        return None if row is None else (row.status, row.result)

    return acknowledge


def _acknowledged(row: Any, owner: str | None) -> str | None:
    """The CommandStatus to answer, from what :func:`_acknowledge` found."""
    if row == IN_PROGRESS:
        return IN_PROGRESS
    if row is None:
        return None if owner is not None else FAILED
    status, result = row
    if status == CLOSED:
        return str(result or FAILED)
    return str(status)


def _complete(
    command_id: str,
    now: datetime,
    result: str,
    diagnostics: dict[str, Any] | None,
    owner: str | None,
) -> Callable[[Connection], bool | None]:
    """The write of :meth:`Commands.complete`."""
    if result not in (SUCCEEDED, FAILED):
        raise ValueError(f"CommandStatus: {result!r} is not Succeeded or Failed")
    owned = owner is not None
    params = {
        "b_id": command_id,
        "b_owner": owner,
        "b_now": now,
        "b_result": result,
        "b_diagnostics": diagnostics,
    }

    def complete(conn: Connection) -> bool | None:
        if driver_sql.supports(conn):
            return driver_sql.complete(conn, command_id, now, result, diagnostics, owner)
        if conn.execute(_COMPLETE[owned], params).rowcount:
            return True
        if owned and conn.execute(_EXISTS[owned], params).first() is None:
            return None
        return False

    return complete


def _is_target(conn: Connection, deployment_id: str, instance_name: str) -> bool:
    params = {"b_dep": deployment_id, "b_target": instance_name}
    return conn.execute(_IS_TARGET, params).first() is not None


# Built once: every agent's first call after a start (ten thousand at once for a fleet) looks
# up its key, and building these per call (SQLAlchemy's coercion and cache keys) cost more
# than running them.
_B_KEY = bindparam("b_key", type_=_K.c.access_key_id.type)
#: An instance key's host: the registered (not deregistered) instance of its IAM ARN.
_KEYS_HOST = and_(_I.c.instance_arn == _K.c.principal, _I.c.deregister_time.is_(None))
_SECRET_OF = (
    select(_K.c.secret_access_key, _K.c.kind, _I.c.name.label("instance_name"))
    .select_from(_K.outerjoin(_I, _KEYS_HOST))
    .where(_K.c.access_key_id == _B_KEY)
)
_INSTANCE_OF_KEY = (
    select(_I)
    .select_from(_K.join(_I, _KEYS_HOST))
    .where(_K.c.access_key_id == _B_KEY, _K.c.kind == "instance")
)


#: Every column but the streamed hook output (up to 64 KB per command, which the engine reads
#: every pass for every target otherwise).
_OPEN_COLUMNS = tuple(c for c in _C.columns if c.name != "output")
_OPEN_COMMANDS = (
    select(*_OPEN_COLUMNS)
    .where(_C.c.deployment_id == bindparam("b_dep"), _C.c.closed_at.is_(None))
    .order_by(_C.c.dispatched_at)
)


_CHANGED_COMMANDS = (
    select(*_OPEN_COLUMNS)
    .where(
        _C.c.deployment_id == bindparam("b_dep"),
        _C.c.closed_at.is_(None),
        or_(_C.c.seen_status.is_(None), _C.c.status != _C.c.seen_status),
    )
    .order_by(_C.c.dispatched_at)
)
_MARK_SEEN = (
    update(_C)
    .where(_C.c.command_id == bindparam("b_id"))
    .values(seen_status=bindparam("b_status", type_=_C.c.seen_status.type))
)


def open_commands(conn: Connection, deployment_id: str) -> dict[str, dict[str, Any]]:
    """Instance name -> its open command (``closed_at`` NULL) in ``deployment_id``, without
    its hook output."""
    rows = conn.execute(_OPEN_COMMANDS, {"b_dep": deployment_id}).mappings()
    return {str(r["instance_name"]): dict(r) for r in rows}


def changed_commands(conn: Connection, deployment_id: str) -> dict[str, dict[str, Any]]:
    """As :func:`open_commands`, only those whose status moved since :func:`mark_seen` last
    recorded it (an agent acknowledged or completed them since the engine looked).

    Statuses only move forward (Pending, InProgress, Succeeded/Failed, Closed), so a status
    recorded as seen while a report was on its way still differs from the new one: nothing is
    missed, whatever the order of the engine's read, the report and the engine's write."""
    rows = conn.execute(_CHANGED_COMMANDS, {"b_dep": deployment_id}).mappings()
    return {str(r["instance_name"]): dict(r) for r in rows}


def mark_seen(conn: Connection, seen: Sequence[tuple[str, str]]) -> None:
    """Record ``(command id, status)`` pairs as taken in by the engine (on PostgreSQL, not for
    a command whose row an agent's report holds at this moment: see ``driver_sql.MARK_SEEN``)."""
    rows = [{"b_id": cid, "b_status": status} for cid, status in seen]
    driver_sql.execute_many(conn, _MARK_SEEN, driver_sql.MARK_SEEN, rows)


_CLOSE = (
    update(_C)
    .where(
        _C.c.deployment_id == bindparam("b_dep"),
        _C.c.instance_name.in_(bindparam("b_names", expanding=True)),
        _C.c.closed_at.is_(None),
    )
    .values(status=CLOSED, closed_at=bindparam("b_now", type_=_C.c.closed_at.type))
)
_INSERT = insert(_C)


def close(
    conn: Connection, deployment_id: str, instance_names: Sequence[str], now: datetime
) -> None:
    """Close the open commands of these targets (the engine is done with them)."""
    names = list(instance_names)
    if driver_sql.supports(conn):
        # By (deployment, instance), which the index finds at once: per name on SQLite, all the
        # names in one statement over an array on PostgreSQL.
        rows = [{"b_now": now, "b_dep": deployment_id, "b_name": name} for name in names]
        driver_sql.CLOSE_COMMANDS.execute(conn, rows)
        return
    for start in range(0, len(names), _IN_CHUNK):
        chunk = names[start : start + _IN_CHUNK]
        conn.execute(_CLOSE, {"b_dep": deployment_id, "b_names": chunk, "b_now": now})


def dispatch(
    conn: Connection,
    deployment_id: str,
    instance_name: str,
    event: str,
    now: datetime,
    executor: str = AGENT,
) -> str:
    """Create the target's next command (closing its previous one); returns its id."""
    return dispatch_many(conn, deployment_id, [(instance_name, event, executor)], now)[0]


def dispatch_many(
    conn: Connection,
    deployment_id: str,
    commands: Sequence[tuple[str, str, str]],
    now: datetime,
) -> list[str]:
    """Create each target's next command, ``(instance name, lifecycle event, executor)``,
    closing the previous one; returns their ids in order. One statement per kind, however many
    targets. A server step starts ``Queued`` (no agent's poll claims it), an agent's
    ``Pending``."""
    if not commands:
        return []
    close(conn, deployment_id, [name for name, _, _ in commands], now)
    rows = []
    for name, event, executor in commands:
        status = QUEUED if executor == SERVER else PENDING
        rows.append(
            {
                "command_id": new_command_id(),
                "deployment_id": deployment_id,
                "instance_name": name,
                "lifecycle_event": event,
                "status": status,
                "seen_status": status,  # the engine knows it: it is creating it
                "nonce": secrets.randbits(62),
                "dispatched_at": now,
                "noop": False,
                "executor": executor,
            }
        )
    driver_sql.execute_many(conn, _INSERT, driver_sql.INSERT_COMMAND, rows)
    return [str(row["command_id"]) for row in rows]
