"""The SQLite fast paths store and read exactly what SQLAlchemy Core does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from opendeploy.engine import worker
from opendeploy.store import commands as c
from opendeploy.store import sqlite_fast, tables
from opendeploy.store.database import Store
from tests._stored import bare_deployment

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        yield s
    finally:
        s.close()


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
                for name in ("web-1", "web-2", "web-3")
            ],
        )
    with store.database.read() as conn:
        fast = sqlite_fast.target_instances(conn, dep)
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
    statements = [v for v in vars(sqlite_fast).values() if isinstance(v, sqlite_fast.Many)]
    assert len(statements) == 7
    for many in statements:
        assert many.sql.count("?") == len(many._convert), many.sql
