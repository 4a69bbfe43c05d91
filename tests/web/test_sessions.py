"""Dashboard sessions over HTTP: forged cookies and tokens are refused (never a 500)."""

from __future__ import annotations

import httpx

from opendeploy.testing.server import RunningServer
from opendeploy.web import session
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
