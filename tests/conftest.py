"""Fixtures shared by the whole suite.

``database_url`` runs a test once on SQLite and once on PostgreSQL, each time on a fresh, empty
database: a file in the test's tmp dir, or a uniquely named PostgreSQL database created on the
server named by ``OPENDEPLOY_TEST_DATABASE_URL`` (``scripts/test`` sets it) and dropped after the
test. Without that variable the PostgreSQL runs are skipped; with it, an unreachable server fails
them loudly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_ENV = "OPENDEPLOY_TEST_DATABASE_URL"


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


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database URL: once on SQLite, once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url
