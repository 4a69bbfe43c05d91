"""The agents' hottest writes on SQLite, run on the driver's connection inside the transaction.

Each of a fleet's lifecycle events costs a claim (a query and an update), an acknowledgement and
a completion. Through SQLAlchemy Core each of those statements cost about 30 us of Python
(execution context, parameter processing, a result object) against 5 us for the statement
itself, most of what the writes cost the server. Here they are plain SQL on the ``sqlite3``
connection that SQLAlchemy's transaction holds (``BEGIN IMMEDIATE`` was issued on it, and the
transaction's commit ends them), with values converted by the columns' own SQLAlchemy types, so
what is stored is exactly what the Core statements store. PostgreSQL keeps the Core statements
(in ``commands``); ``tests/store/test_commands.py`` runs the same scenarios on both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Executable
from sqlalchemy.dialects import sqlite

from opendeploy.store import tables

_C = tables.host_commands
_DIALECT = sqlite.dialect()


def _binder(column: Any) -> Callable[[Any], Any]:
    process = column.type.bind_processor(_DIALECT)
    return process if process is not None else (lambda value: value)


_time = _binder(_C.c.delivered_at)
_flag = _binder(_C.c.noop)
_json = _binder(_C.c.diagnostics)


_NEXT = (
    "SELECT command_id, deployment_id, instance_name, lifecycle_event, status, nonce "
    "FROM host_commands WHERE instance_name = ? AND status = 'Pending' AND closed_at IS NULL "
    "AND (delivered_at IS NULL OR delivered_at < ?) "
    "ORDER BY dispatched_at, command_id LIMIT 2"
)
_MARK_DELIVERED = "UPDATE host_commands SET delivered_at = ? WHERE command_id = ?"


def _by_owned(template: str) -> dict[bool, str]:
    """``template`` for a command named by id alone, and by id and owning instance."""
    return {
        owned: template.format(owned=" AND instance_name = ?" if owned else "")
        for owned in (False, True)
    }


_ACKNOWLEDGE = _by_owned(
    "UPDATE host_commands SET status = 'InProgress', acknowledged_at = ?, noop = ? "
    "WHERE command_id = ?{owned} AND status = 'Pending'"
)
_STATUS_OF = _by_owned("SELECT status, result FROM host_commands WHERE command_id = ?{owned}")
_COMPLETE = _by_owned(
    "UPDATE host_commands SET status = ?, result = ?, completed_at = ?, diagnostics = ?, "
    "acknowledged_at = coalesce(acknowledged_at, ?) "
    "WHERE command_id = ?{owned} AND status IN ('Pending', 'InProgress') AND closed_at IS NULL"
)
_EXISTS = _by_owned("SELECT command_id FROM host_commands WHERE command_id = ?{owned}")


def _driver(conn: Connection) -> Any:
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver


def claim(
    conn: Connection, instance_name: str, now: datetime, stale: datetime
) -> dict[str, Any] | None:
    """The oldest deliverable command of the instance, marked delivered at ``now``."""
    db = _driver(conn)
    rows = db.execute(_NEXT, (instance_name, _time(stale))).fetchall()
    if not rows:
        return None
    command_id, deployment_id, name, event, status, nonce = rows[0]
    db.execute(_MARK_DELIVERED, (_time(now), command_id))
    return {
        "command_id": command_id,
        "deployment_id": deployment_id,
        "instance_name": name,
        "lifecycle_event": event,
        "status": status,
        "nonce": nonce,
        "delivered_at": now,
        "others_deliverable": len(rows) > 1,
    }


def acknowledge(
    conn: Connection, command_id: str, now: datetime, noop: bool, owner: str | None
) -> bool | tuple[str, str | None] | None:
    """True when a Pending command was taken up; else its ``(status, result)``, or None."""
    db = _driver(conn)
    owned = owner is not None
    mine = (command_id, owner) if owned else (command_id,)
    if db.execute(_ACKNOWLEDGE[owned], (_time(now), _flag(noop), *mine)).rowcount:
        return True
    row = db.execute(_STATUS_OF[owned], mine).fetchone()
    return None if row is None else (row[0], row[1])


def complete(
    conn: Connection,
    command_id: str,
    now: datetime,
    result: str,
    diagnostics: dict[str, Any] | None,
    owner: str | None,
) -> bool | None:
    """True when the completion counted; False when too late; None: not the owner's."""
    db = _driver(conn)
    owned = owner is not None
    mine = (command_id, owner) if owned else (command_id,)
    at = _time(now)
    values = (result, result, at, _json(diagnostics), at, *mine)
    if db.execute(_COMPLETE[owned], values).rowcount:
        return True
    if owned and db.execute(_EXISTS[owned], mine).fetchone() is None:
        return None
    return False


