"""Apply an appspec's ``permissions`` to what this deployment installed: mode, ACLs, SELinux, owner.

Selection follows the official agent exactly (``shared/reference/agent-behaviour.md`` §2.4):

- an ``object`` that is a file copied by this deployment is a target only if ``type`` includes
  ``file``, and then ``pattern`` must be ``**``, ``except`` empty, and the ACL free of default
  entries;
- an ``object`` that is a directory created by this deployment or already on disk selects the files
  copied (``type: file``) and directories created (``type: directory``) *by this deployment*
  strictly below it -- never the object itself and never content that was already there. ``**``
  matches at any depth; any other pattern is a glob where only ``*`` is special, matched against a
  direct child's name. A match whose direct-child name matches an ``except`` glob is dropped;
- anything else selects nothing; a second permission hitting the same target is an error.

Per target the work is, in order: chmod, setfacl, SELinux context, chown. Planning
(``plan_permissions`` then ``instructions_for``) only reads the filesystem; the instruction values
do the work in ``execute``. Deliberate differences from the official agent, each safer:

- SELinux contexts are set with ``chcon`` (no ``semanage fcontext`` rule, so nothing is recorded in
  the cleanup file: the labels go away with the files this deployment created, which are the only
  possible targets). It needs ``chcon`` and SELinux enabled; otherwise a clear error.
- ``setfacl`` and ``chcon`` must be installed when asked for; the check runs while planning, before
  anything is copied, and the error says what to install.
- symlink targets are never followed: chmod, setfacl and chcon skip them and chown changes the link.
- chown keeps setuid/setgid bits that a chmod set just before (the kernel clears them on chown).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from opendeploy.appspec.model import Ace, ObjectType, Permission, SELinuxContext
from opendeploy.errors import PermissionsError

__all__ = [
    "Chmod",
    "Chown",
    "PermissionInstruction",
    "PermissionTarget",
    "SetAcl",
    "SetContext",
    "acl_entries",
    "apply_permissions",
    "instructions_for",
    "plan_permissions",
    "selinux_enabled",
]

_DEFAULT_ACL_ON_FILE = (
    "The deployment failed because the -d parameter has been specified to apply an acl setting "
    "to a file. This parameter is supported for directories only. Update the AppSpec file, and "
    "then try again."
)


@dataclass(frozen=True)
class PermissionTarget:
    """One path a permission applies to; ``is_file`` tells a copied file from a created dir."""

    path: str
    permission: Permission
    is_file: bool


@dataclass(frozen=True)
class Chmod:
    """Set the mode bits of ``file`` to the octal string ``mode`` (``"420"`` means 0o420)."""

    file: str
    mode: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "chmod", "mode": self.mode, "file": self.file}

    def execute(self) -> None:
        if os.path.islink(self.file):
            return  # Linux has no mode on a symlink; chmod would change its target.
        try:
            os.chmod(self.file, int(self.mode, 8))
        except OSError as exc:
            raise PermissionsError(
                f"permissions mode: chmod {self.mode} {self.file} failed: {exc.strerror}"
            ) from exc


@dataclass(frozen=True)
class SetAcl:
    """Replace the ACL of ``file`` with ``acl`` plus the base entries of its current mode."""

    file: str
    acl: tuple[Ace, ...]

    def to_json(self) -> dict[str, Any]:
        return {"type": "setfacl", "acl": [ace.to_setfacl() for ace in self.acl], "file": self.file}

    def execute(self) -> None:
        if os.path.islink(self.file):
            return
        setfacl = _require_tool("setfacl", self.file, "acls", "install the acl package")
        entries = ",".join(acl_entries(self.acl, stat.S_IMODE(os.stat(self.file).st_mode)))
        result = _run([setfacl, "--set", entries, self.file])
        if result.returncode != 0:
            raise PermissionsError(
                "The deployment failed because of a problem with the acls permission settings in "
                f"the application specification file for this object: {self.file}. Failed "
                f"command: setfacl --set {entries} {self.file}. Exit code: {result.returncode}"
                f"{_stderr_suffix(result)}"
            )


@dataclass(frozen=True)
class SetContext:
    """Set the SELinux context of ``file`` with ``chcon [-u user] -t type [-l range]``."""

    file: str
    context: SELinuxContext

    def to_json(self) -> dict[str, Any]:
        # The official shape names the step after semanage; role is always null.
        context = {
            "user": self.context.user,
            "role": None,
            "type": self.context.type,
            "range": self.context.range,
        }
        return {"type": "semanage", "context": context, "file": self.file}

    def execute(self) -> None:
        if os.path.islink(self.file):
            return
        chcon = _require_selinux(self.file)
        command = [chcon]
        if self.context.user:
            command += ["-u", self.context.user]
        command += ["-t", self.context.type]
        if self.context.range:
            command += ["-l", self.context.range]
        command.append(self.file)
        result = _run(command)
        if result.returncode != 0:
            raise PermissionsError(
                "The deployment failed because the application specification file contains an "
                "error in the settings for the context parameter. Update the permissions section "
                f"of the AppSpec file, and then try again. Failed command: {' '.join(command)}. "
                f"Exit code: {result.returncode}{_stderr_suffix(result)}"
            )


@dataclass(frozen=True)
class Chown:
    """Give ``file`` to ``owner`` and/or ``group`` (names, or numeric ids)."""

    file: str
    owner: str | None
    group: str | None

    def to_json(self) -> dict[str, Any]:
        return {"type": "chown", "owner": self.owner, "group": self.group, "file": self.file}

    def execute(self) -> None:
        uid = resolve_user(self.owner, self.file) if self.owner is not None else -1
        gid = resolve_group(self.group, self.file) if self.group is not None else -1
        try:
            before = os.lstat(self.file)
            os.chown(self.file, uid, gid, follow_symlinks=False)
            special = stat.S_ISUID | stat.S_ISGID
            if not stat.S_ISLNK(before.st_mode) and before.st_mode & special:
                # The kernel drops setuid/setgid on chown; put back what chmod just set.
                os.chmod(self.file, stat.S_IMODE(before.st_mode))
        except OSError as exc:
            raise PermissionsError(
                f"permissions owner/group: chown {self.owner or ''}:{self.group or ''} "
                f"{self.file} failed: {exc.strerror}"
            ) from exc


PermissionInstruction = Chmod | SetAcl | SetContext | Chown


def plan_permissions(
    permissions: Sequence[Permission],
    *,
    copied_files: Collection[str],
    created_dirs: Collection[str],
    is_dir: Callable[[str], bool] = os.path.isdir,
) -> Iterator[PermissionTarget]:
    """Yield every (target, permission) pair, in appspec order, checking every rule on the way.

    ``copied_files`` and ``created_dirs`` are the normalised absolute paths this deployment copies
    and creates, in the order it does so. ``is_dir`` answers "is this object an existing
    directory?"; planning reads nothing else. Raises ``PermissionsError`` for a rule broken
    (including a tool or user that the host lacks), before any permission is applied.
    """
    seen: set[str] = set()
    for index, permission in enumerate(permissions):
        checked = False
        for target in _targets(index, permission, copied_files, created_dirs, is_dir):
            if target.path in seen:
                raise PermissionsError(
                    "The deployment failed because the permissions setting for "
                    f"({target.path}) is specified more than once in the application "
                    "specification file. Update the files section of the AppSpec file, and then "
                    "try again."
                )
            seen.add(target.path)
            if not checked:
                _check_host_supports(permission, target.path)
                checked = True
            yield target


def instructions_for(target: PermissionTarget) -> Iterator[PermissionInstruction]:
    """The steps for one target, in the official order: chmod, setfacl, context, chown."""
    permission = target.permission
    if permission.mode is not None:
        yield Chmod(target.path, permission.mode)
    if permission.acls:
        yield SetAcl(target.path, permission.acls)
    if permission.context is not None:
        yield SetContext(target.path, permission.context)
    if permission.owner is not None or permission.group is not None:
        yield Chown(target.path, permission.owner, permission.group)


def apply_permissions(
    permissions: Sequence[Permission],
    *,
    copied_files: Collection[str],
    created_dirs: Collection[str],
    on_progress: Callable[[str], None] | None = None,
) -> int:
    """Apply ``permissions`` to what this deployment copied and created; return the target count.

    Every rule is checked (a first pass over the plan) before anything changes, as the official
    agent plans everything before it acts.
    """
    total = sum(
        1
        for _ in plan_permissions(permissions, copied_files=copied_files, created_dirs=created_dirs)
    )
    for target in plan_permissions(
        permissions, copied_files=copied_files, created_dirs=created_dirs
    ):
        for instruction in instructions_for(target):
            instruction.execute()
    if on_progress is not None:
        on_progress(f"permissions applied to {total} paths")
    return total


def acl_entries(aces: Sequence[Ace], mode: int) -> list[str]:
    """The full ``setfacl --set`` entry list: ``aces`` plus base entries taken from ``mode``.

    As the official agent does: ``user::``, ``group::`` and ``other::`` come from the mode bits; a
    ``mask::`` equal to the group bits is added when there are named entries and no mask; with
    default entries, the missing default base entries (and default mask) are added likewise.
    """
    user, group, other = (_rwx((mode >> shift) & 7) for shift in (6, 3, 0))
    entries = [f"user::{user}", f"group::{group}", f"other::{other}"]
    entries += [ace.to_setfacl() for ace in aces]
    access = [ace for ace in aces if not ace.default]
    if any(ace.name and ace.kind in ("user", "group") for ace in access) and not any(
        ace.kind == "mask" for ace in access
    ):
        entries.append(f"mask::{group}")
    defaults = [ace for ace in aces if ace.default]
    if defaults:
        base = {ace.kind: ace.perms for ace in defaults if not ace.name}
        for kind, perms in (("user", user), ("group", group), ("other", other)):
            if kind not in base:
                entries.append(f"default:{kind}::{perms}")
        named = any(ace.name and ace.kind in ("user", "group") for ace in defaults)
        if named and "mask" not in base:
            entries.append(f"default:mask::{base.get('group', group)}")
    return entries


def resolve_user(name: str, path: str = "") -> int:
    """A user name (or numeric uid) to its uid; ``PermissionsError`` if there is no such user."""
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        if name.isdigit():
            return int(name)
    where = f" for {path}" if path else ""
    raise PermissionsError(f"permissions owner: {name!r}{where} is not a user on this host")


def resolve_group(name: str, path: str = "") -> int:
    """A group name (or numeric gid) to its gid; ``PermissionsError`` if there is no such group."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
    where = f" for {path}" if path else ""
    raise PermissionsError(f"permissions group: {name!r}{where} is not a group on this host")


