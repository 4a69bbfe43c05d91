"""SELinux MLS/MCS ranges of a ``permissions`` context: ``s<n>[-s<m>][:c<a>[.c<b>][,…]]``.

The rules are the official agent's: sensitivities are ``s`` plus decimal digits with high ≥ low,
categories are ``c0`` … ``c1023``, a category span ``cA.cB`` needs B ≥ A, and no category may be
given twice (after spans are expanded). The range is returned in the canonical form the agent
passes to ``semanage`` (``s0-s0:c3,c1.c2`` → ``s0:c1.c3``). One deliberate difference: an empty
category item (``s0:c1,``) is refused, where Ruby's ``split`` silently drops a trailing one.
"""

from __future__ import annotations

import re
from typing import Final

from opendeploy.appspec._rules import OFFICIAL, RuleViolation

__all__ = ["MAX_CATEGORY", "parse_range"]

MAX_CATEGORY: Final = 1023
_NUMBER: Final = re.compile(r"[0-9]+")  # ASCII digits only; str.isdigit() would take "²"


def _full(text: str) -> str:
    return (
        f"{OFFICIAL} of a problem with the SELinux range specified ({text}) for the context "
        "parameter in the permissions section of the application specification file. Make "
        "corrections in the permissions section of the AppSpec file, and then try again."
    )


def _split_once(text: str, sep: str) -> list[str]:
    """Split at the first ``sep`` (if any); every part must be non-empty."""
    parts = text.split(sep, 1)
    if any(part == "" for part in parts):
        raise RuleViolation(f"empty part in {text!r} around {sep!r}", f"invalid range part {text}")
    return parts


def _level(text: str, prefix: str, what: str) -> int:
    if len(text) < 2 or not text.startswith(prefix) or not _NUMBER.fullmatch(text[1:]):
        raise RuleViolation(
            f"invalid {what} {text!r} (expected {prefix} followed by digits)",
            f"invalid {what} {text}",
        )
    return int(text[1:])


def _category(text: str) -> int:
    number = _level(text, "c", "category")
    if number > MAX_CATEGORY:
        raise RuleViolation(
            f"invalid category {text!r} (c0 to c{MAX_CATEGORY})", f"invalid category {text}"
        )
    return number


def _categories(text: str) -> list[int]:
    found: list[int] = []
    for item in text.split(","):
        if "." in item:
            low_text, high_text = _split_once(item, ".")
            low, high = _category(low_text), _category(high_text)
            if high < low:
                raise RuleViolation(
                    f"category span {item!r} runs backwards",
                    f"invalid category range {low_text}.{high_text}",
                )
            found.extend(range(low, high + 1))
        else:
            found.append(_category(item))
    found.sort()
    if len(set(found)) != len(found):
        raise RuleViolation("a category is given more than once", "duplicate categories")
    return found


def _format_categories(categories: list[int]) -> str:
    """Compress sorted categories into ``c1.c3,c7`` spans."""
    spans: list[str] = []
    start = prev = categories[0]
    for number in [*categories[1:], None]:
        if number is not None and number == prev + 1:
            prev = number
            continue
        spans.append(f"c{start}" if start == prev else f"c{start}.c{prev}")
        if number is not None:
            start = prev = number
    return ",".join(spans)


def parse_range(text: str) -> str:
    """Validate a range as the official agent does and return its canonical form.

    >>> parse_range("s0-s2:c0,c1,c2,c5")
    's0-s2:c0.c2,c5'
    """
    parts = _split_once(text, ":")
    sensitivities = _split_once(parts[0], "-")
    low = _level(sensitivities[0], "s", "sensitivity")
    high = low
    if len(sensitivities) == 2:
        high = _level(sensitivities[1], "s", "sensitivity")
        if high < low:
            raise RuleViolation(
                f"high sensitivity {sensitivities[1]} is below low sensitivity {sensitivities[0]}",
                _full(text),
            )
    result = f"s{low}" if low == high else f"s{low}-s{high}"
    if len(parts) == 2:
        result += ":" + _format_categories(_categories(parts[1]))
    return result
