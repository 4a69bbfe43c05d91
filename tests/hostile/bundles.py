"""Writing the corpus bundles: zip, tar, tgz or a directory, from a list of entries.

An entry is a plain tuple, so the case tables stay data: ``("file", name, data[, mode])``,
``("dir", name)``, ``("symlink", name, target)``, ``("hardlink", name, target)``, or a special
file ``("fifo" | "chr" | "blk", name)``. Names and data may hold the placeholders of
:class:`Places` (``{dest}``, ``{canary}``, ``{up}`` …), filled in per test. A bundle may then be
damaged as a whole (``truncate``, ``crc``, ``garbage``, ``empty``).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Entry = tuple[Any, ...]

#: How far up the unpacked archive (root/<group>/<deployment>/deployment-archive) is from the
#: test's directory: "{up}/canary/x" names the canary from inside the archive.
UP = "../../../.."


@dataclass(frozen=True)
class Places:
    """Where one corpus test puts things; every path is under the test's tmp dir."""

    base: Path
    group: str
    root_name: str = "root"  # the deployment root, beside dest and canary

    @property
    def dest(self) -> Path:
        return self.base / "dest"

    @property
    def canary(self) -> Path:
        return self.base / "canary"

    @property
    def root(self) -> Path:
        return self.base / self.root_name

    @property
    def instructions(self) -> Path:
        return self.root / "deployment-instructions"

    def fill(self, text: str) -> str:
        return (
            text.replace("{dest}", str(self.dest))
            .replace("{canary}", str(self.canary))
            .replace("{root}", str(self.root))
            .replace("{instructions}", str(self.instructions))
            .replace("{group}", self.group)
            .replace("{up}", UP)
        )

    def fill_bytes(self, data: bytes) -> bytes:
        return self.fill(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def representable(kind: str, entries: Sequence[Entry]) -> bool:
    """Whether the bundle type can hold these entries (a directory cannot hold ``../x``)."""
    for entry in entries:
        what, name = entry[0], entry[1]
        if kind == "directory":
            if what in ("hardlink", "chr", "blk") or name.startswith(("/", "{")):
                return False
            if ".." in name.split("/") or "\\" in name:
                return False
        if kind == "zip" and what in ("hardlink", "blk"):
            return False
        if kind in ("tar", "tgz") and "\\" in name:
            return False
    return True


def write_bundle(
    kind: str, entries: Sequence[Entry], path: Path, places: Places, damage: str | None = None
) -> Path:
    """Write ``entries`` as a ``kind`` bundle at ``path`` (a directory for ``directory``)."""
    filled = [_fill_entry(entry, places) for entry in entries]
    if kind == "directory":
        _write_directory(filled, path)
    elif kind == "zip":
        _write_zip(filled, path)
    else:
        _write_tar(filled, path, gz=kind == "tgz")
    if damage is not None:
        _damage(path, kind, damage)
    return path


def write_sparse_tar(path: Path, work: Path, size: int) -> Path:
    """A tar (GNU format) with an appspec and one sparse member of ``size`` bytes of holes."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "appspec.yml").write_text("version: 0.0\nos: linux\n")
    with open(work / "holes", "wb") as handle:
        handle.truncate(size)
    subprocess.run(
        ["tar", "--sparse", "-cf", str(path), "-C", str(work), "appspec.yml", "holes"], check=True
    )
    shutil.rmtree(work)
    return path


def _fill_entry(entry: Entry, places: Places) -> Entry:
    what, name, *rest = entry
    name = places.fill(name)
    if what == "file":
        data = rest[0] if rest else b""
        data = places.fill_bytes(data) if isinstance(data, bytes) and len(data) < 65536 else data
        return ("file", name, data, rest[1] if len(rest) > 1 else None)
    if what in ("symlink", "hardlink"):
        return (what, name, places.fill(rest[0]))
    return (what, name)


def _write_directory(entries: Sequence[Entry], root: Path) -> None:
    root.mkdir(parents=True)
    for what, name, *rest in entries:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if what == "file":
            path.write_bytes(rest[0])
            if rest[1] is not None:
                path.chmod(rest[1])
        elif what == "dir":
            path.mkdir(exist_ok=True)
        elif what == "symlink":
            path.symlink_to(rest[0])
        elif what == "fifo":
            os.mkfifo(path)
        else:  # pragma: no cover - filtered by representable()
            raise AssertionError(what)


_ZIP_TYPES = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "fifo": stat.S_IFIFO,
    "chr": stat.S_IFCHR,
}


def _write_zip(entries: Sequence[Entry], path: Path) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for what, name, *rest in entries:
            full = name + "/" if what == "dir" and not name.endswith("/") else name
            info = zipfile.ZipInfo(full, date_time=(2020, 9, 13, 12, 26, 40))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            mode = rest[1] if what == "file" and rest[1] is not None else 0o644
            if what == "dir":
                mode = 0o755
            info.external_attr = (_ZIP_TYPES[what] | mode) << 16
            data = rest[0] if what in ("file", "symlink") else b""
            archive.writestr(info, data.encode() if isinstance(data, str) else data)


_TAR_TYPES = {
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def _write_tar(entries: Sequence[Entry], path: Path, *, gz: bool) -> None:
    with tarfile.open(path, "w:gz" if gz else "w", format=tarfile.GNU_FORMAT) as archive:
        for what, name, *rest in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if what == "file":
                info.size = len(rest[0])
                info.mode = 0o644 if rest[1] is None else rest[1]
                archive.addfile(info, io.BytesIO(rest[0]))
                continue
            info.type = _TAR_TYPES[what]
            if what in ("symlink", "hardlink"):
                info.linkname = rest[0]
            info.mode = 0o755 if what == "dir" else 0o644
            archive.addfile(info)


def _damage(path: Path, kind: str, damage: str) -> None:
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "crc":
        if kind == "tgz":
            data[-8] ^= 0xFF  # the gzip trailer's CRC32
        else:  # zip: flip a byte of the first member's stored data
            marker = data.index(b"PK\x03\x04")
            name_len = int.from_bytes(data[marker + 26 : marker + 28], "little")
            extra_len = int.from_bytes(data[marker + 28 : marker + 30], "little")
            data[marker + 30 + name_len + extra_len + 2] ^= 0x55
        path.write_bytes(bytes(data))
    elif damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "gzip-of-garbage":
        path.write_bytes(gzip.compress(os.urandom(4096)))
    else:  # pragma: no cover
        raise AssertionError(damage)
