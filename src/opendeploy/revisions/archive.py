"""Unpack a revision bundle (zip, tar, tgz or a directory) without writing outside its target.

The official agent shells out to ``tar -xpsf`` / ``unzip -qo`` (agent-behaviour §1.6) and trusts
the archive. Here every entry goes through one writer that:

- refuses absolute names, ``..`` that climbs out, symbolic links whose target leaves the target
  directory (absolute targets included, and chains through other links, checked again on the
  final tree), hard links to anything but a regular file met earlier, device/FIFO/socket entries,
  and never writes *through* a link (every parent of an entry must be a real directory it made);
- counts entries and the bytes it actually writes (not only what headers claim) against
  :class:`ExtractLimits`, and stops a zip bomb by its compression ratio;
- streams data in fixed chunks, so memory stays bounded whatever the bundle size (only one small
  record per entry is kept, and entries are capped by ``max_entries``);
- keeps permission bits (scripts stay executable) but drops setuid/setgid/sticky, and never
  chowns: bundles are built on other machines whose uids mean nothing here, the agent usually runs
  as root so restoring owners would let a bundle hand files to any user, and appspec
  ``permissions`` is the supported way to set owners.

Extraction goes into a fresh sibling directory that is renamed to ``dest`` at the end, so a
failure leaves neither ``dest`` nor the temporary directory behind.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import os
import secrets
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from opendeploy.errors import BundleError, UnsafeArchiveError

__all__ = [
    "BUNDLE_TYPES",
    "ExtractLimits",
    "normalize_bundle_type",
    "remove_tree",
    "sha256_file",
    "unpack_bundle",
]

#: The bundle types CodeDeploy accepts, in the order codedeploy-local lists them.
BUNDLE_TYPES: tuple[str, ...] = ("tgz", "tar", "zip", "directory")

_CHUNK = 1024 * 1024
# Entries smaller than this skip the ratio check: tiny files of zeros compress absurdly well and
# cannot hurt anyone; a bomb has to grow past this size to matter.
_RATIO_MIN_BYTES = 1024 * 1024
_MAX_LINK_TARGET = 4096  # PATH_MAX: a longer "link target" in a zip is not a link
_MAX_LINK_HOPS = 40  # as Linux's ELOOP limit
_UNIX_HOSTS = (3, 19)  # zip "version made by" hosts whose external_attr holds st_mode (Unix, OS X)
_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX

_Kind = Literal["dir", "file", "symlink"]


@dataclass(frozen=True, kw_only=True)
class ExtractLimits:
    """Limits that stop a hostile or broken bundle from filling the disk.

    ``max_total_bytes`` caps the sum of unpacked file sizes (counted while writing),
    ``max_entries`` the number of archive members, and ``max_compression_ratio`` the ratio of
    unpacked to compressed bytes of one entry (entries under 1 MiB are not checked; ``None``
    turns the check off). Raise them for unusually large bundles.
    """

    max_total_bytes: int = 4 * 1024**3
    max_entries: int = 100_000
    max_compression_ratio: float | None = 1000.0

    def __post_init__(self) -> None:
        if self.max_total_bytes < 0:
            raise ValueError(f"max_total_bytes: {self.max_total_bytes} must be >= 0")
        if self.max_entries < 0:
            raise ValueError(f"max_entries: {self.max_entries} must be >= 0")
        if self.max_compression_ratio is not None and self.max_compression_ratio < 1:
            raise ValueError(
                f"max_compression_ratio: {self.max_compression_ratio} must be >= 1 or None"
            )


def normalize_bundle_type(value: str) -> str:
    """Return the bundle type in lower case, or raise :class:`BundleError` for an unknown one."""
    kind = value.lower()
    if kind not in BUNDLE_TYPES:
        # codedeploy-local's wording (agent-behaviour §5).
        raise BundleError(
            f"type {value} is not a valid type. Must be one of {','.join(BUNDLE_TYPES)}"
        )
    return kind


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def unpack_bundle(
    bundle: Path, bundle_type: str, dest: Path, *, limits: ExtractLimits = ExtractLimits()
) -> None:
    """Unpack ``bundle`` of ``bundle_type`` (tar, tgz, zip or directory) to become ``dest``.

    ``dest`` is removed first, as the official agent does (``rm -rf deployment-archive``). The
    declared type is trusted, not guessed: a zip declared ``tgz`` is an error. After unpacking an
    archive, a single top-level directory whose listing has a name matching ``/appspec/i``
    becomes ``dest`` itself (the official agent's leading-directory strip); a ``directory``
    bundle is copied as it is. ``bundle`` is left in place: the caller owns it and deletes it.

    Raises :class:`UnsafeArchiveError` for an entry that breaks a rule or a limit, and
    :class:`BundleError` for anything else that stops the unpack.
    """
    kind = normalize_bundle_type(bundle_type)
    bundle, dest = Path(bundle), Path(dest)
    if not os.path.lexists(bundle):
        raise BundleError(f"bundle {bundle} does not exist")
    _refuse_overlap(bundle, dest, kind)
    try:
        _remove(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = _make_staging(dest)
    except OSError as exc:
        raise BundleError(f"cannot prepare {dest} for bundle {bundle}: {exc}") from exc
    try:
        try:
            writer = _Writer(staging, limits, bundle)
            if kind == "zip":
                _unpack_zip(bundle, writer)
            elif kind == "directory":
                _copy_directory(bundle, writer)
            else:
                _unpack_tar(bundle, writer, compressed=kind == "tgz")
            top = None if kind == "directory" else _strip_prefix(staging)
            writer.check_links(top)
            os.rename(staging / top if top else staging, dest)
            writer.apply_dir_metadata(dest, top)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise BundleError(
                f"cannot unpack bundle {bundle} into {dest}: {exc.strerror or exc}{where}"
            ) from exc
    except BaseException:
        # Leave nothing half-written: neither dest nor the staging directory.
        with contextlib.suppress(OSError):
            _remove(dest)
        raise
    finally:
        with contextlib.suppress(OSError):
            _remove(staging)


# --- the writer: every entry of every bundle type goes through here -------------------------


class _Writer:
    """Creates entries under ``root`` (a fresh, empty directory), enforcing rules and limits.

    Because ``root`` starts empty and only this writer touches it, ``_kinds`` mirrors what is on
    disk, which is how it knows that no parent of an entry is a link without asking the disk.
    """

    def __init__(self, root: Path, limits: ExtractLimits, bundle: Path) -> None:
        self.root = root
        self.limits = limits
        self.bundle = bundle
        self.entries = 0
        self.total_bytes = 0
        self._kinds: dict[str, _Kind] = {"": "dir"}
        self._links: list[tuple[str, str]] = []  # (rel path, target) of every symlink made
        self._dir_meta: dict[str, tuple[int | None, float | None]] = {}

    def refuse(self, name: str, rule: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"bundle {self.bundle}: entry {name!r} {rule}")

    def count(self, name: str) -> None:
        """Count one archive member against ``max_entries``."""
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise self.refuse(
                name,
                f"is entry number {self.entries}, over the limit of {self.limits.max_entries} "
                "entries (ExtractLimits.max_entries)",
            )

    def check_declared_size(self, name: str, size: int, compressed: int | None) -> None:
        """Fail fast on sizes the headers declare, before any byte is written."""
        if self.total_bytes + size > self.limits.max_total_bytes:
            raise self._over_total(name)
        if compressed is not None:
            self._check_ratio(name, size, compressed)

    def relpath(self, name: str) -> str:
        """Normalise an archive name to a '/'-joined path under the root ('' is the root)."""
        if not name or "\x00" in name:
            raise self.refuse(name, "has an empty name or a NUL byte; such names are refused")
        if name.startswith("/"):
            raise self.refuse(name, "is an absolute path; entries must be relative")
        parts: list[str] = []
        for part in name.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise self.refuse(name, "escapes the target directory through '..'")
                parts.pop()
            else:
                parts.append(part)
        return "/".join(parts)

    def add_dir(self, name: str, *, mode: int | None, mtime: float | None) -> None:
        rel = self.relpath(name)
        if rel == "":
            return  # "./": the root is ours; its mode and time stay as made
        self._prepare(name, rel, "dir")
        if self._kinds.get(rel) != "dir":
            os.mkdir(self.root / rel)
            self._kinds[rel] = "dir"
        self._dir_meta[rel] = (mode, mtime)

    def add_file(
        self,
        name: str,
        data: IO[bytes],
        *,
        mode: int | None,
        mtime: float | None,
        compressed: Callable[[], int] | None = None,
    ) -> None:
        """Stream ``data`` into a new regular file; ``compressed`` reports bytes consumed so far."""
        rel = self._new_leaf(name, "file")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        # 0o600 while writing when the archive gives a mode: a 0600 secret is never readable by
        # others, even for a moment. Without a mode, 0o666 lets the umask decide, like tar/unzip.
        fd = os.open(os.path.join(self.root, rel), flags, 0o600 if mode is not None else 0o666)
        self._kinds[rel] = "file"
        # Raw writes on the descriptor: a buffered file object per entry (fstat, isatty probe,
        # buffer) costs more than the write itself for the many small files of a bundle.
        try:
            written = 0
            while chunk := data.read(_CHUNK):
                written += len(chunk)
                self.total_bytes += len(chunk)
                if self.total_bytes > self.limits.max_total_bytes:
                    raise self._over_total(name)
                if compressed is not None:
                    self._check_ratio(name, written, compressed())
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if mode is not None:
                os.fchmod(fd, _safe_mode(mode))
            # On the descriptor, after the last write: the same file, one path lookup less.
            _set_mtime(fd, mtime)
        finally:
            os.close(fd)

    def add_symlink(self, name: str, target: str) -> None:
        if not target or "\x00" in target:
            raise self.refuse(name, "is a symbolic link with an empty target")
        if target.startswith("/"):
            raise self.refuse(
                name, f"is a symbolic link to {target!r}; absolute link targets are refused"
            )
        rel = self.relpath(name)
        parent = rel.rpartition("/")[0]
        if not _resolves_inside(self.root, [*_split(parent), *_split(target)]):
            raise self.refuse(
                name, f"is a symbolic link to {target!r}, which points outside the target directory"
            )
        rel = self._new_leaf(name, "symlink")
        os.symlink(target, self.root / rel)
        self._kinds[rel] = "symlink"
        self._links.append((rel, target))

    def add_hardlink(self, name: str, target: str) -> None:
        if target.startswith("/"):
            raise self.refuse(name, f"is a hard link to {target!r}; absolute targets are refused")
        try:
            target_rel = self.relpath(target)
        except UnsafeArchiveError:
            raise self.refuse(
                name, f"is a hard link to {target!r}, which is outside the target directory"
            ) from None
        if self._kinds.get(target_rel) != "file":
            raise self.refuse(
                name,
                f"is a hard link to {target!r}, which is not a regular file earlier in the bundle",
            )
        rel = self._new_leaf(name, "file")
        os.link(self.root / target_rel, self.root / rel, follow_symlinks=False)
        self._kinds[rel] = "file"

    def check_links(self, top: str | None) -> None:
        """Check every link again on the final tree (below ``top`` if the root is stripped).

        A link checked when it was made can escape once a later entry turns a component of its
        target into another link (``a -> b/../x``, then ``b -> .``); resolving on the finished
        tree, from the root the caller will see, catches those chains.
        """
        root = self.root / top if top else self.root
        for rel, target in self._links:
            if self._kinds.get(rel) != "symlink":
                continue  # replaced by a later entry
            inner = rel[len(top) + 1 :] if top else rel
            if not _resolves_inside(root, _split(inner)):
                raise self.refuse(
                    rel,
                    f"is a symbolic link to {target!r}, which resolves outside the target "
                    "directory through other links",
                )

    def apply_dir_metadata(self, dest: Path, top: str | None) -> None:
        """Set directory modes and times last: a 0555 directory must not stop its children."""
        for rel in sorted(self._dir_meta, key=lambda r: r.count("/"), reverse=True):
            mode, mtime = self._dir_meta[rel]
            if top and not (rel == top or rel.startswith(top + "/")):
                continue
            path = dest / rel[len(top) + 1 :] if top else dest / rel
            if mode is not None:
                os.chmod(path, _safe_mode(mode), follow_symlinks=False)
            _set_mtime(path, mtime)

    def _new_leaf(self, name: str, kind: _Kind) -> str:
        rel = self.relpath(name)
        if rel == "":
            raise self.refuse(name, "names the target directory itself but is not a directory")
        self._prepare(name, rel, kind)
        return rel

    def _prepare(self, name: str, rel: str, kind: _Kind) -> None:
        """Make the parents of ``rel`` (real directories only) and clear an earlier entry."""
        parent = rel.rpartition("/")[0]
        if self._kinds.get(parent) != "dir":
            # A path is marked "dir" only once its own parents were checked, so one hit on the
            # full parent proves the whole chain; otherwise walk it.
            sofar = ""
            for part in parent.split("/"):
                sofar = f"{sofar}/{part}" if sofar else part
                found = self._kinds.get(sofar)
                if found == "symlink":
                    raise self.refuse(
                        name,
                        f"goes through the symbolic link {sofar!r}; writing through links "
                        "is refused",
                    )
                if found == "file":
                    raise self.refuse(name, f"needs {sofar!r} to be a directory, but it is a file")
                if found is None:
                    os.mkdir(self.root / sofar)
                    self._kinds[sofar] = "dir"
        existing = self._kinds.get(rel)
        if existing is None or (existing == "dir" and kind == "dir"):
            return
        if existing == "dir":
            raise self.refuse(name, f"would replace the directory {rel!r} with a {kind}")
        # A later entry for the same path wins, as with tar and ``unzip -o``.
        os.unlink(self.root / rel)
        del self._kinds[rel]

    def _over_total(self, name: str) -> UnsafeArchiveError:
        return self.refuse(
            name,
            f"brings the unpacked size over the limit of {self.limits.max_total_bytes} bytes "
            "(ExtractLimits.max_total_bytes)",
        )

    def _check_ratio(self, name: str, size: int, compressed: int) -> None:
        limit = self.limits.max_compression_ratio
        if limit is None or size < _RATIO_MIN_BYTES:
            return
        if size > limit * max(compressed, 1):
            raise self.refuse(
                name,
                f"expands to {size} bytes from {compressed} bytes of the archive, a ratio over "
                f"{limit:g} (ExtractLimits.max_compression_ratio); this looks like a zip bomb "
                "(or a sparse-file bomb in a tar)",
            )


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _resolves_inside(root: Path, parts: list[str]) -> bool:
    """Resolve ``parts`` under ``root`` like the kernel, following links; False if it leaves.

    ``..`` above the root or an absolute link target on the way means outside. Missing
    components are taken literally (the link dangles, which is harmless). A link loop cannot
    reach anything, so it counts as inside.
    """
    todo = list(reversed(parts))
    current: list[str] = []
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not current:
                return False
            current.pop()
            continue
        candidate = root.joinpath(*current, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            is_link = False
        if not is_link:
            current.append(part)
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS:
            return True
        target = os.readlink(candidate)
        if target.startswith("/"):
            return False
        todo.extend(reversed(target.split("/")))
    return True


def _set_mtime(path: Path | int, mtime: float | None) -> None:
    """Set atime and mtime of ``path`` (never through a link), or of an open descriptor."""
    if mtime is None:
        return
    # An absurd archive timestamp is not worth failing a deployment for.
    with contextlib.suppress(OverflowError, ValueError):
        if isinstance(path, int):
            os.utime(path, (mtime, mtime))
        else:
            os.utime(path, (mtime, mtime), follow_symlinks=False)


def _safe_mode(mode: int) -> int:
    """Permission bits without setuid/setgid/sticky: we don't chown, so a setuid bit would make
    a root-owned setuid file out of any bundle."""
    return stat.S_IMODE(mode) & ~_SPECIAL_BITS


# --- zip ------------------------------------------------------------------------------------


def _unpack_zip(bundle: Path, writer: _Writer) -> None:
    looks = _sniff(bundle)
    if looks in ("a gzip-compressed file", "a tar archive", "a bzip2-compressed file",
                 "an xz-compressed file", "an empty file"):  # fmt: skip
        raise BundleError(
            f"bundle {bundle} is not a zip archive (declared type zip); it looks like {looks}"
        )
    with open(bundle, "rb") as raw:
        declared = _zip_declared_entries(raw)
        if declared is not None and declared > writer.limits.max_entries:
            # Checked before zipfile reads the central directory into memory.
            raise UnsafeArchiveError(
                f"bundle {bundle} declares {declared} entries, over the limit of "
                f"{writer.limits.max_entries} entries (ExtractLimits.max_entries)"
            )
        try:
            with zipfile.ZipFile(raw) as zf:
                infos = zf.infolist()
                for info in infos:
                    writer.count(info.filename)
                declared_total = sum(i.file_size for i in infos)
                if declared_total > writer.limits.max_total_bytes:
                    raise UnsafeArchiveError(
                        f"bundle {bundle} declares {declared_total} unpacked bytes, over the limit "
                        f"of {writer.limits.max_total_bytes} bytes (ExtractLimits.max_total_bytes)"
                    )
                for info in infos:
                    _zip_entry(zf, info, writer)
        except zipfile.BadZipFile as exc:
            raise BundleError(
                f"bundle {bundle} is not a zip archive or is corrupt (declared type zip; "
                f"it looks like {looks}): {exc}"
            ) from exc
        except (zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
            # Truncated data, unsupported compression method, encrypted entries.
            raise BundleError(f"bundle {bundle} cannot be read as a zip archive: {exc}") from exc


def _zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, writer: _Writer) -> None:
    # Info-ZIP's unzip reads backslashes from Windows tools as separators; so do we.
    name = info.filename.replace("\\", "/")
    mode = (info.external_attr >> 16) if info.create_system in _UNIX_HOSTS else 0
    mtime = _zip_mtime(info)
    if stat.S_ISLNK(mode):
        if info.file_size > _MAX_LINK_TARGET:
            raise writer.refuse(name, f"is a symbolic link with a {info.file_size}-byte target")
        with zf.open(info) as f:
            target = f.read(_MAX_LINK_TARGET + 1).decode("utf-8", "surrogateescape")
        writer.add_symlink(name, target)
    elif info.is_dir() or stat.S_ISDIR(mode):
        writer.add_dir(name, mode=mode or None, mtime=mtime)
    elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise writer.refuse(
            name, f"is {_special_kind(mode)}; device, FIFO and socket entries are refused"
        )
    else:
        writer.check_declared_size(name, info.file_size, info.compress_size)
        with zf.open(info) as f:
            writer.add_file(
                name, f, mode=mode or None, mtime=mtime, compressed=lambda: info.compress_size
            )


def _zip_mtime(info: zipfile.ZipInfo) -> float | None:
    return _local_timestamp(info.date_time)


@functools.lru_cache(maxsize=256)
def _local_timestamp(date_time: tuple[int, int, int, int, int, int]) -> float | None:
    # Zip times have 2 s resolution, so a bundle's entries share few distinct values, and
    # mktime (a time zone lookup each call) was a visible share of unpacking many small files.
    try:
        return time.mktime((*date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def _zip_declared_entries(raw: IO[bytes]) -> int | None:
    """The entry count from the end-of-central-directory record (zip64 too), or None."""
    raw.seek(0, os.SEEK_END)
    size = raw.tell()
    tail_len = min(size, 22 + 0xFFFF)
    raw.seek(size - tail_len)
    tail = raw.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or len(tail) - pos < 22:
        return None
    (entries,) = struct.unpack_from("<H", tail, pos + 10)
    if entries != 0xFFFF:
        return int(entries)
    locator = pos - 20
    if locator < 0 or tail[locator : locator + 4] != b"PK\x06\x07":
        return None
    (offset,) = struct.unpack_from("<Q", tail, locator + 8)
    raw.seek(offset)
    record = raw.read(56)
    if len(record) < 40 or record[:4] != b"PK\x06\x06":
        return None
    (entries64,) = struct.unpack_from("<Q", record, 32)
    return int(entries64)


# --- tar / tgz ------------------------------------------------------------------------------


def _unpack_tar(bundle: Path, writer: _Writer, *, compressed: bool) -> None:
    looks = _sniff(bundle)
    declared = "tgz" if compressed else "tar"
    what = "a gzip-compressed tar archive" if compressed else "a tar archive"
    if compressed and looks != "a gzip-compressed file":
        raise BundleError(
            f"bundle {bundle} is not {what} (declared type {declared}); it looks like {looks}"
        )
    if not compressed and looks not in ("a tar archive", "unrecognised content"):
        raise BundleError(
            f"bundle {bundle} is not {what} (declared type {declared}); it looks like {looks}"
        )
    with open(bundle, "rb") as raw:
        try:
            with contextlib.ExitStack() as stack:
                stream: IO[bytes] | gzip.GzipFile = raw
                if compressed:
                    stream = gzip.GzipFile(fileobj=raw, mode="rb")
                    stack.callback(stream.close)
                # "r|": one forward pass, one member at a time, nothing read twice or seeked.
                tar = stack.enter_context(tarfile.open(fileobj=stream, mode="r|"))
                # The ratio check counts the archive bytes read for each entry: for a tgz the
                # compressed bytes, for a tar its own bytes (as the tar reader consumes them,
                # not as the file is read ahead), so a GNU sparse member that writes gigabytes
                # of holes from a few KiB is stopped like a zip bomb.
                position = raw.tell if compressed else tar.fileobj.tell
                for member in _members(tar):
                    _tar_entry(tar, member, writer, position)
                if isinstance(stream, gzip.GzipFile):
                    _drain_gzip(stream, writer)
        except tarfile.ReadError as exc:
            raise BundleError(
                f"bundle {bundle} is not {what} or is corrupt (declared type {declared}): {exc}"
            ) from exc
        except (gzip.BadGzipFile, EOFError, zlib.error, tarfile.TarError) as exc:
            raise BundleError(
                f"bundle {bundle} is corrupt (declared type {declared}): {exc}"
            ) from exc


def _drain_gzip(stream: gzip.GzipFile, writer: _Writer) -> None:
    """Read a tgz to its end, past the tar end marker, so gzip checks its CRC and length (as
    ``tar -xzf`` does through gzip): a corrupted tgz must not deploy. What follows the marker
    counts against the size limit."""
    trailing = 0
    while chunk := stream.read(_CHUNK):
        trailing += len(chunk)
        if writer.total_bytes + trailing > writer.limits.max_total_bytes:
            raise UnsafeArchiveError(
                f"bundle {writer.bundle} holds {trailing} bytes after the end of its tar archive, "
                f"over the limit of {writer.limits.max_total_bytes} bytes "
                "(ExtractLimits.max_total_bytes)"
            )


_TAR_SPECIAL = {
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
}


def _since(position: Callable[[], int] | None) -> Callable[[], int] | None:
    """Compressed bytes consumed since now, read from the raw file's position."""
    if position is None:
        return None
    start = position()
    return lambda: position() - start


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := tar.next()) is not None:
        yield member


