"""Open the database (SQLite or PostgreSQL), migrate it to head, and hand out transactions.

``Store.open(url)`` is the one entry point: it builds the SQLAlchemy engine, applies the SQLite
pragmas (WAL, busy timeout, foreign keys), runs the Alembic migrations that ship in
``opendeploy/store/migrations`` and exposes one repository per aggregate::

    store = Store.open("sqlite:////var/lib/opendeploy/opendeploy.db")
    app_id = store.applications.create(name="web", compute_platform="Server")
    store.close()

Transactions: repositories call :meth:`Database.write` for anything that changes rows and
:meth:`Database.read` for queries. On SQLite a write transaction starts with ``BEGIN IMMEDIATE``
so that two writers queue on the busy timeout instead of failing when a read lock cannot be
upgraded; on PostgreSQL repositories lock the rows they check (``SELECT … FOR UPDATE``).

SQLite has one writer at a time, so the writers of one process queue (in order of arrival) on a
lock in the process *before* they take a pooled connection: waiting in SQLite's busy handler
instead held a pooled connection per waiting writer, and under a fleet's load those waiters took
the whole pool, so that other requests timed out waiting for a connection (HTTP 500). The busy
timeout still orders the writers of different processes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.resources
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from opendeploy.store.access_keys import AccessKeys
from opendeploy.store.applications import Applications
from opendeploy.store.bundle_objects import BundleObjects
from opendeploy.store.commands import Commands
from opendeploy.store.dashboard_sessions import DashboardSessions
from opendeploy.store.deployment_configs import DeploymentConfigs
from opendeploy.store.deployment_groups import DeploymentGroups
from opendeploy.store.deployments import Deployments
from opendeploy.store.functions import Functions
from opendeploy.store.github import GitHubTokens
from opendeploy.store.instances import OnPremisesInstances
from opendeploy.store.revisions import Revisions
from opendeploy.store.tags import ResourceTags

#: SQLite waits this long for a lock held by another connection before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: Pooled SQLite connections kept open (as many again may be opened under load).
SQLITE_POOL_SIZE = 30

#: Pooled PostgreSQL connections (10 more may be opened under load).
POSTGRES_POOL_SIZE = 42

#: Batches of :meth:`Database.combined` writes in flight at once on PostgreSQL, at most, each in
#: its own transaction: one at a time, a server some way from its database would wait out a
#: round trip per statement of every write in turn (SQLite has one writer at a time anyway).
POSTGRES_WRITE_BATCHES = 4
#: ... but another batch only starts beside those in flight once the newest of them has run this
#: long. Next to its database (loopback), batches overlapping at once split the writes into
#: more, smaller transactions and cost 12% more of the server's CPU per host-event for nothing:
#: a batch there is slow only while its thread waits for the GIL, which a second one shares.
#: At 20 ms they still overlapped under a fleet's load; 100 ms is a batch's worth of round
#: trips to a database a millisecond away.
POSTGRES_BATCH_OVERLAP_AFTER_S = 0.100

#: How long a writer waits for its turn among the writers of its process (SQLite only).
WRITE_QUEUE_TIMEOUT_S = 120.0

_WRITE_OPTION = "opendeploy_write"


class WriteQueueTimeout(TimeoutError):
    """A writer waited :data:`WRITE_QUEUE_TIMEOUT_S` for the process's SQLite write turn."""


