"""The agents' hottest writes and the engine's per-pass writes as plain SQL on the driver's
connection, inside the transaction SQLAlchemy opened (SQLite and PostgreSQL).

Each of a fleet's lifecycle events costs a claim (a query and an update), an acknowledgement and
a completion, and each pass of the engine writes a row or more per target that moved. Through
SQLAlchemy Core each of those statements cost about 30 us of Python (execution context,
parameter processing, a result object) against 5 us for the statement itself on SQLite, most of
what the writes cost the server; on PostgreSQL Core's share was about a third of the server's
CPU in a fleet. Here they are plain SQL on the ``sqlite3`` or ``psycopg`` connection that
SQLAlchemy's transaction holds (the transaction's commit ends them), with values converted by the
columns' own SQLAlchemy types for that dialect, so what is stored is exactly what the Core
statements store. The Core statements stay beside them (in ``commands``, ``instances`` and
``engine.worker``) for any other dialect; ``tests/store/test_driver_sql.py`` compares the two
on both databases.

SQL is written with ``?`` placeholders (SQLite's), translated to psycopg's ``%s``; where the
two dialects need different SQL, the statement says so. The statements run for many rows at
once (:class:`Many`) are one ``executemany`` on SQLite and, on PostgreSQL, one statement over
arrays of the rows' values (``unnest``), sent in binary (``%b``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Executable, String
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.engine import Dialect

from opendeploy.store import tables

_C = tables.host_commands
SQLITE = "sqlite"
POSTGRESQL = "postgresql"
_DIALECTS: dict[str, Dialect] = {SQLITE: sqlite.dialect(), POSTGRESQL: psycopg.dialect()}  # type: ignore[no-untyped-call]


def supports(conn: Connection) -> bool:
    """Whether this module has SQL for ``conn``'s dialect."""
    return conn.dialect.name in _DIALECTS


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """What :class:`~opendeploy.store.tables.UTCDateTime` and SQLite's DATETIME make of a time
    (naive UTC text, always with microseconds), without their ``%`` formatting of seven
    fields: at ten thousand hosts that formatting was 3% of the server's CPU."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
    if value.utcoffset():
        value = value.astimezone(UTC)
    text = value.replace(tzinfo=None).isoformat(" ")
    return text if value.microsecond else text + ".000000"


def _processor(column: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The conversion SQLAlchemy applies to ``column``'s values on ``dialect`` (the dialect's
    own implementation of the type: PostgreSQL's JSON wraps values for psycopg, SQLite's
    serializes them); None where values go as they are."""
    if dialect.name == SQLITE and isinstance(column.type, tables.UTCDateTime):
        return _sqlite_utc_text
    return column.type.dialect_impl(dialect).bind_processor(dialect)  # type: ignore[no-any-return]


def _binder(column: Any, dialect: str) -> Callable[[Any], Any]:
    process = _processor(column, _DIALECTS[dialect])
    return process if process is not None else (lambda value: value)


def _converters(column: Any) -> dict[str, Callable[[Any], Any]]:
    return {name: _binder(column, name) for name in _DIALECTS}


_time = _converters(_C.c.delivered_at)
_flag = _converters(_C.c.noop)
_json = _converters(_C.c.diagnostics)


def _sql(sqlite_sql: str, postgresql_sql: str | None = None) -> dict[str, str]:
    """A statement by dialect: ``?`` placeholders become ``%s`` on PostgreSQL (none of these
    statements holds a literal ``?`` or ``%``)."""
    pg = postgresql_sql if postgresql_sql is not None else sqlite_sql
    return {SQLITE: sqlite_sql, POSTGRESQL: pg.replace("?", "%s")}


