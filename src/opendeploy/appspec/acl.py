"""ACL entries of a ``permissions`` entry: the setfacl-like grammar the official agent accepts.

Grammar: ``[d[efault]:][u[ser]|g[roup]|m[ask]|o[ther]:]<name>:<perms>``, 2 to 4 parts separated
by ``:``. When no tag is given the name slot may itself be ``m``/``mask`` or ``o``/``other``
(``m:rw`` is the mask); otherwise the entry is for a user. ``perms`` is any of ``r``, ``w``,
``x``, ``-`` or a single octal digit. As with the official agent, a named mask or other entry is
invalid and an unnamed access (non-default) entry other than the mask is refused: the base
entries come from ``mode``.
"""

from __future__ import annotations

from typing import Final

from opendeploy.appspec._rules import OFFICIAL, RuleViolation
from opendeploy.appspec.model import Ace

__all__ = ["parse_ace"]

GRAMMAR: Final = "[d[efault]:][u[ser]|g[roup]|m[ask]|o[ther]:]name:perms"

_TAGS: Final = {
    "u": "user",
    "user": "user",
    "g": "group",
    "group": "group",
    "m": "mask",
    "mask": "mask",
    "o": "other",
    "other": "other",
}
_DEFAULT: Final = frozenset({"d", "default"})
# Only these two may stand in the name slot as a tag (``m:rw``, ``o:r``).
_NAME_SLOT_TAGS: Final = frozenset({"m", "mask", "o", "other"})


def _invalid(entry: str, rule: str) -> RuleViolation:
    return RuleViolation(
        f"invalid ACL entry: {rule}",
        f"{OFFICIAL} of a problem with the acls permission settings in the application "
        f"specification file. Invalid acl entry ({entry}).",
    )


def parse_ace(entry: str) -> Ace:
    """Parse one ACL entry as the official agent does; raise ``RuleViolation`` if invalid.

    >>> parse_ace("d:u:alice:6").to_setfacl()
    'default:user:alice:rw-'
    """
    parts = entry.split(":")
    if not 2 <= len(parts) <= 4:
        rule = f"{len(parts)} ':'-separated parts, expected 2 to 4 ({GRAMMAR})"
        raise _invalid(entry, rule)
    *prefix, name_part, perms_part = parts
    default = False
    tag: str | None = None
    if len(prefix) == 2:
        if prefix[0] not in _DEFAULT:
            raise _invalid(entry, f"with 4 parts the first must be d or default, not {prefix[0]!r}")
        default = True
        tag = prefix[1]
    elif prefix:
        tag = prefix[0]

    kind: str | None = None
    if tag is not None:
        if tag in _DEFAULT:
            if default:
                raise _invalid(entry, "default is given twice")
            default = True
        elif tag in _TAGS:
            kind = _TAGS[tag]
        else:
            raise _invalid(entry, f"unknown tag {tag!r} ({GRAMMAR})")

    name = ""
    if name_part in _NAME_SLOT_TAGS:
        # Without a tag, "m"/"o" in the name slot is the tag; after a tag it is a name
        # spelled out in full ("u:m:rw" names the user "mask"), as the official agent reads it.
        if kind is None:
            kind = _TAGS[name_part]
        else:
            name = _TAGS[name_part]
    else:
        if kind is None:
            kind = "user"
        name = name_part

    if kind in ("mask", "other") and name:
        raise _invalid(entry, f"a {kind} entry cannot name a user or group ({name!r})")
    if not default and kind != "mask" and not name:
        raise RuleViolation(
            "a base ACL entry (no name) is set with mode, not acls",
            f"{OFFICIAL} of a problem with the acls permission settings in the application "
            f"specification file. Use mode to set the base acl entry ({entry}). Update the "
            "permissions section of the AppSpec file, and then try again.",
        )
    return Ace(default=default, kind=kind, name=name, perms=_parse_perms(entry, perms_part))


def _parse_perms(entry: str, text: str) -> str:
    """``rwx-`` letters in any order, or one octal digit → normalised ``rwx`` with ``-`` gaps."""
    if len(text) == 1 and "0" <= text <= "7":
        bits = int(text)
        read, write, execute = bool(bits & 4), bool(bits & 2), bool(bits & 1)
    else:
        for char in text:
            if char not in "rwx-":
                raise RuleViolation(
                    f"invalid permission character {char!r} (use r, w, x, - or one octal digit)",
                    f"{OFFICIAL} the access control list (ACL) named {entry} in the application "
                    f"specification file contains an invalid character ({char}). Correct the ACL "
                    "in the hooks section of the AppSpec file, and then try again.",
                )
        read, write, execute = "r" in text, "w" in text, "x" in text
    return ("r" if read else "-") + ("w" if write else "-") + ("x" if execute else "-")
