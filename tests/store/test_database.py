from __future__ import annotations

import importlib.resources
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import event, select, text

from opendeploy.store.database import Store, engine_url
from opendeploy.store.tables import applications


def test_engine_url_uses_psycopg3_for_postgresql() -> None:
    assert engine_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"


def test_open_migrates_and_reopens(empty_database_url: str) -> None:
    store = Store.open(empty_database_url)
    try:
        with store.database.read() as conn:
            version: str = conn.execute(
                text("SELECT version_num FROM alembic_version")
            ).scalar_one()
        # The newest migration shipped in the package is the one applied.
        scripts = ScriptDirectory(str(importlib.resources.files("opendeploy.store") / "migrations"))
        assert [version] == scripts.get_heads()
    finally:
        store.close()
    Store.open(empty_database_url).close()  # migrating again is a no-op


def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    try:
        with store.database.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


def test_access_keys(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        assert store.access_keys.first("admin") is None
        key_id, secret = store.access_keys.create(principal="admin", kind="admin")
        assert key_id.startswith("AKIA") and len(key_id) == 20 and len(secret) == 40
        store.access_keys.create(principal="host-1", kind="instance")
        assert store.access_keys.get_secret(key_id) == secret
        assert store.access_keys.get_secret("AKIANOPE") is None
        assert store.access_keys.first("admin") == (key_id, secret)
        assert store.access_keys.get_principal(key_id) == "admin"
    finally:
        store.close()


def test_times_come_back_aware_utc(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        when = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        store.applications.create(name="a", compute_platform="Server", now=when)
        assert store.applications.require("a")["create_time"] == when
    finally:
        store.close()


@pytest.mark.postgres
def test_postgresql_sessions_run_in_utc_whatever_the_default_zone(postgres_url: str) -> None:
    # A server (or role, or URL) whose default zone is not UTC: psycopg would read every
    # timestamptz in it. The store's sessions switch to UTC, so times come back in UTC as is.
    url = f"{postgres_url}?options=-c%20timezone%3DAsia/Kolkata"
    store = Store.open(url)
    try:
        when = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        store.applications.create(name="a", compute_platform="Server", now=when)
        created = store.applications.require("a")["create_time"]
        assert created == when and created.tzinfo is UTC
        with store.database.read() as conn:
            assert conn.execute(text("SHOW TIME ZONE")).scalar_one() == "UTC"
            # A session in another zone after all (a pooler that loses the SET): the same
            # instant, still handed out in UTC.
            conn.execute(text("SET LOCAL TIME ZONE 'Asia/Kolkata'"))
            local: datetime = conn.execute(select(applications.c.create_time)).scalar_one()
            assert local == when and local.tzinfo is UTC
    finally:
        store.close()


def test_concurrent_writers_queue_instead_of_failing(database_url: str) -> None:
    store = Store.open(database_url)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                store.access_keys.create(principal=f"p{n}-{i}", kind="instance")
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
    finally:
        store.close()


def test_sqlite_writers_queue_without_taking_the_connection_pool(sqlite_url: str) -> None:
    # Writers waiting in SQLite's busy handler each held a pooled connection: under a fleet's
    # load they took the whole pool (5 + 10 overflow) and other requests failed after the
    # pool's 30 s timeout with an HTTP 500. They queue in the process now, off the pool.
    store = Store.open(sqlite_url)
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        with store.database.write() as conn:
            conn.execute(text("UPDATE access_keys SET kind = kind"))
            holding.set()
            release.wait(30)

    def write(n: int) -> None:
        try:
            store.access_keys.create(principal=f"queued-{n}", kind="instance")
        except BaseException as exc:
            errors.append(exc)

    try:
        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(10)
        writers = [threading.Thread(target=write, args=(n,)) for n in range(30)]
        for t in writers:
            t.start()
        # The holder's connection only: the 30 queued writers hold none.
        assert store.database.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        with store.database.read() as conn:  # and a reader still gets a connection
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        release.set()
        for t in [holder, *writers]:
            t.join(30)
        assert errors == []
        with store.database.read() as conn:
            queued: int = conn.execute(
                text("SELECT count(*) FROM access_keys WHERE principal LIKE 'queued-%'")
            ).scalar_one()
        assert queued == 30
    finally:
        release.set()
        store.close()


def test_the_write_turn_is_granted_in_arrival_order() -> None:
    """SQLite's writers of one process queue for their turn; a plain lock let later writers
    overtake and starved some for tens of seconds under a fleet's load."""
    import threading
    import time

    from opendeploy.store.database import _FairLock

    lock = _FairLock()
    assert lock.acquire(1.0)
    order: list[int] = []
    threads = []

    def write(i: int) -> None:
        assert lock.acquire(10.0)
        order.append(i)
        lock.release()

    for i in range(8):
        thread = threading.Thread(target=write, args=(i,))
        thread.start()
        threads.append(thread)
        while len(lock._waiters) < i + 1:  # queued before the next writer starts
            time.sleep(0.001)
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == list(range(8))


def test_a_writer_that_gives_up_does_not_block_the_next() -> None:
    import threading

    from opendeploy.store.database import _FairLock

    lock = _FairLock()
    assert lock.acquire(1.0)
    assert not lock.acquire(0.05)  # gives up: its ticket is abandoned
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(5.0)))
    waiter.start()
    lock.release()
    waiter.join(5)
    assert got == [True]
    lock.release()
    assert lock.acquire(0.1)


