"""The ``permissions`` section: each entry checked and turned into a ``Permission`` value.

Matching ``pattern``/``except`` against files is the installer's job; here they are only
checked for type and stored. Rules and official messages: agent-behaviour §2.4 and §2.6.
"""

from __future__ import annotations

from typing import Final

from opendeploy.appspec._rules import (
    MISSING,
    OFFICIAL,
    RuleViolation,
    field_error,
    from_violation,
    ruby_inspect,
    ruby_s,
)
from opendeploy.appspec.acl import GRAMMAR, parse_ace
from opendeploy.appspec.model import Ace, ObjectType, Permission, SELinuxContext
from opendeploy.appspec.selinux import parse_range

__all__ = ["build_permissions", "parse_mode"]

_NOT_WINDOWS: Final = (
    f"{OFFICIAL} the application specification file specifiles file permissions, but the "
    "deployment is targeting one or more Windows Server instances. Permissions are supported only "
    "for Amazon Linux, Ubuntu Server, and Red Hat Enterprise Linux (RHEL) instances. Update the "
    "permissions section of the AppSpec file, and then try again."
)  # [sic] "specifiles": the agent's own spelling, kept so greps still match


def parse_mode(value: object) -> str:
    """Turn a ``mode`` value into the octal string the agent applies (zero-padded to 3).

    YAML 1.1 reads an unquoted ``0644`` as the integer 420, so it becomes ``"420"`` exactly as
    with the official agent; quote modes with a leading zero. An empty string is refused (the
    agent would pad it to ``000`` and strip every permission).
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RuleViolation('must be an octal mode such as 755 or "0644"')
    text = str(value)
    if not text:
        raise RuleViolation("must be 1 to 4 octal digits (got an empty string)")
    mode = text.rjust(3, "0")
    if len(mode) > 4:
        raise RuleViolation(
            f"must be 1 to 4 octal digits (got {len(mode)})",
            f"{OFFICIAL} the length of a permissions mode ({mode}) in the application "
            "specification file is invalid. Permissions modes must be between one and four "
            "characters long. Update the permissions section of the AppSpec file, and then try "
            "again.",
        )
    for char in mode:
        if char not in "01234567":
            raise RuleViolation(
                f"invalid character {char!r} (octal digits only)",
                f"{OFFICIAL} the permissions mode ({mode}) in the application specification file "
                f"contains an invalid character ({char}). Update the permissions section of the "
                "AppSpec file, and then try again.",
            )
    return mode


def build_permissions(value: object, *, os_name: str) -> tuple[Permission, ...]:
    """Check the ``permissions`` list (``None`` = none) and build its entries."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise field_error("permissions", value, "must be a list of entries with an object")
    return tuple(_permission(entry, f"permissions[{i}]", os_name) for i, entry in enumerate(value))


def _permission(entry: object, path: str, os_name: str) -> Permission:
    if not isinstance(entry, dict):
        raise field_error(path, entry, "must be a mapping with object (and pattern, mode, …)")
    obj = entry.get("object")
    if obj is None or not isinstance(obj, str) or not obj.strip():
        shown = entry.get("object", MISSING)
        if obj is not None and not isinstance(obj, str):
            raise field_error(f"{path}.object", shown, "must be a path string")
        raise field_error(
            f"{path}.object",
            shown,
            "every permissions entry needs an object (a path)",
            f"{OFFICIAL} a permission listed in the application specification file has no object "
            "value. Update the permissions section of the AppSpec file, and then try again.",
        )
    if os_name != "linux":
        raise field_error(
            f"{path}.object",
            obj,
            f"permissions apply only with os: linux, not {os_name}",
            _NOT_WINDOWS,
        )
    pattern = entry.get("pattern")
    if pattern is not None and not isinstance(pattern, str):
        raise field_error(f"{path}.pattern", pattern, "must be a glob string such as '*.sh'")
    return Permission(
        object=obj.strip(),
        pattern=pattern if pattern is not None else "**",
        except_=_excepts(entry.get("except"), f"{path}.except"),
        types=_types(entry.get("type"), f"{path}.type"),
        owner=_name(entry.get("owner"), f"{path}.owner", "a user name"),
        group=_name(entry.get("group"), f"{path}.group", "a group name"),
        mode=_mode(entry.get("mode"), f"{path}.mode"),
        acls=_acls(entry.get("acls"), f"{path}.acls"),
        context=_context(entry.get("context"), f"{path}.context"),
    )


def _excepts(value: object, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise field_error(path, value, "must be a list of glob strings, e.g. [secret.txt]")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise field_error(f"{path}[{i}]", item, "must be a glob string")
    return tuple(value)


def _types(value: object, path: str) -> frozenset[ObjectType]:
    if value is None:
        return frozenset(ObjectType)
    if not isinstance(value, list):
        raise field_error(path, value, "must be a list such as [file] or [file, directory]")
    types: set[ObjectType] = set()
    for i, item in enumerate(value):
        if item not in ("file", "directory"):
            raise field_error(
                f"{path}[{i}]",
                item,
                "must be file or directory",
                f"{OFFICIAL} the application specification filespecifies a permission for an "
                f"object type not supported for permissions ({ruby_s(item)}). Update the "
                "permissions section of the AppSpec file, and then try again.",
            )  # [sic] "filespecifies", as the agent writes it
        types.add(ObjectType(item))
    return frozenset(types)


def _name(value: object, path: str, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise field_error(path, value, f"must be {what} (a non-empty string)")
    return value


def _mode(value: object, path: str) -> str | None:
    if value is None:
        return None
    try:
        return parse_mode(value)
    except RuleViolation as exc:
        raise from_violation(path, value, exc) from None


def _acls(value: object, path: str) -> tuple[Ace, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise field_error(path, value, f"must be a list of ACL entries ({GRAMMAR})")
    aces: list[Ace] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise field_error(f"{path}[{i}]", item, f"must be an ACL entry string ({GRAMMAR})")
        try:
            aces.append(parse_ace(item))
        except RuleViolation as exc:
            raise from_violation(f"{path}[{i}]", item, exc) from None
    return tuple(aces)


def _context(value: object, path: str) -> SELinuxContext | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise field_error(path, value, "must be a mapping with type (and optional name, range)")
    ctx_type = value.get("type")
    if ctx_type is None:
        raise field_error(
            f"{path}.type",
            value.get("type", MISSING),
            "a context needs an SELinux type",
            f"{OFFICIAL} the application specification file specifies an invalid context type "
            f"({ruby_inspect(value)}). Update the permissions section of the AppSpec file, and "
            "then try again.",
        )
    return SELinuxContext(
        type=_context_str(ctx_type, f"{path}.type"),
        user=None if value.get("name") is None else _context_str(value["name"], f"{path}.name"),
        range=_range(value.get("range"), f"{path}.range"),
    )


def _context_str(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise field_error(path, value, "must be a non-empty string")
    return value


def _range(value: object, path: str) -> str | None:
    if value is None:
        return None
    try:
        return parse_range(_context_str(value, path))
    except RuleViolation as exc:
        raise from_violation(path, value, exc) from None
