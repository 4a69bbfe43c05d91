"""What the engine keeps between passes: the open commands (only those with news are read back)
and the targets' instance rows (up to a second old, never trusted for a dead-agent verdict)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from opendeploy.engine.dispatch import HostNotifier
from opendeploy.engine.worker import EngineWorker
from opendeploy.settings import ServerSettings
from opendeploy.store import tables
from opendeploy.store.database import Store
from opendeploy.store.engine_store import (
    INSTANCE_ROWS_MAX_AGE_SECONDS,
    InstanceRows,
    SqlEngineStore,
)
from tests._stored import deployment_to_instances

NAMES = ("web-1", "web-2")


@dataclass
class World:
    store: Store
    worker: EngineWorker
    deployment_id: str


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    now = datetime.now(UTC)
    settings = ServerSettings(
        data_dir=tmp_path / "data", database_url=database_url, agent_dead_after_seconds=15.0
    )
    store = Store.open(database_url)
    suffix = tmp_path.name[-20:].replace("_", "-")  # PostgreSQL's database is shared
    names = [f"{n}-{suffix}" for n in NAMES]
    dep = deployment_to_instances(store, names, now=now, last_seen=now, app=f"app-{suffix}")
    worker = EngineWorker(store, settings, notifier=HostNotifier())
    # As if the engine had been watching for an hour: no restart grace for silent agents.
    worker.started_at = now - timedelta(hours=1)
    try:
        yield World(store, worker, dep)
    finally:
        store.close()


def _kept(worker: EngineWorker) -> SqlEngineStore:
    """The worker's SQL engine store, which keeps targets and instance rows between passes."""
    assert isinstance(worker.engine_store, SqlEngineStore)
    return worker.engine_store


def _open_command(world: World, name: str) -> dict[str, object]:
    commands = world.store.commands.open_commands(world.deployment_id)
    return commands[next(n for n in commands if n.startswith(name))]


def _unreachable(world: World) -> dict[str, object]:
    i = tables.on_premises_instances
    with world.store.database.read() as conn:
        rows = conn.execute(select(i.c.name, i.c.unreachable_since)).all()
    return {r.name: r.unreachable_since for r in rows if r.name.startswith(NAMES)}


def test_reports_reach_the_engine_through_its_cache(world: World) -> None:
    worker, dep = world.worker, world.deployment_id
    assert worker.step(dep)  # starts, dispatches ApplicationStop to both
    first = _open_command(world, "web-1")
    assert first["lifecycle_event"] == "ApplicationStop"
    now = datetime.now(UTC)
    assert world.store.commands.acknowledge(str(first["command_id"]), now=now, noop=False)
    assert worker.step(dep)  # the acknowledgement: the event is in progress
    cached = _kept(worker)._targets[dep].commands
    assert [n for n, c in cached.items() if c.acknowledged_at is not None] == [
        first["instance_name"]
    ]
    world.store.commands.complete(
        str(first["command_id"]), now=now, result="Succeeded", diagnostics=None
    )
    assert worker.step(dep)  # the completion: web-1 goes on to DownloadBundle
    assert _open_command(world, "web-1")["lifecycle_event"] == "DownloadBundle"
    assert _open_command(world, "web-2")["lifecycle_event"] == "ApplicationStop"
    assert not worker.step(dep)  # nothing new: nothing changes


def test_a_dead_agent_verdict_is_made_on_fresh_instance_rows(world: World) -> None:
    worker, dep = world.worker, world.deployment_id
    assert worker.step(dep)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    rows = _kept(worker)._instances[dep].rows
    # Rows kept from an earlier pass that say both agents went quiet long ago; the store says
    # they were seen just now. The verdict must follow the store.
    _kept(worker)._instances[dep] = InstanceRows(
        time.monotonic(), {name: (long_ago, None, None) for name in rows}
    )
    worker.step(dep)
    assert set(_unreachable(world).values()) == {None}
    assert {row[0] for row in _kept(worker)._instances[dep].rows.values()} != {long_ago}
    # Whereas agents the store also has as quiet for minutes are unreachable (once the kept
    # rows, which say they are alive, are over a second old).
    i = tables.on_premises_instances
    with world.store.database.write() as conn:
        conn.execute(i.update().where(i.c.name.in_(list(rows))).values(last_seen_at=long_ago))
    kept = _kept(worker)._instances[dep]
    _kept(worker)._instances[dep] = InstanceRows(
        kept.read_at - 2 * INSTANCE_ROWS_MAX_AGE_SECONDS, kept.rows
    )
    worker.step(dep)
    assert None not in set(_unreachable(world).values())
