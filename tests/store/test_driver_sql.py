"""The plain-SQL paths (``store.driver_sql``) store and read exactly what SQLAlchemy Core does,
on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, insert

from opendeploy.store import commands as c
from opendeploy.store import driver_sql, tables
from opendeploy.store import engine_store as worker
from opendeploy.store.database import Store
from tests._stored import bare_deployment

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _add_targets(conn: Connection, dep: str, names: list[str]) -> None:
    conn.execute(
        insert(tables.deployment_targets),
        [
            {
                "deployment_id": dep,
                "target_id": name,
                "target_arn": f"arn:aws:codedeploy:us-east-1:0:instance/{name}_x",
                "target_type": "InstanceTarget",
                "status": "Pending",
                "last_updated_at": T0,
            }
            for name in names
        ],
    )


def test_target_instances_match_the_core_query(store: Store) -> None:
    dep = bare_deployment(store, "d-AAAAAAAAA", now=T0)
    times = {
        "web-1": (T0, None, None),
        "web-2": (None, T0 + timedelta(seconds=1), T0 + timedelta(microseconds=7)),
        "web-3": (T0 - timedelta(days=400), None, T0),
    }
    with store.database.write() as conn:
        conn.execute(
            insert(tables.on_premises_instances),
            [
                {
                    "name": name,
                    "instance_arn": f"arn:aws:codedeploy:us-east-1:0:instance/{name}_x",
                    "register_time": T0,
                    "last_seen_at": seen,
                    "deregister_time": gone,
                    "unreachable_since": unreachable,
                }
                for name, (seen, gone, unreachable) in times.items()
            ],
        )
        _add_targets(conn, dep, ["web-1", "web-2", "web-3"])
    with store.database.read() as conn:
        fast = driver_sql.target_instances(conn, dep)
        core = {
            r.name: (r.last_seen_at, r.deregister_time, r.unreachable_since)
            for r in conn.execute(worker._TARGET_INSTANCES, {"b_dep": dep}).all()
        }
    assert fast == core == times


def test_reports_are_stored_as_core_stores_them(store: Store) -> None:
    dep = bare_deployment(store, "d-AAAAAAAAA", now=T0)
    with store.database.write() as conn:
        first = c.dispatch(conn, dep, "web-1", "ApplicationStop", T0)
    claimed = store.commands.claim_next("web-1", now=T0 + timedelta(seconds=1))
    assert claimed is not None and claimed["command_id"] == first
    assert claimed["nonce"] == store.commands.get(first)["nonce"]  # type: ignore[index]
    assert store.commands.acknowledge(first, now=T0 + timedelta(seconds=2), noop=True) == (
        "InProgress"
    )
    diag = {"errorCode": "Success", "message": "é ✓", "scriptName": "", "logTail": "a\nb"}
    done = T0 + timedelta(seconds=3, microseconds=1)
    assert store.commands.complete(first, now=done, result="Succeeded", diagnostics=diag)
    row = store.commands.get(first)  # read back through Core
    assert row is not None
    assert row["delivered_at"] == T0 + timedelta(seconds=1)
    assert row["acknowledged_at"] == T0 + timedelta(seconds=2)
    assert row["completed_at"] == done
    assert (row["status"], row["result"], row["noop"], row["diagnostics"]) == (
        "Succeeded",
        "Succeeded",
        True,
        diag,
    )
    # Stored times compare as Core's bound times do (the claim's staleness test relies on it).
    assert store.commands.claim_next("web-1", now=T0 + c.REDELIVER_AFTER * 2) is None


def test_each_many_statement_names_a_value_for_every_placeholder() -> None:
    statements = [v for v in vars(driver_sql).values() if isinstance(v, driver_sql.Many)]
    assert len(statements) == 9
    for many in statements:
        assert many.sql["sqlite"].count("?") == len(many.keys), many.sql
        assert many.sql["postgresql"].count("%b") == len(many.postgresql_keys), many.sql
        assert "?" not in many.sql["postgresql"], many.sql


def _engine_writes(store: Store, dep: str) -> list[str]:
    """A pass's worth of the engine's writes to ``dep`` (two targets): their command ids."""
    with store.database.write() as conn:
        _add_targets(conn, dep, ["web-1", "web-2"])
        driver_sql.execute_many(
            conn,
            worker._INSERT_EVENT,
            driver_sql.INSERT_EVENT,
            [
                {
                    "deployment_id": dep,
                    "target_id": name,
                    "position": position,
                    "name": event,
                    "status": "Pending",
                    "start_time": None,
                    "end_time": None,
                    "diagnostics": None,
                }
                for name in ("web-1", "web-2")
                for position, event in enumerate(("ApplicationStop", "DownloadBundle"))
            ],
        )
        ids = c.dispatch_many(
            conn, dep, [("web-1", "ApplicationStop", "agent"), ("web-2", "Install", "server")], T0
        )
        diag = {"errorCode": "ScriptFailed", "message": "é ✓", "scriptName": "x", "logTail": ""}
        driver_sql.execute_many(
            conn,
            worker._SET_EVENT,
            driver_sql.SET_EVENT,
            [
                {
                    "b_dep": dep,
                    "b_target": "web-1",
                    "b_position": 0,
                    "b_status": "Failed",
                    "b_start": T0,
                    "b_end": T0 + timedelta(microseconds=1),
                    "b_diagnostics": diag,
                }
            ],
        )
        later = T0 + timedelta(seconds=5)
        driver_sql.execute_many(
            conn,
            worker._SET_TARGET_STATUS,
            driver_sql.SET_TARGET_STATUS,
            [{"b_dep": dep, "b_target": "web-1", "b_status": "Failed", "b_at": later}],
        )
        driver_sql.execute_many(
            conn,
            worker._TOUCH_TARGET,
            driver_sql.TOUCH_TARGET,
            [{"b_dep": dep, "b_target": "web-2", "b_at": later}],
        )
        c.mark_seen(conn, [(ids[1], "InProgress")])
        c.close(conn, dep, ["web-1"], later)
    return ids


def _rows(store: Store, dep: str) -> dict[str, list[dict[str, object]]]:
    """What the engine's writes left for ``dep``, without the ids that differ from run to run."""
    from sqlalchemy import select

    out: dict[str, list[dict[str, object]]] = {}
    skip = {"deployment_id", "command_id", "nonce"}
    with store.database.read() as conn:
        for table, order in (
            (tables.deployment_targets, "target_id"),
            (tables.lifecycle_events, "position"),
            (tables.host_commands, "instance_name"),
        ):
            rows = conn.execute(
                select(table)
                .where(table.c.deployment_id == dep)
                .order_by(table.c[order], *table.primary_key.columns)
            ).mappings()
            out[table.name] = [{k: v for k, v in r.items() if k not in skip} for r in rows]
    return out


