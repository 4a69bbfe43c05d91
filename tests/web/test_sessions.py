"""Dashboard sessions over HTTP: forged cookies and tokens are refused (never a 500), and
signing out or revoking the key ends a session server-side."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import select

from opendeploy.store import tables
from opendeploy.testing.server import RunningServer
from opendeploy.web import session
from tests._stored import server_store
from tests.web.conftest import login


def test_a_session_cookie_with_a_non_ascii_mac_is_no_session(
    dashboard_server: RunningServer,
) -> None:
    with login(dashboard_server) as client:
        cookie = client.cookies[session.SESSION_COOKIE]
        body, _, _mac = cookie.partition(".")
        forged = f"{body}.{'é' * 43}".encode()
        response = httpx.get(
            f"{dashboard_server.endpoint}/ui/",
            headers={b"Cookie": b"od_session=" + forged},
        )
        assert response.status_code == 303, response.text
        assert response.headers["location"].startswith("/ui/login")
        response = httpx.get(
            f"{dashboard_server.endpoint}/ui/", headers={b"Cookie": b"od_flash=" + forged}
        )
        assert response.status_code == 303


def test_a_non_ascii_csrf_token_is_refused_as_403(dashboard_server: RunningServer) -> None:
    with login(dashboard_server) as client:
        response = client.post("/ui/logout", data={"csrf_token": "ü" * 43})
        assert response.status_code == 403, response.text
        assert "csrf_token" in response.text


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


@contextmanager
def _signed_in(server: RunningServer, key_id: str, secret: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.endpoint, timeout=30) as client:
        response = client.post(
            "/ui/login",
            data={"access_key_id": key_id, "secret_access_key": secret, "next": "/ui/"},
        )
        assert response.status_code == 303, response.text
        yield client


def test_sign_out_ends_the_session_for_every_copy_of_its_cookie(
    dashboard_server: RunningServer,
) -> None:
    with (
        login(dashboard_server) as client,
        _signed_in(
            dashboard_server, dashboard_server.access_key_id, dashboard_server.secret_access_key
        ) as other_session,
    ):
        home = client.get("/ui/")
        assert home.status_code == 200
        copied = client.cookies[session.SESSION_COOKIE]
        out = client.post("/ui/logout", data={"csrf_token": _csrf(home.text)})
        assert out.status_code == 303
        # The browser forgot the cookie; a copy of it (a stolen one) is refused all the same.
        replayed = httpx.get(
            f"{dashboard_server.endpoint}/ui/", cookies={session.SESSION_COOKIE: copied}
        )
        assert replayed.status_code == 303
        assert replayed.headers["location"].startswith("/ui/login")
        replayed_post = httpx.post(
            f"{dashboard_server.endpoint}/ui/logout",
            cookies={session.SESSION_COOKIE: copied},
            data={"csrf_token": _csrf(home.text)},
        )
        assert replayed_post.status_code == 401
        # Another sign-in of the same key is another session: it goes on.
        assert other_session.get("/ui/").status_code == 200


def test_revoking_the_key_ends_its_sessions(dashboard_server: RunningServer) -> None:
    store = server_store(dashboard_server)
    try:
        key_id, secret = store.access_keys.create(principal="second-admin", kind="admin")
        with _signed_in(dashboard_server, key_id, secret) as client:
            assert client.get("/ui/").status_code == 200
            assert store.access_keys.revoke(key_id)
            response = client.get("/ui/")
            assert response.status_code == 303
            assert response.headers["location"].startswith("/ui/login")
        with store.database.read() as conn:
            rows = conn.execute(
                select(tables.dashboard_sessions).where(
                    tables.dashboard_sessions.c.access_key_id == key_id
                )
            ).all()
        assert rows == []
    finally:
        store.close()
