"""Fixtures shared by the whole suite.

``database_url`` runs a test once on SQLite and once on PostgreSQL, each time on a fresh, empty
database: a file in the test's tmp dir, or a uniquely named PostgreSQL database created on the
server named by ``OPENDEPLOY_TEST_DATABASE_URL`` (``scripts/test`` sets it) and dropped after the
test. Without that variable the PostgreSQL runs are skipped; with it, an unreachable server fails
them loudly.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def scratch_postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped on exit (``postgresql://…``); skips the test when
    ``OPENDEPLOY_TEST_DATABASE_URL`` is not set and fails it when that server cannot be reached."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set; scripts/test sets it (it finds or starts PostgreSQL)")
    import psycopg

    name = f"opendeploy_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = psycopg.connect(_admin_conninfo(url), autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(f"{PG_ENV}={url} is set but PostgreSQL cannot be reached: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(url, name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards (``postgresql://…``)."""
    with scratch_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file in the test's tmp dir."""
    return f"sqlite:///{tmp_path / 'opendeploy.db'}"


#: The databases a test runs on; the PostgreSQL run carries the ``postgres`` mark.
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database URL: once on SQLite, once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


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
        url = f"sqlite:///{data_dir.resolve() / 'opendeploy.db'}"
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