def test_the_engines_writes_store_what_core_stores(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = bare_deployment(store, "d-AAAAAAAAA", now=T0)
    _engine_writes(store, fast)
    core = bare_deployment(store, "d-BBBBBBBBB", now=T0)
    monkeypatch.setattr(driver_sql, "supports", lambda conn: False)
    _engine_writes(store, core)
    fast_rows, core_rows = _rows(store, fast), _rows(store, core)
    assert fast_rows == core_rows
    commands = fast_rows["host_commands"]
    assert [
        (r["instance_name"], r["status"], r["seen_status"], r["executor"]) for r in commands
    ] == [
        ("web-1", "Closed", "Pending", "agent"),
        # A server step starts Queued (no agent's poll claims it).
        ("web-2", "Queued", "InProgress", "server"),
    ]
    events = fast_rows["lifecycle_events"]
    assert events[0]["diagnostics"] == {
        "errorCode": "ScriptFailed",
        "message": "é ✓",
        "scriptName": "x",
        "logTail": "",
    }


@pytest.mark.postgres
def test_mark_seen_passes_over_a_command_a_report_is_writing(postgres_url: str) -> None:
    """PostgreSQL: the engine does not wait for (and so cannot deadlock with) an agent's report
    in flight; the report moves the status, so the engine reads the command again anyway."""
    from sqlalchemy import select, update

    s = Store.open(postgres_url)
    try:
        dep = bare_deployment(s, "d-AAAAAAAAA", now=T0)
        with s.database.write() as conn:
            held, free = c.dispatch_many(
                conn, dep, [("web-1", "Install", "agent"), ("web-2", "Install", "agent")], T0
            )
        hc = tables.host_commands
        with s.database.write() as conn:
            conn.execute(update(hc).values(status="InProgress"))
        with s.database.engine.connect() as report:
            report.execute(update(hc).where(hc.c.command_id == held).values(status="Succeeded"))
            with s.database.write() as conn:
                # Waiting for the report's lock would fail here rather than hang the test.
                conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                c.mark_seen(conn, [(held, "InProgress"), (free, "InProgress")])
            report.commit()
        with s.database.read() as conn:
            seen: dict[str, str] = dict(
                conn.execute(select(hc.c.command_id, hc.c.seen_status)).all()
            )
        assert seen == {held: "Pending", free: "InProgress"}
        with s.database.read() as conn:
            changed = c.changed_commands(conn, dep)
        assert [r["command_id"] for r in changed.values()] == [held]
    finally:
        s.close()


def _touched(store: Store, prefix: str) -> dict[str, tuple[object, object]]:
    """Three instances' (last_seen_at, unreachable_since) after signs of life at T0 + 5 s."""
    from sqlalchemy import select

    i = tables.on_premises_instances
    start = {"quiet": (None, T0), "newer": (T0 + timedelta(seconds=10), T0), "older": (T0, None)}
    with store.database.write() as conn:
        conn.execute(
            insert(i),
            [
                {
                    "name": prefix + name,
                    "instance_arn": f"arn:aws:codedeploy:us-east-1:0:instance/{prefix}{name}_x",
                    "register_time": T0,
                    "last_seen_at": seen,
                    "unreachable_since": unreachable,
                }
                for name, (seen, unreachable) in start.items()
            ],
        )
    store.instances.touch_many({prefix + name: T0 + timedelta(seconds=5) for name in start})
    with store.database.read() as conn:
        rows = conn.execute(
            select(i.c.name, i.c.last_seen_at, i.c.unreachable_since).where(
                i.c.name.startswith(prefix)
            )
        ).all()
    return {str(name).removeprefix(prefix): (seen, unreachable) for name, seen, unreachable in rows}


def test_signs_of_life_are_stored_as_core_stores_them(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _touched(store, "fast-")
    monkeypatch.setattr(driver_sql, "supports", lambda conn: False)
    assert (
        _touched(store, "core-")
        == fast
        == {
            "quiet": (T0 + timedelta(seconds=5), None),
            "newer": (T0 + timedelta(seconds=10), T0),  # never moved back
            "older": (T0 + timedelta(seconds=5), None),
        }
    )


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2300, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
        ),
    )
)
def test_sqlite_times_are_the_text_core_stores(value: datetime) -> None:
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    column = tables.host_commands.c.delivered_at
    core = column.type.dialect_impl(dialect).bind_processor(dialect)
    assert core is not None
    assert driver_sql._sqlite_utc_text(value) == core(value)


