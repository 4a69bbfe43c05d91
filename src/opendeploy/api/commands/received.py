"""The agent's ``x-opendeploy-received-commands`` header: the host commands it has received.

An OpenDeploy extension of the Command API. Our agent sends, on every PollHostCommand, the ids
of the last commands it received (newest first, comma-separated, at most
:data:`MAX_IDS`); an agent that sends no such header (the official one) is not affected. A
command the server handed out that is missing from the list never reached the agent (the
poll's answer was lost: a connection cut as it was written, a server killed after it recorded
the delivery): the server hands it out again at once instead of after ``REDELIVER_AFTER``.
"""

from __future__ import annotations

from contextvars import ContextVar

HEADER = b"x-opendeploy-received-commands"
#: How many ids the agent lists (it receives one command per poll; a few are enough).
MAX_IDS = 32
#: The longest header value read (ids are ``hc-`` and 32 characters).
MAX_CHARS = MAX_IDS * 40

#: The header of the PollHostCommand being handled, or None when it has none.
received_commands: ContextVar[str | None] = ContextVar("received_commands", default=None)


def parse(value: str) -> frozenset[str]:
    """The ids a header value lists."""
    return frozenset(part.strip() for part in value.split(",")[:MAX_IDS] if part.strip())


def format_ids(ids: list[str]) -> str:
    """The header value for ``ids`` (newest first), bounded."""
    return ",".join(ids[:MAX_IDS])