def test_combined_writes_commit_together_and_each_gets_its_own_result(database_url: str) -> None:
    """Group commit: writers queued at once share one transaction, and a failing write fails
    only its own caller."""
    store = Store.open(database_url)
    db = store.database
    with db.write() as conn:
        conn.execute(text("CREATE TABLE combined_t (k INTEGER PRIMARY KEY, v TEXT)"))
    holding, release = threading.Event(), threading.Event()
    results: dict[int, object] = {}

    def hold() -> None:
        with db.write():
            holding.set()
            release.wait(30)

    def write(k: int) -> None:
        def work(conn: Any) -> int:
            if k == 3:  # a duplicate key: this write alone must fail
                conn.execute(text("INSERT INTO combined_t VALUES (1, 'again')"))
            conn.execute(text("INSERT INTO combined_t VALUES (:k, :v)"), {"k": 100 + k, "v": "x"})
            return k * 10

        try:
            results[k] = db.combined(work)
        except Exception as exc:
            results[k] = type(exc).__name__

    try:
        db.combined(lambda conn: conn.execute(text("INSERT INTO combined_t VALUES (1, 'a')")))
        blocker = threading.Thread(target=hold)
        blocker.start()
        assert holding.wait(10)
        writers = [threading.Thread(target=write, args=(k,)) for k in range(6)]
        for t in writers:
            t.start()
        release.set()
        for t in [blocker, *writers]:
            t.join(30)
        assert results[3] == "IntegrityError"
        assert {k: v for k, v in results.items() if k != 3} == {
            k: k * 10 for k in range(6) if k != 3
        }
        with db.read() as conn:
            keys = sorted(r[0] for r in conn.execute(text("SELECT k FROM combined_t")))
        assert keys == [1, 100, 101, 102, 104, 105]
    finally:
        with db.write() as conn:
            conn.execute(text("DROP TABLE combined_t"))
        store.close()


def test_writes_from_an_event_loop_commit_together_with_threads_writes(database_url: str) -> None:
    """combined_async: callers on an event loop join the same group commit as threads, each gets
    its own result or error, and no thread is spent per caller."""
    import asyncio

    store = Store.open(database_url)
    db = store.database
    with db.write() as conn:
        conn.execute(text("CREATE TABLE combined_a (k INTEGER PRIMARY KEY, v TEXT)"))
        conn.execute(text("INSERT INTO combined_a VALUES (1000, 'there before')"))

    def insert(k: int) -> Any:
        def work(conn: Any) -> int:
            conn.execute(text("INSERT INTO combined_a VALUES (:k, 'x')"), {"k": k})
            return k * 10

        return work

    async def main() -> list[object]:
        threads = [asyncio.to_thread(db.combined, insert(k)) for k in range(100, 110)]
        loops = [db.combined_async(insert(k)) for k in range(20)]
        loops.append(db.combined_async(insert(1000)))  # a duplicate key: fails alone
        return list(await asyncio.gather(*loops, *threads, return_exceptions=True))

    try:
        results = asyncio.run(main())
        assert results[:20] == [k * 10 for k in range(20)]
        assert type(results[20]).__name__ == "IntegrityError"
        assert results[21:] == [k * 10 for k in range(100, 110)]
        with db.read() as conn:
            keys = sorted(r[0] for r in conn.execute(text("SELECT k FROM combined_a")))
        assert keys == [*range(20), *range(100, 110), 1000]
    finally:
        with db.write() as conn:
            conn.execute(text("DROP TABLE combined_a"))
        store.close()