def test_a_naive_time_is_refused_as_core_refuses_it() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        driver_sql._sqlite_utc_text(datetime(2026, 1, 1))


def _reports(store: Store, dep: str) -> list[object]:
    """A command of ``dep`` claimed, acknowledged and completed, a second completion too late,
    an acknowledgement and a completion by a host that does not own it: what each answered."""
    with store.database.write() as conn:
        first = c.dispatch(conn, dep, "web-1", "ApplicationStop", T0)
    diag = {"errorCode": "Success", "message": "é ✓", "scriptName": "", "logTail": "a\nb"}
    claimed = store.commands.claim_next("web-1", now=T0 + timedelta(seconds=1))
    assert claimed is not None
    return [
        (claimed["command_id"] == first, claimed["others_deliverable"]),
        store.commands.acknowledge(first, now=T0 + timedelta(seconds=2), noop=True),
        store.commands.acknowledge(first, now=T0, noop=False, owner="web-2"),
        store.commands.complete(
            first, now=T0 + timedelta(seconds=3), result="Succeeded", diagnostics=diag
        ),
        store.commands.complete(first, now=T0, result="Failed", diagnostics=None),
        store.commands.complete(first, now=T0, result="Failed", diagnostics=None, owner="web-2"),
        store.commands.acknowledge(first, now=T0, noop=False),
        store.commands.claim_next("web-1", now=T0 + c.REDELIVER_AFTER * 2),
    ]


def test_the_reports_answer_and_store_what_core_does(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = bare_deployment(store, "d-AAAAAAAAA", now=T0)
    fast_answers = _reports(store, fast)
    core = bare_deployment(store, "d-BBBBBBBBB", now=T0)
    monkeypatch.setattr(driver_sql, "supports", lambda conn: False)
    assert (
        _reports(store, core)
        == fast_answers
        == [
            (True, False),
            "InProgress",
            None,
            True,
            False,
            None,
            "Succeeded",
            None,
        ]
    )
    assert _rows(store, core) == _rows(store, fast)
