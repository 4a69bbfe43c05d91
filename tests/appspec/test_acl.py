"""ACL entry grammar, as the official agent reads it."""

from __future__ import annotations

import pytest

from opendeploy.appspec.acl import parse_ace
from opendeploy.appspec.model import Ace
from opendeploy.errors import AppSpecError


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("u:alice:rwx", Ace(False, "user", "alice", "rwx")),
        ("user:alice:r", Ace(False, "user", "alice", "r--")),
        ("alice:wr", Ace(False, "user", "alice", "rw-")),
        ("g:devs:5", Ace(False, "group", "devs", "r-x")),
        ("group:devs:-", Ace(False, "group", "devs", "---")),
        ("m::rw", Ace(False, "mask", "", "rw-")),
        ("m:rw", Ace(False, "mask", "", "rw-")),
        ("mask:7", Ace(False, "mask", "", "rwx")),
        ("d:u::rwx", Ace(True, "user", "", "rwx")),
        ("default:group::r", Ace(True, "group", "", "r--")),
        ("d:o::0", Ace(True, "other", "", "---")),
        ("d:other:r", Ace(True, "other", "", "r--")),
        ("d::rw", Ace(True, "user", "", "rw-")),
        ("d:carol:6", Ace(True, "user", "carol", "rw-")),
        ("default:mask::x", Ace(True, "mask", "", "--x")),
        ("u:m:rw", Ace(False, "user", "mask", "rw-")),  # after a tag, "m" is a name
        ("g:o:r", Ace(False, "group", "other", "r--")),
        ("u:bob:", Ace(False, "user", "bob", "---")),  # empty perms: nothing, as the agent
        ("u:bob:rrr", Ace(False, "user", "bob", "r--")),
    ],
)
def test_valid_entries(entry: str, expected: Ace) -> None:
    assert parse_ace(entry) == expected


def test_to_setfacl_form() -> None:
    assert parse_ace("d:u:alice:6").to_setfacl() == "default:user:alice:rw-"
    assert parse_ace("m::rw").to_setfacl() == "mask::rw-"


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ("rwx", "1 ':'-separated parts"),
        ("a:b:c:d:e", "5 ':'-separated parts"),
        ("x:u:bob:r", "with 4 parts the first must be d or default"),
        ("d:default:bob:r", "default is given twice"),
        ("z:bob:r", "unknown tag 'z'"),
        ("m:bob:r", "a mask entry cannot name a user or group"),
        ("o:bob:r", "a other entry cannot name"),
        ("u::r", "a base ACL entry (no name) is set with mode"),
        ("group::r", "a base ACL entry"),
        ("o:r", "a base ACL entry"),
        ("other::r", "a base ACL entry"),
        ("u:bob:rwX", "invalid permission character 'X'"),
        ("u:bob:64", "invalid permission character '6'"),
    ],
)
def test_invalid_entries(entry: str, rule: str) -> None:
    with pytest.raises(AppSpecError) as info:
        parse_ace(entry)
    assert rule in str(info.value)


def test_official_wordings_are_kept() -> None:
    with pytest.raises(AppSpecError) as info:
        parse_ace("u::rwx")
    assert "Use mode to set the base acl entry (u::rwx)." in str(info.value)
    with pytest.raises(AppSpecError) as info:
        parse_ace("q:bob:r")
    assert str(info.value).endswith("Invalid acl entry (q:bob:r).")
