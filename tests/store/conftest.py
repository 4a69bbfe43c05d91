"""Fixtures of the store's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opendeploy.store.database import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store on a fresh database: once on SQLite, once on PostgreSQL."""
    s = Store.open(database_url)
    try:
        yield s
    finally:
        s.close()
