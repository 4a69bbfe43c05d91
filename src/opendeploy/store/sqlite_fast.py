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

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
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

_OWNED = " AND instance_name = ?"

_NEXT = (
    "SELECT command_id, deployment_id, instance_name, lifecycle_event, status, nonce "
    "FROM host_commands WHERE instance_name = ? AND status = 'Pending' AND closed_at IS NULL "
    "AND (delivered_at IS NULL OR delivered_at < ?) "
    "ORDER BY dispatched_at, command_id LIMIT 2"
)
_MARK_DELIVERED = "UPDATE host_commands SET delivered_at = ? WHERE command_id = ?"
_ACKNOWLEDGE = (
    "UPDATE host_commands SET status = 'InProgress', acknowledged_at = ?, noop = ? "
    "WHERE command_id = ?{owned} AND status = 'Pending'"
)
_STATUS_OF = "SELECT status, result FROM host_commands WHERE command_id = ?{owned}"
_COMPLETE = (
    "UPDATE host_commands SET status = ?, result = ?, completed_at = ?, diagnostics = ?, "
    "acknowledged_at = coalesce(acknowledged_at, ?) "
    "WHERE command_id = ?{owned} AND status IN ('Pending', 'InProgress') AND closed_at IS NULL"
)
_EXISTS = "SELECT command_id FROM host_commands WHERE command_id = ?{owned}"


def _sql(template: str, owned: bool) -> str:
    return template.format(owned=_OWNED if owned else "")


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
    if db.execute(_sql(_ACKNOWLEDGE, owned), (_time(now), _flag(noop), *mine)).rowcount:
        return True
    row = db.execute(_sql(_STATUS_OF, owned), mine).fetchone()
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
    if db.execute(_sql(_COMPLETE, owned), values).rowcount:
        return True
    if owned and db.execute(_sql(_EXISTS, owned), mine).fetchone() is None:
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

_EV = tables.lifecycle_events
_event_json = _binder(_EV.c.diagnostics)


def executemany(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        _driver(conn).executemany(sql, rows)


SET_TARGET_STATUS = (
    "UPDATE deployment_targets SET status = ?, last_updated_at = ? "
    "WHERE deployment_id = ? AND target_id = ?"
)
TOUCH_TARGET = (
    "UPDATE deployment_targets SET last_updated_at = ? WHERE deployment_id = ? AND target_id = ?"
)
INSERT_EVENT = (
    "INSERT INTO lifecycle_events "
    "(deployment_id, target_id, position, name, status, start_time, end_time, diagnostics) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SET_EVENT = (
    "UPDATE lifecycle_events SET status = ?, start_time = ?, end_time = ?, diagnostics = ? "
    "WHERE deployment_id = ? AND target_id = ? AND position = ?"
)
# ``+closed_at``: not an index term. Otherwise SQLite (no statistics) picks the index on
# (deployment_id, closed_at) and scans every open command of the deployment for each name.
CLOSE_COMMANDS = (
    "UPDATE host_commands SET status = 'Closed', closed_at = ? "
    "WHERE deployment_id = ? AND instance_name = ? AND +closed_at IS NULL"
)
INSERT_COMMAND = (
    "INSERT INTO host_commands (command_id, deployment_id, instance_name, lifecycle_event, "
    "status, seen_status, nonce, dispatched_at, noop) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
MARK_SEEN = "UPDATE host_commands SET seen_status = ? WHERE command_id = ?"


def time_value(value: datetime | None) -> Any:
    """A time as the store's columns bind it."""
    return _time(value)


def event_diagnostics(value: dict[str, Any] | None) -> Any:
    """Lifecycle-event diagnostics as their column binds them."""
    return _event_json(value)


def flag(value: bool) -> Any:
    return _flag(value)
