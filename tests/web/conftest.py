"""Fixtures of the dashboard tests: a real server process with the dashboard, and a login."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from opendeploy.testing.server import RunningServer, running_server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server per test module (starting one costs seconds); tests use their own names."""
    with running_server(tmp_path_factory.mktemp("dashboard") / "server") as server:
        yield server


@contextmanager
def login(server: RunningServer) -> Iterator[httpx.Client]:
    """An httpx client holding a dashboard session of the server's admin key."""
    with httpx.Client(base_url=server.endpoint, timeout=30) as client:
        response = client.post(
            "/ui/login",
            data={
                "access_key_id": server.access_key_id,
                "secret_access_key": server.secret_access_key,
                "next": "/ui/",
            },
        )
        assert response.status_code == 303, response.text
        yield client
