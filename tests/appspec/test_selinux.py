"""SELinux range grammar and its canonical form."""

from __future__ import annotations

import pytest

from opendeploy.appspec.selinux import parse_range
from opendeploy.errors import AppSpecError


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("s0", "s0"),
        ("s15", "s15"),
        ("s00", "s0"),
        ("s0-s0", "s0"),
        ("s0-s15", "s0-s15"),
        ("s0:c0", "s0:c0"),
        ("s0:c0.c1023", "s0:c0.c1023"),
        ("s0:c1,c2,c3", "s0:c1.c3"),
        ("s0:c5,c1.c3,c9", "s0:c1.c3,c5,c9"),
        ("s1-s2:c7,c1", "s1-s2:c1,c7"),
        ("s0:c3.c3", "s0:c3"),
    ],
)
def test_valid_ranges(text: str, canonical: str) -> None:
    assert parse_range(text) == canonical


@pytest.mark.parametrize(
    ("text", "official"),
    [
        ("", "invalid range part "),
        ("s0:", "invalid range part s0:"),
        (":c1", "invalid range part :c1"),
        ("s0-", "invalid range part s0-"),
        ("s0:c1.", "invalid range part c1."),
        ("s", "invalid sensitivity s"),
        ("t0", "invalid sensitivity t0"),
        ("s1a", "invalid sensitivity s1a"),
        ("s١", "invalid sensitivity s١"),  # a non-ASCII digit
        ("s0-s1-s2", "invalid sensitivity s1-s2"),
        ("s2-s1", "SELinux range specified (s2-s1)"),
        ("s0:c", "invalid category c"),
        ("s0:k1", "invalid category k1"),
        ("s0:c1024", "invalid category c1024"),
        ("s0:c1,,c2", "invalid category "),
        ("s0:c1,", "invalid category "),  # stricter than Ruby's split, on purpose
        ("s0:c4.c2", "invalid category range c4.c2"),
        ("s0:c1,c1", "duplicate categories"),
        ("s0:c1.c4,c3", "duplicate categories"),
    ],
)
def test_invalid_ranges(text: str, official: str) -> None:
    with pytest.raises(AppSpecError) as info:
        parse_range(text)
    assert official in str(info.value)
