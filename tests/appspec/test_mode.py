"""``mode`` values: YAML scalar in, the octal string the agent applies out."""

from __future__ import annotations

import pytest

from opendeploy.appspec.permissions import parse_mode
from opendeploy.errors import AppSpecError


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (420, "420"),  # an unquoted 0644 reaches us as 420, as it reaches the agent
        (644, "644"),
        ("0644", "0644"),
        ("644", "644"),
        (7, "007"),
        ("5", "005"),
        (0, "000"),
        (4755, "4755"),
        ("0000", "0000"),
    ],
)
def test_valid_modes(value: object, mode: str) -> None:
    assert parse_mode(value) == mode


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("8xx", "invalid character '8' (octal digits only)"),
        ("64a", "invalid character 'a'"),
        (-1, "invalid character '-'"),
        ("00644", "must be 1 to 4 octal digits (got 5)"),
        (77777, "must be 1 to 4 octal digits (got 5)"),
        ("", "got an empty string"),
        (True, "must be an octal mode"),
        (6.44, "must be an octal mode"),
        (None, "must be an octal mode"),
        ([644], "must be an octal mode"),
    ],
)
def test_invalid_modes(value: object, rule: str) -> None:
    with pytest.raises(AppSpecError) as info:
        parse_mode(value)
    assert rule in str(info.value)


def test_official_wording_shows_the_padded_mode() -> None:
    with pytest.raises(AppSpecError) as info:
        parse_mode("9")
    assert "the permissions mode (009)" in str(info.value)
    assert "contains an invalid character (9)" in str(info.value)
