"""Data-driven appspec cases (pyinfra style): one ``cases/<name>.yml`` per rule.

Each case file is the appspec itself, headed by ``#!`` comment lines that the YAML parser
ignores:

- ``#! options: {json}`` keyword arguments for ``parse_appspec`` (``source``,
  ``max_event_timeout``, ``allowed_events``);
- ``#! error: <text>`` the parse must fail and the message must contain each such text;
- ``#! expect: <path> == <json>`` the parse must succeed and the value at ``path`` in the
  summary (``hooks.BeforeInstall[0].timeout``) must equal the JSON value.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from pathlib import Path
from typing import Any

import pytest

from opendeploy.appspec import Ace, AppSpec, parse_appspec
from opendeploy.errors import AppSpecError

CASES = sorted((Path(__file__).parent / "cases").glob("*.yml"))
_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


@dataclasses.dataclass
class Case:
    options: dict[str, Any]
    errors: list[str]
    expects: list[tuple[str, Any]]


def _read_case(path: Path) -> tuple[str, Case]:
    text = path.read_text(encoding="utf-8")
    case = Case(options={}, errors=[], expects=[])
    for line in text.splitlines():
        if not line.startswith("#! "):
            continue
        key, _, rest = line[3:].partition(":")
        rest = rest.strip()
        if key == "options":
            case.options = json.loads(rest)
        elif key == "error":
            case.errors.append(rest)
        elif key == "expect":
            where, _, value = rest.partition(" == ")
            case.expects.append((where.strip(), json.loads(value)))
        else:
            raise AssertionError(f"{path.name}: unknown header {key!r}")
    assert bool(case.errors) != bool(case.expects), f"{path.name}: give errors or expects"
    assert path.name.startswith("err_" if case.errors else "ok_"), path.name
    return text, case


def summary(value: object) -> Any:
    """A JSON-like view of a parsed value: enums as values, sets sorted, ACEs in setfacl form."""
    if isinstance(value, Ace):
        return value.to_setfacl()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: summary(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset):
        return sorted(summary(v) for v in value)
    if isinstance(value, list | tuple):
        return [summary(v) for v in value]
    if isinstance(value, dict):
        return {k: summary(v) for k, v in value.items()}
    return value


def lookup(data: Any, where: str) -> Any:
    pos = 0
    while pos < len(where):
        match = _TOKEN.match(where, pos)
        assert match, f"bad path {where!r} at {pos}"
        key, index = match.groups()
        data = data[int(index)] if index is not None else data[key]
        pos = match.end()
    return data


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    text, case = _read_case(path)
    if case.errors:
        with pytest.raises(AppSpecError) as info:
            parse_appspec(text, **case.options)
        message = str(info.value)
        assert "\n" not in message
        for expected in case.errors:
            assert expected in message
        return
    spec = parse_appspec(text, **case.options)
    assert isinstance(spec, AppSpec)
    data = summary(spec)
    for where, expected in case.expects:
        assert lookup(data, where) == expected, where


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 60