_TARGET_INSTANCES = (
    "SELECT i.name, i.last_seen_at, i.deregister_time, i.unreachable_since "
    "FROM on_premises_instances AS i JOIN deployment_targets AS t ON t.target_id = i.name "
    "WHERE t.deployment_id = ?"
)


def _stored_time(value: str | None) -> datetime | None:
    """A time as SQLAlchemy's SQLite DATETIME stores it (naive UTC text), made aware."""
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def target_instances(
    conn: Connection, deployment_id: str
) -> dict[str, tuple[datetime | None, datetime | None, datetime | None]]:
    """Target -> (last_seen_at, deregister_time, unreachable_since) of a deployment's instances.

    The engine reads this for every target of a deployment once a second; through SQLAlchemy's
    result processing the three times of ten thousand rows were a large part of its pass."""
    rows = _driver(conn).execute(_TARGET_INSTANCES, (deployment_id,)).fetchall()
    t = _stored_time
    return {name: (t(seen), t(gone), t(unreachable)) for name, seen, gone, unreachable in rows}


# --- the engine's writes of a pass (one executemany per kind) --------------------------------

_TG = tables.deployment_targets
_EV = tables.lifecycle_events


class Many:
    """A statement run with many parameter sets: its SQLite SQL, and for each ``?`` in order
    the key of the parameter dicts (those of the Core statement it stands for) and the column
    whose type converts the value."""

    def __init__(self, sql: str, params: Sequence[tuple[str, Any]]) -> None:
        self.sql = sql
        # None where the column's type binds the value as it is (most strings and numbers).
        self._convert = [(key, column.type.bind_processor(_DIALECT)) for key, column in params]

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run it on SQLite for ``rows`` (parameter dicts), in one executemany."""
        if not rows:
            return
        convert = self._convert
        values = [
            tuple(r[key] if process is None else process(r[key]) for key, process in convert)
            for r in rows
        ]
        _driver(conn).executemany(self.sql, values)


def execute_many(
    conn: Connection, core: Executable, fast: Many, rows: Sequence[Mapping[str, Any]]
) -> None:
    """``core`` with ``rows`` (its parameter dicts), as ``fast`` on SQLite."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        fast.execute(conn, rows)
    else:
        conn.execute(core, list(rows))


def _insert(table: Any, columns: Sequence[str]) -> Many:
    """An INSERT of ``columns`` into ``table``, from dicts keyed by column name."""
    return Many(
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})",
        [(name, table.c[name]) for name in columns],
    )


SET_TARGET_STATUS = Many(
    "UPDATE deployment_targets SET status = ?, last_updated_at = ? "
    "WHERE deployment_id = ? AND target_id = ?",
    [
        ("b_status", _TG.c.status),
        ("b_at", _TG.c.last_updated_at),
        ("b_dep", _TG.c.deployment_id),
        ("b_target", _TG.c.target_id),
    ],
)
TOUCH_TARGET = Many(
    "UPDATE deployment_targets SET last_updated_at = ? WHERE deployment_id = ? AND target_id = ?",
    [
        ("b_at", _TG.c.last_updated_at),
        ("b_dep", _TG.c.deployment_id),
        ("b_target", _TG.c.target_id),
    ],
)
INSERT_EVENT = _insert(
    _EV,
    [
        "deployment_id",
        "target_id",
        "position",
        "name",
        "status",
        "start_time",
        "end_time",
        "diagnostics",
    ],  # fmt: skip
)
SET_EVENT = Many(
    "UPDATE lifecycle_events SET status = ?, start_time = ?, end_time = ?, diagnostics = ? "
    "WHERE deployment_id = ? AND target_id = ? AND position = ?",
    [
        ("b_status", _EV.c.status),
        ("b_start", _EV.c.start_time),
        ("b_end", _EV.c.end_time),
        ("b_diagnostics", _EV.c.diagnostics),
        ("b_dep", _EV.c.deployment_id),
        ("b_target", _EV.c.target_id),
        ("b_position", _EV.c.position),
    ],
)
# ``+closed_at``: not an index term. Otherwise SQLite (no statistics) picks the index on
# (deployment_id, closed_at) and scans every open command of the deployment for each name.
CLOSE_COMMANDS = Many(
    "UPDATE host_commands SET status = 'Closed', closed_at = ? "
    "WHERE deployment_id = ? AND instance_name = ? AND +closed_at IS NULL",
    [("b_now", _C.c.closed_at), ("b_dep", _C.c.deployment_id), ("b_name", _C.c.instance_name)],
)
INSERT_COMMAND = _insert(
    _C,
    [
        "command_id",
        "deployment_id",
        "instance_name",
        "lifecycle_event",
        "status",
        "seen_status",
        "nonce",
        "dispatched_at",
        "noop",
    ],  # fmt: skip
)
MARK_SEEN = Many(
    "UPDATE host_commands SET seen_status = ? WHERE command_id = ?",
    [("b_status", _C.c.seen_status), ("b_id", _C.c.command_id)],
)