def _tar_entry(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    writer: _Writer,
    position: Callable[[], int] | None,
) -> None:
    name = member.name
    writer.count(name)
    if member.isdir():
        writer.add_dir(name, mode=member.mode, mtime=member.mtime)
    elif member.issym():
        writer.add_symlink(name, member.linkname)
    elif member.islnk():
        writer.add_hardlink(name, member.linkname)
    elif member.isreg():
        writer.check_declared_size(name, member.size, None)
        data = tar.extractfile(member)
        if data is None:  # pragma: no cover - isreg() members always have data
            raise BundleError(f"bundle {writer.bundle}: entry {name!r} has no data")
        with data:
            writer.add_file(
                name, data, mode=member.mode, mtime=member.mtime, compressed=_since(position)
            )
    else:
        kind = _TAR_SPECIAL.get(member.type, f"of unsupported type {member.type!r}")
        raise writer.refuse(name, f"is {kind}; device, FIFO and special entries are refused")


# --- directory ------------------------------------------------------------------------------


def _copy_directory(bundle: Path, writer: _Writer) -> None:
    """Copy a directory tree like ``cp -r``, with the archive rules (the official agent's
    Local Directory revision; agent-behaviour §1.6). Only ``bundle`` itself may be a link."""
    source = Path(os.path.realpath(bundle))
    if not source.is_dir():
        raise BundleError(f"bundle {bundle} is declared as a directory but it is not one")
    todo = [""]
    while todo:
        rel_dir = todo.pop()
        with os.scandir(source / rel_dir) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            writer.count(rel)
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                writer.add_symlink(rel, os.readlink(entry.path))
            elif stat.S_ISDIR(st.st_mode):
                writer.add_dir(rel, mode=st.st_mode, mtime=st.st_mtime)
                todo.append(rel)
            elif stat.S_ISREG(st.st_mode):
                writer.check_declared_size(rel, st.st_size, None)
                # O_NOFOLLOW|O_NONBLOCK: if the file was swapped for a link or FIFO since the
                # scan, fail or notice instead of following it or blocking.
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
                with open(fd, "rb", closefd=True) as f:
                    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                        raise writer.refuse(rel, "changed type while being copied")
                    writer.add_file(rel, f, mode=st.st_mode, mtime=st.st_mtime)
            else:
                raise writer.refuse(
                    rel,
                    f"is {_special_kind(st.st_mode)}; device, FIFO and socket entries are refused",
                )


