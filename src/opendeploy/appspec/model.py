"""The parsed AppSpec: frozen values shared by the parser, the installer and the hook runner.

These types are the contract between ``appspec.parse`` (which builds them from YAML and
validates every rule) and ``agent/`` (which acts on them). Field names follow the appspec keys.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class FileExistsBehavior(enum.StrEnum):
    DISALLOW = "DISALLOW"
    OVERWRITE = "OVERWRITE"
    RETAIN = "RETAIN"


class ObjectType(enum.StrEnum):
    FILE = "file"
    DIRECTORY = "directory"


@dataclass(frozen=True)
class FileMapping:
    """One ``files`` entry: ``source`` is relative to the unpacked bundle (``/`` = all of it)."""

    source: str
    destination: str


@dataclass(frozen=True)
class Ace:
    """One ACL entry in setfacl form, e.g. ``d:u:alice:rwx``.

    ``kind`` is ``user``, ``group``, ``mask`` or ``other``; ``name`` is empty for a base entry.
    ``perms`` is normalised to ``rwx`` letters with ``-`` for missing bits.
    """

    default: bool
    kind: str
    name: str
    perms: str

    def to_setfacl(self) -> str:
        prefix = "default:" if self.default else ""
        return f"{prefix}{self.kind}:{self.name}:{self.perms}"


@dataclass(frozen=True)
class SELinuxContext:
    """``context`` of a permissions entry: SELinux ``user`` (``name``), ``type`` and ``range``."""

    type: str
    user: str | None = None
    range: str | None = None


@dataclass(frozen=True)
class Permission:
    """One ``permissions`` entry, already validated.

    ``mode`` is the octal string as the official agent applies it (zero-padded to 3 digits; note
    that an unquoted ``mode: 0644`` is the YAML 1.1 integer 420 and becomes ``"420"``, exactly as
    with the official agent). ``types`` defaults to both file and directory.
    """

    object: str
    pattern: str = "**"
    except_: tuple[str, ...] = ()
    types: frozenset[ObjectType] = frozenset({ObjectType.FILE, ObjectType.DIRECTORY})
    owner: str | None = None
    group: str | None = None
    mode: str | None = None
    acls: tuple[Ace, ...] = ()
    context: SELinuxContext | None = None


@dataclass(frozen=True)
class Script:
    """One hook script: ``location`` relative to the bundle, ``timeout`` in seconds."""

    location: str
    timeout: int = 3600
    runas: str | None = None
    sudo: bool = False


@dataclass(frozen=True)
class AppSpec:
    """A validated EC2/on-premises AppSpec file (``version: 0.0``)."""

    version: float
    os: str
    files: tuple[FileMapping, ...] = ()
    permissions: tuple[Permission, ...] = ()
    hooks: dict[str, tuple[Script, ...]] = field(default_factory=dict)
    file_exists_behavior: FileExistsBehavior | None = None

    def scripts_for(self, event: str) -> tuple[Script, ...]:
        return self.hooks.get(event, ())
