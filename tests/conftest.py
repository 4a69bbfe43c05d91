"""Fixtures shared by the whole suite.

``database_url`` runs a test once on SQLite and once on PostgreSQL, each time on a fresh database
migrated to head (as ``Store.open`` leaves it): a file in the test's tmp dir, or a uniquely named
PostgreSQL database created on the server named by ``OPENDEPLOY_TEST_DATABASE_URL``
(``scripts/test`` sets it) and dropped after the test. Without that variable the PostgreSQL runs
are skipped; with it, an unreachable server fails them loudly. ``empty_database_url`` is the same
with no schema at all, for the tests of the migrations themselves.

Speed: migrating an empty database costs ~0.4 s on SQLite and ~1 s on PostgreSQL, and creating and
dropping a PostgreSQL database ~1 s more, hundreds of times a run. So each test process migrates
one template per backend once (a SQLite file that is copied, a PostgreSQL database that is
cloned with ``CREATE DATABASE … TEMPLATE``), and drops the PostgreSQL databases of finished tests
in a background thread (waited for at the end of the session).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from opendeploy.api.model import CODEDEPLOY_MODEL_PATH
from opendeploy.testing.server import RunningServer, running_server

PG_ENV = "OPENDEPLOY_TEST_DATABASE_URL"

#: Fixture scopes shared by several tests of a module (a server process, a database): the tests
#: using one run on one pytest-xdist worker, so it is set up once (see
#: ``pytest_collection_modifyitems``).
_SHARED_SCOPES = {"module", "package", "class"}


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say what the run does to this machine beyond its tmp dirs."""
    lines = []
    url = os.environ.get(PG_ENV)
    if url:
        lines.append(f"PostgreSQL: scratch databases opendeploy_test_* on {url}, dropped after use")
    else:
        lines.append(f"PostgreSQL: {PG_ENV} is not set; the PostgreSQL runs are skipped")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lines.append(
            "running as root: the runas and ownership tests create throwaway users and groups "
            "(od<name><hex>) with useradd and remove them after each test (tests/_users.py)"
        )
    return lines


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests that share a module-scoped fixture on one pytest-xdist worker.

    ``scripts/test`` runs the suite with ``--dist loadgroup``: tests are handed to workers one by
    one, except those of one ``xdist_group``, which go to one worker together. Without a group,
    each worker that ran a test of such a module would start the module's server again. Runs
    first, so that xdist's own hook sees the marks it adds.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        if any(defs[-1].scope in _SHARED_SCOPES for defs in info.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


def _admin_conninfo(url: str) -> str:
    """A libpq URL for psycopg from a user-facing or SQLAlchemy one (drops ``+driver``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def _with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (query string kept)."""
    base, q, query = url.partition("?")
    scheme, sep, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}{sep}{authority}/{name}{q}{query}"