# --- helpers --------------------------------------------------------------------------------


def _special_kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return f"of unknown file type {stat.S_IFMT(mode):#o}"


def _sniff(path: Path) -> str:
    """Say what a file looks like from its first bytes, for type-mismatch messages."""
    with open(path, "rb") as f:
        head = f.read(262)
    if not head:
        return "an empty file"
    if head[:2] == b"\x1f\x8b":
        return "a gzip-compressed file"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "a zip archive"
    if head[:3] == b"BZh":
        return "a bzip2-compressed file"
    if head[:6] == b"\xfd7zXZ\x00":
        return "an xz-compressed file"
    if head[257:262] == b"ustar":
        return "a tar archive"
    return "unrecognised content"


def _strip_prefix(staging: Path) -> str | None:
    """The official agent's leading-directory strip (agent-behaviour §1.6): if the root holds
    exactly one entry, a real directory, and its listing has a name matching /appspec/i, that
    directory becomes the result. Returns its name, or None to keep the root."""
    names = os.listdir(staging)
    if len(names) != 1:
        return None
    top = staging / names[0]
    if top.is_symlink() or not top.is_dir():
        return None
    if any("appspec" in child.lower() for child in os.listdir(top)):
        return names[0]
    return None


def _refuse_overlap(bundle: Path, dest: Path, kind: str) -> None:
    """Removing ``dest`` must not delete the bundle; a directory can't be copied into itself."""
    real = Path(os.path.realpath(bundle))
    as_named = Path(os.path.realpath(bundle.parent)) / bundle.name  # the link itself, if one
    target = Path(os.path.realpath(dest.parent)) / dest.name
    if (
        real.is_relative_to(target)
        or as_named.is_relative_to(target)
        or (kind == "directory" and target.is_relative_to(real))
    ):
        raise BundleError(f"bundle {bundle} and target {dest} overlap; unpack it somewhere else")


