"""The web dashboard that ``opendeploy server`` serves under ``/ui``.

Server-rendered HTML (Jinja2 templates shipped in the package), a hand-written stylesheet and a
small script for confirmations and live updates (Server-Sent Events); no build step. Behind the
server's credentials: a login with an admin access key pair opens a signed session.
"""

from __future__ import annotations

from opendeploy.web.routes import web_routes

__all__ = ["web_routes"]