def selinux_enabled() -> bool:
    """Whether SELinux is enabled: selinuxfs is mounted, or ``selinuxenabled`` says so."""
    if os.path.exists("/sys/fs/selinux/enforce"):
        return True
    tool = shutil.which("selinuxenabled")
    return tool is not None and _run([tool]).returncode == 0


def _targets(
    index: int,
    permission: Permission,
    copied_files: Collection[str],
    created_dirs: Collection[str],
    is_dir: Callable[[str], bool],
) -> Iterator[PermissionTarget]:
    if not permission.object.startswith("/"):
        raise PermissionsError(
            f"permissions[{index}].object: {permission.object!r} is not an absolute path; "
            "objects must be absolute"
        )
    obj = _normalise(permission.object)
    wants_files = ObjectType.FILE in permission.types
    if obj in copied_files:
        if wants_files:
            _check_file_object(permission, obj)
            yield PermissionTarget(obj, permission, is_file=True)
        return
    if obj not in created_dirs and not is_dir(obj):
        return
    base = obj if obj.endswith("/") else obj + "/"
    pattern = None if permission.pattern == "**" else _glob(permission.pattern)
    excepts = [_glob(item) for item in permission.except_]

    def selected(path: str) -> bool:
        if not path.startswith(base) or path == base:
            return False
        child = path[len(base) :]
        if pattern is not None and ("/" in child or not pattern.fullmatch(child)):
            return False
        return "/" in child or not any(item.fullmatch(child) for item in excepts)

    if wants_files:
        for path in copied_files:
            if selected(path):
                if any(ace.default for ace in permission.acls):
                    raise PermissionsError(_DEFAULT_ACL_ON_FILE)
                yield PermissionTarget(path, permission, is_file=True)
    if ObjectType.DIRECTORY in permission.types:
        for path in created_dirs:
            if selected(path):
                yield PermissionTarget(path, permission, is_file=False)