def _make_staging(dest: Path) -> Path:
    """A new empty sibling of ``dest``; os.mkdir applies the umask, as ``mkdir -p`` would."""
    while True:
        staging = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.partial"
        try:
            os.mkdir(staging, 0o777)
        except FileExistsError:
            continue
        return staging


def _remove(path: Path) -> None:
    """``rm -rf path``; directories a bundle made read-only are made writable on the way."""
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    remove_tree(path)


def remove_tree(path: Path | str) -> None:
    """``rm -rf`` a directory without recursion, so no depth of nesting can stop it.

    ``shutil.rmtree`` (and ``os.walk``) recurse once per level before Python 3.12: a bundle
    nested 1,500 levels deep (3,000 characters, well within PATH_MAX) unpacks fine, and then
    could never be removed -- RecursionError -- breaking every later deployment of its group.
    Links are removed, never followed. A directory that refuses a listing or a removal (a
    read-only one, for an agent that is not root) is made writable and tried again.
    """
    stack: list[tuple[str, bool]] = [(os.fspath(path), False)]
    while stack:
        directory, emptied = stack.pop()
        if emptied:
            os.rmdir(directory)
            continue
        stack.append((directory, True))
        try:
            entries = list(os.scandir(directory))
        except PermissionError:
            os.chmod(directory, 0o700)
            entries = list(os.scandir(directory))
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, False))
                continue
            try:
                os.unlink(entry.path)
            except PermissionError:
                os.chmod(directory, 0o700)
                os.unlink(entry.path)
