"""What every repository shares: the database handle and opaque page tokens."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opendeploy.service_errors import InvalidNextTokenError

if TYPE_CHECKING:
    from opendeploy.store.database import Database


class Repository:
    """Base of the repositories: holds the :class:`~opendeploy.store.database.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db


def encode_token(after: str) -> str:
    """An opaque ``nextToken`` for the page that follows the item whose key is ``after``.

    Tokens name the last item returned, not a position, so a page does not shift when items are
    added or removed between the calls (an offset would repeat or skip items).
    """
    return base64.urlsafe_b64encode(f"od2:{after}".encode()).decode()


def decode_token(token: str | None) -> str | None:
    """The key a ``nextToken`` continues after (None for no token); InvalidNextTokenException if
    garbled."""
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    prefix, sep, after = text.partition(":")
    if prefix != "od2" or not sep:
        raise InvalidNextTokenError(f"The nextToken '{token}' is not valid.")
    return after


def page_after(items: Sequence[str], after: str | None, limit: int) -> tuple[list[str], bool]:
    """One page of ``items`` (in their order) after the key ``after``, and whether more follow.

    An ``after`` no longer in ``items`` (deleted since) continues at the first greater key.
    """
    start = 0
    if after is not None:
        if after in items:
            start = items.index(after) + 1
        else:
            start = next((i for i, item in enumerate(items) if item > after), len(items))
    chunk = list(items[start : start + limit + 1])
    return chunk[:limit], len(chunk) > limit