#: SQLite: the oldest deliverable command (and whether there is another), then its mark.
_NEXT_SQLITE = (
    "SELECT command_id, deployment_id, instance_name, lifecycle_event, status, nonce "
    "FROM host_commands WHERE instance_name = ? AND status = 'Pending' AND closed_at IS NULL "
    "AND (delivered_at IS NULL OR delivered_at < ?) "
    "ORDER BY dispatched_at, command_id LIMIT 2"
)
_MARK_DELIVERED_SQLITE = "UPDATE host_commands SET delivered_at = ? WHERE command_id = ?"
#: PostgreSQL: the read and the mark in one statement (one round trip and one statement's
#: driver cost fewer for every poll that takes a command). Two polls of one host in two
#: transactions: the second skips what the first holds. A data-modifying WITH runs exactly
#: once whether or not the query reads it; the rows come back as they were before the mark.
_CLAIM_POSTGRESQL = (
    "WITH next AS ("
    "SELECT command_id, deployment_id, instance_name, lifecycle_event, status, nonce, "
    "dispatched_at FROM host_commands WHERE instance_name = %s AND status = 'Pending' "
    "AND closed_at IS NULL AND (delivered_at IS NULL OR delivered_at < %s) "
    "ORDER BY dispatched_at, command_id LIMIT 2 FOR UPDATE SKIP LOCKED), "
    "marked AS (UPDATE host_commands SET delivered_at = %s WHERE command_id = "
    "(SELECT command_id FROM next ORDER BY dispatched_at, command_id LIMIT 1)) "
    "SELECT command_id, deployment_id, instance_name, lifecycle_event, status, nonce "
    "FROM next ORDER BY dispatched_at, command_id"
)


def _by_owned(template: str) -> dict[bool, dict[str, str]]:
    """``template`` for a command named by id alone, and by id and owning instance."""
    return {
        owned: _sql(template.format(owned=" AND instance_name = ?" if owned else ""))
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


def _driver(conn: Connection) -> tuple[Any, str]:
    """The DBAPI connection under ``conn`` and its dialect's name."""
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver, conn.dialect.name


def claim(
    conn: Connection, instance_name: str, now: datetime, stale: datetime
) -> dict[str, Any] | None:
    """The oldest deliverable command of the instance, marked delivered at ``now``."""
    db, dialect = _driver(conn)
    time = _time[dialect]
    if dialect == POSTGRESQL:
        rows = db.execute(_CLAIM_POSTGRESQL, (instance_name, time(stale), time(now))).fetchall()
    else:
        rows = db.execute(_NEXT_SQLITE, (instance_name, time(stale))).fetchall()
        if rows:
            db.execute(_MARK_DELIVERED_SQLITE, (time(now), rows[0][0]))
    if not rows:
        return None
    command_id, deployment_id, name, event, status, nonce = rows[0]
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
    db, dialect = _driver(conn)
    owned = owner is not None
    mine = (command_id, owner) if owned else (command_id,)
    values = (_time[dialect](now), _flag[dialect](noop), *mine)
    if db.execute(_ACKNOWLEDGE[owned][dialect], values).rowcount:
        return True
    row = db.execute(_STATUS_OF[owned][dialect], mine).fetchone()
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
    db, dialect = _driver(conn)
    owned = owner is not None
    mine = (command_id, owner) if owned else (command_id,)
    at = _time[dialect](now)
    values = (result, result, at, _json[dialect](diagnostics), at, *mine)
    if db.execute(_COMPLETE[owned][dialect], values).rowcount:
        return True
    if owned and db.execute(_EXISTS[owned][dialect], mine).fetchone() is None:
        return None
    return False


_TARGET_INSTANCES = _sql(
    "SELECT i.name, i.last_seen_at, i.deregister_time, i.unreachable_since "
    "FROM on_premises_instances AS i JOIN deployment_targets AS t ON t.target_id = i.name "
    "WHERE t.deployment_id = ?"
)


def _sqlite_time(value: str | None) -> datetime | None:
    """A time as SQLAlchemy's SQLite DATETIME stores it (naive UTC text), made aware."""
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _postgresql_time(value: datetime | None) -> datetime | None:
    """A ``timestamptz`` as psycopg reads it (in the session's zone), in UTC."""
    if value is None or value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)


_STORED_TIME: dict[str, Callable[[Any], datetime | None]] = {
    SQLITE: _sqlite_time,
    POSTGRESQL: _postgresql_time,
}


def target_instances(
    conn: Connection, deployment_id: str
) -> dict[str, tuple[datetime | None, datetime | None, datetime | None]]:
    """Target -> (last_seen_at, deregister_time, unreachable_since) of a deployment's instances.

    The engine reads this for every target of a deployment once a second; through SQLAlchemy's
    result processing the three times of ten thousand rows were a large part of its pass."""
    db, dialect = _driver(conn)
    rows = db.execute(_TARGET_INSTANCES[dialect], (deployment_id,)).fetchall()
    if dialect == POSTGRESQL and db.info.timezone is UTC:
        # The store's sessions are in UTC (database._pooled_engine): the times are as read.
        return {name: (seen, gone, unreachable) for name, seen, gone, unreachable in rows}
    t = _STORED_TIME[dialect]
    return {name: (t(seen), t(gone), t(unreachable)) for name, seen, gone, unreachable in rows}


