"""What every repository shares: the database handle and opaque page tokens."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from opendeploy.service_errors import InvalidNextTokenError

if TYPE_CHECKING:
    from opendeploy.store.database import Database


class Repository:
    """Base of the repositories: holds the :class:`~opendeploy.store.database.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db


def encode_token(offset: int) -> str:
    """An opaque ``nextToken`` for the page that starts at ``offset``."""
    return base64.urlsafe_b64encode(f"od1:{offset}".encode()).decode()


def decode_token(token: str | None) -> int:
    """The offset a ``nextToken`` stands for (0 for none); InvalidNextTokenException if garbled."""
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        prefix, _, number = text.partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeError, ValueError):
        offset = -1
        prefix = ""
    if prefix != "od1" or offset < 0:
        raise InvalidNextTokenError(f"The nextToken '{token}' is not valid.")
    return offset
