"""What every operation handler receives besides its input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opendeploy.settings import ServerSettings

if TYPE_CHECKING:
    from opendeploy.store.database import Store


@dataclass(frozen=True)
class RequestContext:
    """One verified request: who sent it, and the server's store and settings.

    ``principal`` is the verified access key id of the caller.
    """

    store: Store
    settings: ServerSettings
    principal: str
    request_id: str


#: An operation handler: validated input (model member names, datetimes for timestamps, bytes for
#: blobs) -> output dict (model member names; datetimes; None values are dropped on the wire).
Handler = Callable[[RequestContext, dict[str, Any]], dict[str, Any]]