def _check_file_object(permission: Permission, obj: str) -> None:
    if permission.pattern != "**":
        raise PermissionsError(
            "The deployment failed because the application specification file includes an "
            f"object ({permission.object}) with an invalid pattern ({permission.pattern}), such as "
            "a pattern for a file applied to a directory. Correct the permissions section of the "
            "AppSpec file, and then try again."
        )
    if permission.except_:
        raise PermissionsError(
            "The deployment failed because the except parameter for a pattern in the permissions "
            f"section ({json.dumps(list(permission.except_))}) for the object named "
            f"{permission.object} contains an invalid format. Update the AppSpec file, and then "
            "try again."
        )
    if any(ace.default for ace in permission.acls):
        raise PermissionsError(_DEFAULT_ACL_ON_FILE)


def _check_host_supports(permission: Permission, path: str) -> None:
    """Fail before anything is installed when the host cannot do what the permission asks."""
    if permission.acls:
        _require_tool("setfacl", permission.object, "acls", "install the acl package")
    if permission.context is not None:
        _require_selinux(permission.object)
    if permission.owner is not None:
        resolve_user(permission.owner, path)
    if permission.group is not None:
        resolve_group(permission.group, path)


def _require_tool(tool: str, obj: str, field: str, hint: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise PermissionsError(f"{field} requested for {obj} but {tool} is not installed ({hint})")
    return found


def _require_selinux(obj: str) -> str:
    chcon = _require_tool(
        "chcon", obj, "context", "install coreutils, and SELinux with policycoreutils"
    )
    if not selinux_enabled():
        raise PermissionsError(
            f"context requested for {obj} but SELinux is not enabled on this host "
            "(no /sys/fs/selinux/enforce and selinuxenabled does not say it is enabled)"
        )
    return chcon


@lru_cache(maxsize=64)
class _Glob:
    """The official agent's simple glob: ``*`` matches any run of characters, nothing else is
    special.

    Matched without a regular expression: ``.*a.*a.*a…b`` backtracks exponentially, so an
    appspec pattern such as ``*a*a*a*a*a*a*a*a*b`` and a long file name would hang the
    Install. Here the literal pieces are found left to right (the leftmost place each fits
    is always as good as any later one), in time linear in the name per piece.
    """

    def __init__(self, pattern: str) -> None:
        self.pieces = pattern.split("*")

    def fullmatch(self, text: str) -> bool:
        pieces = self.pieces
        if len(pieces) == 1:
            return text == pieces[0]
        first, *middle, last = pieces
        if len(text) < len(first) + len(last):
            return False
        if not (text.startswith(first) and text.endswith(last)):
            return False
        position, end = len(first), len(text) - len(last)
        for piece in middle:
            found = text.find(piece, position, end)
            if found < 0:
                return False
            position = found + len(piece)
        return True


def _glob(pattern: str) -> _Glob:
    return _Glob(pattern)


def _normalise(path: str) -> str:
    normal = os.path.normpath(path)
    # POSIX keeps a leading "//"; File.expand_path does not.
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


def _rwx(bits: int) -> str:
    return "".join(
        letter if bits & flag else "-" for letter, flag in zip("rwx", (4, 2, 1), strict=True)
    )


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )


def _stderr_suffix(result: subprocess.CompletedProcess[str]) -> str:
    detail = result.stderr.strip()
    return f". Output: {detail}" if detail else ""