def engine_url(url: str) -> str:
    """Translate a user-facing database URL to the SQLAlchemy one (psycopg 3 for PostgreSQL)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        # A SQLite connection is a file handle: keep enough of them that a busy server reuses
        # its connections instead of opening (and setting up) an overflow one per request.
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=SQLITE_POOL_SIZE,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, instead of pysqlite's own guesses.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        # Straight on the driver's connection: through exec_driver_sql, BEGIN cost as much as the
        # statement after it (SQLAlchemy's execution context, events, a result object), and
        # every read and write of the server starts with one. pysqlite's commit() ends the
        # transaction this opens (it commits whenever SQLite is not in autocommit).
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _pooled_engine(url: str) -> Engine:
    """The engine of a database server (PostgreSQL; any other dialect SQLAlchemy knows)."""
    # With the overflow, as many connections as the API's worker threads
    # (opendeploy.blocking: POOL_SIZE + CONTROL_POOL_SIZE) plus the engine's and the sweep's,
    # so that none of them waits for a connection.
    engine = create_engine(url, pool_pre_ping=True, pool_size=POSTGRES_POOL_SIZE, max_overflow=10)
    if make_url(url).get_backend_name() == "postgresql":

        @event.listens_for(engine, "connect")
        def _in_utc(dbapi_connection: Any, _record: Any) -> None:
            # Every session in UTC, whatever the server's or the role's default: the driver
            # then reads each timestamptz as a UTC datetime, which the store returns as it is
            # (converting ten thousand of them per engine pass was a visible part of the
            # pass). Committed, or the pool's first rollback would undo it.
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SET TIME ZONE 'UTC'")
            finally:
                cursor.close()
            dbapi_connection.commit()

    return engine


class _FairLock:
    """A lock granted in the order it was asked for (``threading.Lock`` is not: under a fleet's
    load a writer could wait tens of seconds while later ones went first). A release hands the
    lock straight to the next waiter and wakes only that one."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: collections.deque[threading.Event] = collections.deque()

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held and not self._waiters:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if not turn.is_set():
                self._waiters.remove(turn)
                return False
        self.release()  # handed over just as the wait gave up: pass it on
        return False

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # still held: now by that waiter
            else:
                self._held = False


_T = TypeVar("_T")


class _Job(Generic[_T]):
    """One write of :meth:`Database.combined`, and what became of it."""

    __slots__ = ("error", "future", "lead", "result", "wake", "work")

    def __init__(
        self, work: Callable[[Connection], _T], future: asyncio.Future[_T] | None = None
    ) -> None:
        self.work = work
        #: Set when the job is done, or when its caller is to lead the next batch (``lead``).
        # (None for a caller on an event loop: its future says it all, and an Event costs a
        # Condition and a lock per call.)
        self.wake: threading.Event | None = threading.Event() if future is None else None
        self.lead = False
        self.result: _T | None = None
        self.error: BaseException | None = None
        #: For a caller on an event loop (:meth:`Database.combined_async`): no thread waits.
        self.future = future

    def outcome(self) -> _T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # set when there was no error


def _settle(jobs: list[_Job[Any]]) -> None:
    """On the jobs' event loop: hand each caller its outcome (unless it stopped waiting)."""
    for job in jobs:
        future = job.future
        if future is None or future.done():
            continue
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)


