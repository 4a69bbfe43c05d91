"""The agent's ``x-amz-codedeploy-agent-version`` header, made visible to the handlers.

Handlers receive only the verified principal and the decoded input, so a tiny ASGI middleware
puts the header into a context variable for the request (Starlette's thread pool copies the
context into the handler's thread).
"""

from __future__ import annotations

from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

HEADER = b"x-amz-codedeploy-agent-version"

#: The header of the request being handled, or None when it has none.
agent_version: ContextVar[str | None] = ContextVar("agent_version", default=None)


class AgentVersionMiddleware:
    """Sets :data:`agent_version` for every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = None
        for name, raw in scope["headers"]:
            if name.lower() == HEADER:
                value = raw.decode("latin-1")[:64]
                break
        token = agent_version.set(value)
        try:
            await self.app(scope, receive, send)
        finally:
            agent_version.reset(token)
