"""Helpers the handler modules share: name checks, ARNs, page tokens, time, batch limits."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Any

from opendeploy.api.context import RequestContext
from opendeploy.errors import ServiceError
from opendeploy.service_errors import (
    ApplicationNameRequiredError,
    BatchLimitExceededError,
    InvalidApplicationNameError,
)
from opendeploy.store._base import decode_token, encode_token, page_after

#: AWS's pattern and length for application, group and configuration names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9+=,.@_-]{1,100}")

#: Environment variable that sets the page size of every List* operation, read once at import.
PAGE_SIZE_ENV = "OPENDEPLOY_PAGE_SIZE"


def _page_size() -> int:
    """AWS's page of 100 items, unless ``OPENDEPLOY_PAGE_SIZE`` says otherwise.

    No List* operation takes a page size, so the server picks one; the knob exists so that a test
    server can page after 2 items and every paginator reaches a second page cheaply.
    """
    raw = os.environ.get(PAGE_SIZE_ENV, "").strip()
    if not raw:
        return 100
    size = int(raw)
    if size < 1:
        raise ValueError(f"{PAGE_SIZE_ENV}={raw!r}: the page size must be at least 1")
    return size


#: Items per page of every List* operation (see :func:`_page_size`).
PAGE_SIZE = _page_size()

__all__ = ["PAGE_SIZE", "PAGE_SIZE_ENV", "decode_token", "encode_token", "page_after"]


def now() -> datetime:
    return datetime.now(UTC)


def check_name(
    value: Any,
    *,
    field: str,
    required: type[ServiceError],
    invalid: type[ServiceError],
) -> str:
    """``value`` if it is a valid name; else the specific Required/Invalid error of the field."""
    if value is None or value == "":
        raise required(f"{field} is required.")
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise invalid(
            f"{field}: {value!r} must be 1 to 100 characters of A-Z a-z 0-9 + = , . @ _ -"
        )
    return value


def app_name(value: Any) -> str:
    return check_name(
        value,
        field="Application name",
        required=ApplicationNameRequiredError,
        invalid=InvalidApplicationNameError,
    )


def check_batch(items: Any, *, limit: int, what: str) -> list[Any]:
    """The list, or BatchLimitExceededException when it holds more than ``limit`` entries."""
    found: list[Any] = list(items or [])
    if len(found) > limit:
        raise BatchLimitExceededError(
            f"The maximum number of {what} allowed for this request ({limit}) was exceeded."
        )
    return found


def page(keys: list[str], more: bool) -> str | None:
    """The ``nextToken`` after a page whose items have the (sort) ``keys``."""
    return encode_token(keys[-1]) if more and keys else None


def arn(ctx: RequestContext, resource: str) -> str:
    """``arn:aws:codedeploy:<region>:<account>:<resource>``."""
    s = ctx.settings
    return f"arn:aws:codedeploy:{s.region}:{s.account_id}:{resource}"


def application_arn(ctx: RequestContext, name: str) -> str:
    return arn(ctx, f"application:{name}")


def deployment_group_arn(ctx: RequestContext, app: str, group: str) -> str:
    return arn(ctx, f"deploymentgroup:{app}/{group}")


def deployment_config_arn(ctx: RequestContext, name: str) -> str:
    return arn(ctx, f"deploymentconfig:{name}")


def tag_pairs(tags: Any) -> list[tuple[str, str]]:
    """API ``[{Key, Value}]`` as (key, value) pairs (missing value = "")."""
    return [(str(t.get("Key") or ""), str(t.get("Value") or "")) for t in tags or []]
