"""Shared pieces of appspec validation: the rule-violation error and how values are shown.

Every appspec error reads ``<field path>: <value>: <rule in our words>[ — <official wording>]``.
The official agent's wording is kept after the dash because CI tools grep for it; values inside
that part are rendered the way the Ruby agent interpolates them (``to_s`` / ``inspect``).
"""

from __future__ import annotations

import json
from typing import Final

from opendeploy.errors import AppSpecError

#: What the official agent's messages start with; kept so the whole text stays recognisable.
OFFICIAL: Final = "The deployment failed because"

_MAX_SHOWN: Final = 80


class _Missing:
    """The value of a key that is absent (shown as ``missing``, interpolated as Ruby's nil)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class RuleViolation(AppSpecError):
    """A value breaks a rule; the caller knows the field path and turns this into the message.

    Raised by the small value parsers (``parse_ace``, ``parse_range``, ``parse_mode``) so that they
    can be used and tested on their own; ``rule`` is our wording, ``official`` the agent's.
    """

    def __init__(self, rule: str, official: str = "") -> None:
        super().__init__(f"{rule} — {official}" if official else rule)
        self.rule = rule
        self.official = official


def show(value: object) -> str:
    """Render a YAML value for our part of a message: strings quoted, null as ``null``."""
    if value is MISSING:
        return "missing"
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # e.g. non-string mapping keys mixed with others
        text = repr(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 1] + "…"
    return text


def ruby_s(value: object) -> str:
    """Render a value as Ruby's string interpolation does (nil → empty, true → ``true``)."""
    if value is None or value is MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return ruby_inspect(value)


def ruby_inspect(value: object) -> str:
    """Render a value as Ruby's ``inspect`` does (Ruby < 3.4 hash style), for official texts."""
    if value is None or value is MISSING:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = ", ".join(f"{ruby_inspect(k)}=>{ruby_inspect(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(ruby_inspect(v) for v in value) + "]"
    return str(value)


def one_line(text: str) -> str:
    """Keep a message on one line whatever the user's values contain."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def field_error(path: str, value: object, rule: str, official: str = "") -> AppSpecError:
    """Build the error for ``path`` holding ``value`` that breaks ``rule``."""
    text = f"{path}: {show(value)}: {rule}"
    if official:
        text += f" — {official}"
    return AppSpecError(one_line(text))


def from_violation(path: str, value: object, exc: RuleViolation) -> AppSpecError:
    """Put the field path and value in front of a value parser's violation."""
    return field_error(path, value, exc.rule, exc.official)