def test_a_loop_write_queued_behind_a_threads_lead_is_still_written(sqlite_url: str) -> None:
    """A thread leads a batch; meanwhile a write from an event loop queues. When the batch ends
    the lead must pass on: the loop's caller cannot lead, so a kept thread must (it was dropped,
    and every later write waited for good: the agents' polls with them)."""
    import asyncio

    store = Store.open(sqlite_url)
    try:
        db = store.database
        running, release = threading.Event(), threading.Event()

        def slow(conn: Any) -> int:
            running.set()
            release.wait(10)
            return 1

        lead = threading.Thread(target=db.combined, args=(slow,))
        lead.start()
        assert running.wait(10)

        async def queued_behind() -> int:
            write = asyncio.ensure_future(db.combined_async(lambda conn: 2))
            await asyncio.sleep(0)  # it has joined the queue behind the thread's batch
            release.set()
            return await asyncio.wait_for(write, 10)

        assert asyncio.run(queued_behind()) == 2
        lead.join(10)
        # And the lead is free again for the next writer.
        assert db.combined(lambda conn: 3) == 3
    finally:
        store.close()


def test_writes_queued_together_share_few_transactions(database_url: str) -> None:
    """Fifty writes from an event loop at once: a handful of commits, not fifty (on PostgreSQL
    too, where each transaction costs round trips and a WAL flush)."""
    import asyncio

    store = Store.open(database_url)
    db = store.database
    with db.write() as conn:
        conn.execute(text("CREATE TABLE combined_n (k INTEGER PRIMARY KEY)"))

    def insert(k: int) -> Any:
        return lambda conn: conn.execute(text("INSERT INTO combined_n VALUES (:k)"), {"k": k})

    async def main() -> None:
        await asyncio.gather(*(db.combined_async(insert(k)) for k in range(50)))

    commits: list[object] = []

    def count(conn: object) -> None:
        commits.append(conn)

    try:
        event.listen(db.engine, "commit", count)
        asyncio.run(main())
        event.remove(db.engine, "commit", count)
        with db.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM combined_n")).scalar_one() == 50
        assert len(commits) <= 10, f"{len(commits)} transactions for 50 writes"
    finally:
        with db.write() as conn:
            conn.execute(text("DROP TABLE combined_n"))
        store.close()


def test_the_migrations_build_the_schema_the_tables_describe(empty_database_url: str) -> None:
    """Every column and index of ``store/tables.py`` is made by a migration, and nothing else."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from opendeploy.store import tables

    store = Store.open(empty_database_url)
    try:
        with store.database.read() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diff = compare_metadata(context, tables.metadata)
        assert diff == []
    finally:
        store.close()


@pytest.mark.postgres
def test_postgresql_runs_a_batch_beside_a_slow_one(postgres_url: str) -> None:
    """A write queued while a batch has been in flight for a while does not wait for it: on
    PostgreSQL another batch starts beside it (a database some way off must not make every
    write wait out everything queued before it)."""
    from opendeploy.store import database as dbmod

    store = Store.open(postgres_url)
    db = store.database
    done: dict[str, float] = {}
    started = threading.Event()

    def slow_work(conn: Any) -> None:
        started.set()
        conn.execute(text("SELECT pg_sleep(1.5)"))

    def slow() -> None:
        db.combined(slow_work)
        done["slow"] = time.monotonic()

    try:
        first = threading.Thread(target=slow)
        first.start()
        assert started.wait(10)
        # The rule is about time: only a batch in flight for this long gets company.
        time.sleep(dbmod.POSTGRES_BATCH_OVERLAP_AFTER_S * 2)
        assert db.combined(lambda conn: conn.execute(text("SELECT 7")).scalar_one()) == 7
        done["fast"] = time.monotonic()
        first.join(10)
        assert done["fast"] < done["slow"]
    finally:
        store.close()


def test_a_write_after_close_fails_at_once_and_so_does_the_next(database_url: str) -> None:
    """A request still being served while the server shuts down gets an error, not a wait
    that never ends (nor leaves the next caller one)."""
    import asyncio

    store = Store.open(database_url)
    store.close()

    async def write() -> object:
        return await store.database.combined_async(lambda conn: 1)

    for _ in range(2):
        with pytest.raises(RuntimeError):
            asyncio.run(asyncio.wait_for(write(), 10))
