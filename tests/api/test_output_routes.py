"""The deployment output read by cursor (``api/output_routes.read_output``), on a real store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from opendeploy.api.output_routes import Cursor, read_output
from opendeploy.service_errors import DeploymentDoesNotExistError, InvalidInputError
from opendeploy.store import commands as c
from opendeploy.store.database import Store
from tests._stored import bare_deployment

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DEP = "d-AAAAAAAAA"


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    s = Store.open(sqlite_url)
    bare_deployment(s, DEP, now=T0)
    try:
        yield s
    finally:
        s.close()


def _dispatch(store: Store, host: str, event: str, minute: int) -> str:
    with store.database.write() as conn:
        return c.dispatch(conn, DEP, host, event, T0 + timedelta(minutes=minute))


def _texts(lines: list[dict[str, str]]) -> list[str]:
    return [f"{x['instanceId']} {x['lifecycleEvent']} {x['line']}" for x in lines]


def test_lines_come_once_in_dispatch_order_and_the_cursor_stays_short(store: Store) -> None:
    hosts = ["web-1", "web-2"]
    first = _dispatch(store, "web-1", "BeforeInstall", 0)
    store.commands.append_output(first, "one\ntwo\n")
    lines, cursor = read_output(store, DEP, instances=hosts)
    assert _texts(lines) == ["web-1 BeforeInstall one", "web-1 BeforeInstall two"]
    assert cursor == Cursor(0, (8,))

    second = _dispatch(store, "web-2", "BeforeInstall", 1)
    store.commands.append_output(first, "three\n")
    store.commands.append_output(second, "other host\n")
    lines, cursor = read_output(store, DEP, instances=hosts, after=cursor)
    assert _texts(lines) == ["web-1 BeforeInstall three", "web-2 BeforeInstall other host"]

    store.commands.complete(first, now=T0, result="Succeeded", diagnostics=None)
    lines, cursor = read_output(store, DEP, instances=hosts, after=cursor)
    assert lines == []
    # The finished first command joins the fully read prefix: one offset is left.
    assert cursor.done == 1 and len(cursor.offsets) == 1
    assert Cursor.decode(cursor.encode()) == cursor


def test_filters_by_instance_and_event(store: Store) -> None:
    a = _dispatch(store, "web-1", "BeforeInstall", 0)
    b = _dispatch(store, "web-1", "ValidateService", 1)  # closes a
    store.commands.append_output(a, "installing\n")
    store.commands.append_output(b, "healthy\n")
    lines, _ = read_output(store, DEP, instances=["web-1"], event="ValidateService")
    assert _texts(lines) == ["web-1 ValidateService healthy"]
    assert read_output(store, DEP, instances=["web-9"])[0] == []


def test_errors_name_the_deployment_and_the_cursor(store: Store) -> None:
    with pytest.raises(DeploymentDoesNotExistError, match="d-NOPE"):
        read_output(store, "d-NOPE")
    with pytest.raises(InvalidInputError, match="after: 'x.y'"):
        Cursor.decode("x.y")
