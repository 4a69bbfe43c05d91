"""The agent's ``x-amz-codedeploy-agent-version`` header, made visible to the handlers.

Handlers receive only the verified principal and the decoded input, so the API puts the header
into a context variable for the call (``create_app(context_headers=…)``; the thread pool copies
the context into the handler's thread).
"""

from __future__ import annotations

from contextvars import ContextVar

HEADER = b"x-amz-codedeploy-agent-version"

#: The header of the request being handled, or None when it has none.
agent_version: ContextVar[str | None] = ContextVar("agent_version", default=None)
