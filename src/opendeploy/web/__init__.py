"""The web dashboard that ``opendeploy server`` serves under ``/ui``.

Server-rendered HTML (Jinja2 templates shipped in the package), a hand-written stylesheet and a
small script for confirmations and live updates (Server-Sent Events); no build step. Behind the
server's credentials: a login with an admin access key pair opens a signed session.
"""

from __future__ import annotations

from pathlib import Path

from opendeploy.web.routes import web_routes

__all__ = ["DASHBOARD_PATH", "dashboard_hint", "web_routes"]

#: Where ``opendeploy server`` serves the dashboard (``/`` redirects there).
DASHBOARD_PATH = "/ui/"


def dashboard_hint(endpoint: str, data_dir: Path, access_key_id: str) -> str:
    """Where the dashboard is and how to sign in to it (the server's admin key pair)."""
    return (
        f"dashboard {endpoint.rstrip('/')}{DASHBOARD_PATH}: sign in with access key ID "
        f"{access_key_id} and its secret (aws_secret_access_key in {data_dir}/credentials)"
    )