# --- the engine's writes of a pass (one executemany per kind) --------------------------------

_TG = tables.deployment_targets
_EV = tables.lifecycle_events


class Many:
    """A statement run with many parameter sets (the parameter dicts of the Core statement it
    stands for), and for each ``?`` placeholder in order the key of those dicts and the column
    whose type converts the value.

    On SQLite it is one ``executemany``. On PostgreSQL it is one statement for all the rows:
    ``postgresql_sql`` takes each key's values as one array (``unnest``), in the order of
    ``postgresql_keys`` (by default the placeholders'). psycopg's ``executemany`` sends and
    reads back one statement per row, and at a fleet's scale that was a tenth of the server's
    CPU."""

    def __init__(
        self,
        sql: str,
        params: Sequence[tuple[str, Any]],
        *,
        postgresql_sql: str,
        postgresql_keys: Sequence[str] | None = None,
    ) -> None:
        columns = dict(params)
        self.keys = [key for key, _ in params]
        self.postgresql_keys = list(postgresql_keys) if postgresql_keys is not None else self.keys
        # %b: arrays go in binary, which psycopg dumps several times faster than as text (3,000
        # strings and times: 1.7 ms against 12 ms of the server's CPU).
        self.sql = {SQLITE: sql, POSTGRESQL: postgresql_sql.replace("?", "%b")}
        # None where the column's type binds the value as it is.
        self._convert = {
            SQLITE: [(key, _processor(columns[key], _DIALECTS[SQLITE])) for key in self.keys],
            POSTGRESQL: [
                (key, _processor(columns[key], _DIALECTS[POSTGRESQL]))
                for key in self.postgresql_keys
            ],
        }

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run it for ``rows`` (parameter dicts)."""
        if not rows:
            return
        db, dialect = _driver(conn)
        convert = self._convert[dialect]
        if dialect == POSTGRESQL:
            arrays = [
                [r[key] for r in rows] if process is None else [process(r[key]) for r in rows]
                for key, process in convert
            ]
            db.execute(self.sql[dialect], arrays)
            return
        values = [
            tuple(r[key] if process is None else process(r[key]) for key, process in convert)
            for r in rows
        ]
        db.executemany(self.sql[dialect], values)


def _array(column: Any) -> str:
    """A placeholder for an array of ``column``'s values, cast to its PostgreSQL type; strings
    as ``text``, since an explicit cast to ``varchar(n)`` would cut a longer value silently
    where storing it into the column fails, as through Core."""
    if isinstance(column.type, String):
        return "?::text[]"
    return f"?::{column.type.compile(dialect=_DIALECTS[POSTGRESQL])}[]"


def execute_many(
    conn: Connection, core: Executable, fast: Many, rows: Sequence[Mapping[str, Any]]
) -> None:
    """``core`` with ``rows`` (its parameter dicts), as ``fast`` where this module has SQL."""
    if not rows:
        return
    if supports(conn):
        fast.execute(conn, rows)
    else:
        conn.execute(core, list(rows))


def _insert(table: Any, columns: Sequence[str]) -> Many:
    """An INSERT of ``columns`` into ``table``, from dicts keyed by column name."""
    names = ", ".join(columns)
    return Many(
        f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' for _ in columns)})",
        [(name, table.c[name]) for name in columns],
        postgresql_sql=f"INSERT INTO {table.name} ({names}) "
        f"SELECT * FROM unnest({', '.join(_array(table.c[name]) for name in columns)})",
    )


def _unnest(alias: str, params: Sequence[tuple[str, Any]]) -> str:
    """``unnest(<arrays>) AS alias(<keys>)``: the rows of a PostgreSQL UPDATE … FROM."""
    arrays = ", ".join(_array(column) for _, column in params)
    return f"unnest({arrays}) AS {alias}({', '.join(key for key, _ in params)})"


def _update(
    table: Any,
    sets: Sequence[tuple[str, str]],
    where: Sequence[tuple[str, str]],
    *,
    fixed: str = "",
    sqlite_also: str = "",
    postgresql_also: str = "",
) -> Many:
    """``UPDATE table SET <column = key …> WHERE <column = key …>`` from dicts with those keys
    (``fixed``: a literal assignment first; ``*_also``: a literal condition added to the WHERE,
    the PostgreSQL one naming the table as ``t``). One executemany on SQLite; on PostgreSQL one
    ``UPDATE … FROM unnest(…)`` for all the rows.

    Where the same row appears twice in one call, executemany applies both in order and
    UPDATE … FROM one of them: the engine never names a row twice in one write."""
    params = [(key, table.c[column]) for column, key in (*sets, *where)]
    first = [fixed] if fixed else []
    sqlite_where = [f"{column} = ?" for column, _ in where] + ([sqlite_also] if sqlite_also else [])
    pg_where = [f"t.{column} = v.{key}" for column, key in where]
    pg_where += [postgresql_also] if postgresql_also else []
    return Many(
        f"UPDATE {table.name} SET {', '.join(first + [f'{c} = ?' for c, _ in sets])} "
        f"WHERE {' AND '.join(sqlite_where)}",
        params,
        postgresql_sql=f"UPDATE {table.name} AS t "
        f"SET {', '.join(first + [f'{c} = v.{k}' for c, k in sets])} "
        f"FROM {_unnest('v', params)} WHERE {' AND '.join(pg_where)}",
    )


_TARGET = [("deployment_id", "b_dep"), ("target_id", "b_target")]
SET_TARGET_STATUS = _update(_TG, [("status", "b_status"), ("last_updated_at", "b_at")], _TARGET)
TOUCH_TARGET = _update(_TG, [("last_updated_at", "b_at")], _TARGET)
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
SET_EVENT = _update(
    _EV,
    [
        ("status", "b_status"),
        ("start_time", "b_start"),
        ("end_time", "b_end"),
        ("diagnostics", "b_diagnostics"),
    ],
    [*_TARGET, ("position", "b_position")],
)
# ``+closed_at``: not an index term. Otherwise SQLite (no statistics) picks the index on
# (deployment_id, closed_at) and scans every open command of the deployment for each name.
CLOSE_COMMANDS = _update(
    _C,
    [("closed_at", "b_now")],
    [("deployment_id", "b_dep"), ("instance_name", "b_name")],
    fixed="status = 'Closed'",
    sqlite_also="+closed_at IS NULL",
    postgresql_also="t.closed_at IS NULL",
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
        "executor",
    ],  # fmt: skip
)
INSERT_DEPLOYMENT_EVENT = _insert(
    tables.deployment_events,
    ["deployment_id", "instance_id", "event_type", "status", "occurred_at", "detail"],
)
# On PostgreSQL a command whose row an agent's report holds is left as it is: the engine would
# wait for that report's transaction (which holds other commands an engine statement may want:
# a deadlock, which PostgreSQL only breaks after a second), and the report changes the status
# anyway, so that the next pass reads the command again. Seen statuses only save reads.
_MARK_SEEN = [("b_status", _C.c.seen_status), ("b_id", _C.c.command_id)]
MARK_SEEN = Many(
    "UPDATE host_commands SET seen_status = ? WHERE command_id = ?",
    _MARK_SEEN,
    postgresql_sql="UPDATE host_commands AS h SET seen_status = v.b_status "
    f"FROM {_unnest('v', _MARK_SEEN)} WHERE h.command_id = v.b_id AND h.command_id IN "
    f"(SELECT command_id FROM host_commands WHERE command_id = ANY({_array(_C.c.command_id)}) "
    "FOR UPDATE SKIP LOCKED)",
    postgresql_keys=["b_status", "b_id", "b_id"],
)
_I = tables.on_premises_instances
_TOUCH_INSTANCES = [("b_seen", _I.c.last_seen_at), ("b_name", _I.c.name)]
# A sign of life never moves ``last_seen_at`` back (a later call, or another replica, may have
# written a newer one).
TOUCH_INSTANCES = Many(
    "UPDATE on_premises_instances SET last_seen_at = ?, unreachable_since = NULL "
    "WHERE name = ? AND (last_seen_at IS NULL OR last_seen_at < ?)",
    [*_TOUCH_INSTANCES, ("b_seen", _I.c.last_seen_at)],
    postgresql_sql="UPDATE on_premises_instances AS i SET last_seen_at = v.b_seen, "
    f"unreachable_since = NULL FROM {_unnest('v', _TOUCH_INSTANCES)} "
    "WHERE i.name = v.b_name AND (i.last_seen_at IS NULL OR i.last_seen_at < v.b_seen)",
    postgresql_keys=["b_seen", "b_name"],
)