class _Templates:
    """This test process's migrated templates and its background dropper of PostgreSQL databases.

    Built on first use (a process that runs no database test builds nothing) and cleaned up by
    ``pytest_sessionfinish``. Each pytest-xdist worker has its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir: Path | None = None
        self._sqlite: Path | None = None
        self._postgres: str | None = None
        self._drops: queue.Queue[str | None] = queue.Queue()
        self._dropper: threading.Thread | None = None
        self.drop_errors: list[str] = []

    def sqlite(self) -> Path:
        """A SQLite file migrated to head, checkpointed (no ``-wal`` beside it): copy it."""
        with self._lock:
            if self._sqlite is None:
                from opendeploy.store.database import Store

                self._dir = Path(tempfile.mkdtemp(prefix="opendeploy-test-templates-"))
                path = self._dir / "opendeploy.db"
                Store.open(f"sqlite:///{path}").close()
                assert not path.with_name(path.name + "-wal").exists(), "template not checkpointed"
                self._sqlite = path
            return self._sqlite

    def postgres(self, url: str) -> str:
        """The name of a PostgreSQL database migrated to head, to clone (nobody connects to it)."""
        with self._lock:
            if self._postgres is None:
                from opendeploy.store.database import Store

                name = _create_database(url, template=None)
                Store.open(_with_database(url, name)).close()
                self._postgres = name
            return self._postgres

    def drop_later(self, url: str, name: str) -> None:
        """Drop database ``name`` in the background (a test need not wait ~1 s for it)."""
        with self._lock:
            if self._dropper is None:
                self._dropper = threading.Thread(
                    target=self._drop_all, args=(url,), name="drop-scratch-databases", daemon=True
                )
                self._dropper.start()
        self._drops.put(name)

    def _drop_all(self, url: str) -> None:
        while (name := self._drops.get()) is not None:
            try:
                with psycopg.connect(_admin_conninfo(url), autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error as exc:
                self.drop_errors.append(f"{name}: {exc}")

    def finish(self) -> None:
        """Wait for the pending drops, then drop the templates."""
        url = os.environ.get(PG_ENV)
        if self._postgres is not None and url:
            self.drop_later(url, self._postgres)
        if self._dropper is not None:
            self._drops.put(None)
            self._dropper.join()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


_TEMPLATES = _Templates()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _TEMPLATES.finish()
    for error in _TEMPLATES.drop_errors:
        print(f"\nwarning: a scratch database could not be dropped: {error}")


def _create_database(url: str, *, template: str | None) -> str:
    """Create a uniquely named database (a copy of ``template``, else empty); its name.

    Skips the test when ``OPENDEPLOY_TEST_DATABASE_URL`` is not set (the caller checks) and fails
    it when that server cannot be reached.
    """
    name = f"opendeploy_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = psycopg.connect(_admin_conninfo(url), autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(f"{PG_ENV}={url} is set but PostgreSQL cannot be reached: {exc}")
    with admin:
        source = f' TEMPLATE "{template}"' if template else ""
        admin.execute(f'CREATE DATABASE "{name}"{source}')
    return name


@contextmanager
def scratch_postgres_database(*, migrated: bool = True) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after use (``postgresql://…``): migrated to head, or
    with ``migrated=False`` empty. Skips the test when ``OPENDEPLOY_TEST_DATABASE_URL`` is not set
    and fails it when that server cannot be reached."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set; scripts/test sets it (it finds or starts PostgreSQL)")
    template = _TEMPLATES.postgres(url) if migrated else None
    name = _create_database(url, template=template)
    try:
        yield _with_database(url, name)
    finally:
        _TEMPLATES.drop_later(url, name)


def fresh_sqlite_file(path: Path) -> Path:
    """A new SQLite database at ``path``, migrated to head: a copy of the template."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATES.sqlite(), path)
    return path


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database migrated to head for one test, dropped afterwards."""
    with scratch_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file migrated to head, in the test's tmp dir."""
    return f"sqlite:///{fresh_sqlite_file(tmp_path / 'opendeploy.db')}"


#: The databases a test runs on; the PostgreSQL run carries the ``postgres`` mark.
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL, migrated to head: once on SQLite, once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL with no schema at all (for the tests of the migrations): once on
    SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'opendeploy.db'}"
        return
    with scratch_postgres_database(migrated=False) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request: pytest.FixtureRequest) -> str:
    """ "sqlite" or "postgresql", for a whole module: for modules that share one server (or one
    database) per backend among their tests, because starting one costs seconds."""
    return str(request.param)


@contextmanager
def server_on(
    backend: str, data_dir: Path, *, env: Mapping[str, str] | None = None
) -> Iterator[tuple[RunningServer, str]]:
    """A real ``opendeploy server`` on ``backend`` ("sqlite" or "postgresql"): (server, db URL).

    PostgreSQL gets a scratch database (skipped without ``OPENDEPLOY_TEST_DATABASE_URL``).
    """
    if backend == "sqlite":
        url = f"sqlite:///{fresh_sqlite_file(data_dir.resolve() / 'opendeploy.db')}"
        with running_server(data_dir, database_url=url, env=env) as server:
            yield server, url
        return
    with (
        scratch_postgres_database() as url,
        running_server(data_dir, database_url=url, env=env) as server,
    ):
        yield server, url


@pytest.fixture(scope="session")
def cbor_data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A botocore data path whose CodeDeploy model lists only Smithy RPC v2 CBOR.

    botocore prefers awsJson1_1 when the model offers both; a session with this ``data_path``
    (``AWS_DATA_PATH``) sends CBOR instead, as SDKs generated from the Smithy model do.
    """
    root = tmp_path_factory.mktemp("cbor-model")
    target = root / "codedeploy" / "2014-10-06"
    target.mkdir(parents=True)
    model = json.loads(CODEDEPLOY_MODEL_PATH.read_text())
    model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
    model["metadata"]["protocol"] = "smithy-rpc-v2-cbor"
    (target / "service-2.json").write_text(json.dumps(model))
    for sibling in CODEDEPLOY_MODEL_PATH.parent.iterdir():
        if sibling.name != "service-2.json":
            shutil.copy(sibling, target)
    return root