class Database:
    """The engine plus the two kinds of transaction the repositories use."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        # See the module docstring: SQLite's writers queue here, not on pooled connections.
        self._write_turn = _FairLock() if engine.dialect.name == "sqlite" else None
        # Writes waiting to be committed together (Database.combined).
        self._pending_lock = threading.Lock()
        self._pending: list[_Job[Any]] = []
        self._leading = False
        # PostgreSQL: up to POSTGRES_WRITE_BATCHES batches at once, each led by a thread kept
        # for it, whoever asked (no caller leads). SQLite: one, led as ``combined`` describes.
        self._parallel = self._write_turn is None
        self._leaders = 0
        # When each batch being written on PostgreSQL started (time.monotonic()).
        self._batch_starts: list[float] = []
        # Leads the batches whose first job came from an event loop (no thread of theirs waits),
        # and on PostgreSQL every batch.
        self._loop_leader = ThreadPoolExecutor(
            POSTGRES_WRITE_BATCHES if self._parallel else 1,
            thread_name_prefix="opendeploy-group-commit",
        )

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that may change rows; committed when the block ends without error.

        Not re-entrant (nor was it ever: on SQLite a nested write waits on the outer one)."""
        turn = self._write_turn
        if turn is None:
            with self._writer.begin() as connection:
                yield connection
            return
        if not turn.acquire(WRITE_QUEUE_TIMEOUT_S):
            raise WriteQueueTimeout(
                f"waited {WRITE_QUEUE_TIMEOUT_S:.0f} s for a turn to write to the database"
            )
        try:
            with self._writer.begin() as connection:
                yield connection
        finally:
            turn.release()

    def combined(self, work: Callable[[Connection], _T]) -> _T:
        """``work(conn)`` in a write transaction, shared with the writers queued at the same
        moment (group commit); its result once that transaction has committed.

        For the many small writes of a fleet's agents (claim, acknowledge, complete): one turn at
        SQLite's write lock per write made them queue behind each other one transaction at a
        time. One caller at a time leads: it takes every write queued so far, runs them in one
        transaction (when one fails, each is run again on its own, so that it does not fail the
        others), wakes their callers, and hands the lead to the first caller queued meanwhile.
        The others only wait for their own write. ``work`` must only use ``conn``.

        PostgreSQL has no database-wide write lock, but each transaction there costs a pooled
        connection's checkout and ping, BEGIN and COMMIT (round trips to the server, and a WAL
        flush): committed one by one, a fleet's writes cost the server 2.3 ms per host-event,
        against 1.4 ms together (``bench/fleet.py --database postgresql``). The jobs of a batch
        touch different commands' rows, so sharing a transaction adds no lock waits among them.
        There, up to :data:`POSTGRES_WRITE_BATCHES` batches run at once, each led by a thread
        kept for the purpose; callers only wait for their own write."""
        job: _Job[_T] = _Job(work)
        if self._parallel:
            self._enqueue_in_parallel(job)
            assert job.wake is not None
            job.wake.wait()
            return job.outcome()
        with self._pending_lock:
            self._pending.append(job)
            lead = not self._leading
            self._leading = True
        if not lead:
            assert job.wake is not None
            job.wake.wait()
            if not job.lead:
                return job.outcome()
        with self._pending_lock:
            batch, self._pending = self._pending, []
        try:
            self._run_batch(batch)
        finally:
            if self._pass_lead():
                # The next job queued came from an event loop, whose caller cannot lead: the
                # thread kept for that leads on, as after a loop's batch. (Dropping the lead
                # here left the lead taken with nobody leading: every later write waited for
                # good, the agents' polls and reports with them.)
                self._loop_leader.submit(self._lead_for_loops)
        return job.outcome()

    async def combined_async(self, work: Callable[[Connection], _T]) -> _T:
        """:meth:`combined` for a caller on an event loop, without a thread of its own.

        The caller's job joins the queue as :meth:`combined`'s do; when no batch is being led,
        a thread kept for it leads them, and the callers' futures are settled with one call
        into their loop per batch. A fleet's acknowledgements and completions then cost a
        thread hand-off per batch instead of one (and a wait at the lock) per call."""
        job: _Job[_T] = _Job(work, asyncio.get_running_loop().create_future())
        assert job.future is not None
        if self._parallel:
            self._enqueue_in_parallel(job)
            return await job.future
        with self._pending_lock:
            self._pending.append(job)
            lead = not self._leading
            self._leading = True
        if lead:
            try:
                self._loop_leader.submit(self._lead_for_loops)
            except RuntimeError:  # closed: say so to this caller, and leave no job behind
                with self._pending_lock:
                    self._pending.remove(job)
                    self._leading = False
                raise
        return await job.future

    def _enqueue_in_parallel(self, job: _Job[Any]) -> None:
        """PostgreSQL: queue ``job``, and start a leader unless all of them are busy (then one
        of them takes it with the next batch)."""
        with self._pending_lock:
            self._pending.append(job)
            start = self._leaders == 0 or (
                self._leaders < POSTGRES_WRITE_BATCHES
                and len(self._batch_starts) == self._leaders  # none is about to take it
                and time.monotonic() - max(self._batch_starts) > POSTGRES_BATCH_OVERLAP_AFTER_S
            )
            if start:
                self._leaders += 1
        if start:
            try:
                self._loop_leader.submit(self._lead_in_parallel)
            except RuntimeError:  # closed: say so to this caller, and leave no job behind
                with self._pending_lock:
                    self._leaders -= 1
                    if job in self._pending:
                        self._pending.remove(job)
                raise

    def _lead_in_parallel(self) -> None:
        """PostgreSQL: run what is queued, batch after batch, until nothing is."""
        while True:
            with self._pending_lock:
                if not self._pending:
                    self._leaders -= 1
                    return
                batch, self._pending = self._pending, []
                started = time.monotonic()
                self._batch_starts.append(started)
            try:
                self._run_batch(batch)
            finally:
                with self._pending_lock:
                    self._batch_starts.remove(started)

    def _lead_for_loops(self) -> None:
        """Run batches until the queue is empty or its first job's own thread can lead."""
        lead_on = True
        while lead_on:
            with self._pending_lock:
                batch, self._pending = self._pending, []
            try:
                self._run_batch(batch)
            finally:
                lead_on = self._pass_lead()

    def _pass_lead(self) -> bool:
        """After a batch: hand the lead to the first job queued meanwhile, or give it up.
        True when that job came from an event loop: then the caller leads on."""
        with self._pending_lock:
            if not self._pending:
                self._leading = False
                return False
            successor = self._pending[0]
            if successor.wake is None:
                return True
            successor.lead = True
            successor.wake.set()
            return False

    def _run_batch(self, batch: list[_Job[Any]]) -> None:
        """Run the jobs in one write transaction and wake their callers."""
        try:
            try:
                with self.write() as conn:
                    for job in batch:
                        job.result = job.work(conn)
            except Exception:
                if len(batch) == 1:
                    raise
                # One of them failed (or the commit did) and the whole batch was rolled back:
                # run each on its own, so that one bad write does not fail the others.
                for job in batch:
                    try:
                        with self.write() as conn:
                            job.result = job.work(conn)
                    except Exception as exc:
                        job.result, job.error = None, exc
        except Exception as exc:
            for job in batch:
                job.result, job.error = None, exc
        finally:
            by_loop: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
            for job in batch:
                if job.wake is not None:
                    job.wake.set()
                elif job.future is not None:
                    by_loop.setdefault(job.future.get_loop(), []).append(job)
            for loop, jobs in by_loop.items():
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    loop.call_soon_threadsafe(_settle, jobs)

    def close(self) -> None:
        """Finish the batch being led for event loops, then close every pooled connection."""
        self._loop_leader.shutdown(wait=True)
        self.engine.dispose()

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (one consistent snapshot on both backends)."""
        with self.engine.begin() as connection:
            yield connection


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent; safe to call on every start)."""
    from alembic import command
    from alembic.config import Config

    script_location = importlib.resources.files("opendeploy.store") / "migrations"
    config = Config()
    config.set_main_option("script_location", str(script_location))
    # On SQLite take the write lock up front, so two processes starting together queue here.
    with engine.execution_options(**{_WRITE_OPTION: True}).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Store:
    """The persistent state of one OpenDeploy server: one repository per aggregate."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.access_keys = AccessKeys(database)
        self.applications = Applications(database)
        self.deployment_configs = DeploymentConfigs(database)
        self.deployment_groups = DeploymentGroups(database)
        self.revisions = Revisions(database)
        self.deployments = Deployments(database)
        self.instances = OnPremisesInstances(database)
        self.tags = ResourceTags(database)
        self.github_tokens = GitHubTokens(database)
        self.bundle_objects = BundleObjects(database)
        self.commands = Commands(database)
        self.dashboard_sessions = DashboardSessions(database)
        self.functions = Functions(database)

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect to ``sqlite:///path`` or ``postgresql://…`` and migrate the schema to head."""
        sa_url = engine_url(url)
        if make_url(sa_url).get_backend_name() == "sqlite":
            engine = _sqlite_engine(sa_url)
        else:
            engine = _pooled_engine(sa_url)
        migrate(engine)
        return cls(Database(engine))

    def close(self) -> None:
        """Finish the batch being written, then close every pooled connection."""
        self.database.close()
