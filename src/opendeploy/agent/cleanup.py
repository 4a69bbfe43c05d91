"""The per-deployment-group cleanup file: what an Install created, and how to remove it again.

The official agent keeps ``deployment-instructions/<dg-id>-cleanup``: one absolute path per line,
written while Install runs (a copy's destination *before* the copy, a directory *after* mkdir), and
``semanage\\0<path>`` for an SELinux file-context rule. At the start of the next Install of the same
deployment group the file is replayed in reverse order and then deleted, so whatever the previous
Install created -- even one that failed half-way -- is removed. We keep that format byte for byte,
so a host can switch between the official agent and ours.

Rules kept from the official agent: a last line without ``\\n`` is a torn write and is dropped; a
symlink or file is unlinked; a directory is removed only when empty (a non-empty one is kept, since
something else now lives in it); a missing path is ignored. Files the deployment did not create are
never listed, so they are never touched.

Memory stays bounded whatever the bundle size: ``run_cleanup`` reads the file backwards in blocks
instead of loading every line.

Unlike the official agent, links are never followed on the way to a recorded path: the writer
records each path with its directory resolved (``/srv/www/x`` for ``/var/www/x`` when
``/var/www`` links to ``/srv/www``), and the replay skips, with a warning, a path whose directory
no longer resolves to itself -- a symbolic link put there since would otherwise make the next
deployment delete files elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from io import BufferedWriter
from pathlib import Path
from types import TracebackType

from opendeploy.errors import InstallError

__all__ = ["CONTEXT_PREFIX", "CleanupWriter", "read_cleanup_file", "run_cleanup"]

CONTEXT_PREFIX = "semanage\0"
"""Prefix of a cleanup line that names an SELinux file-context rule rather than a path."""

_BLOCK = 64 * 1024

logger = logging.getLogger(__name__)


def read_cleanup_file(path: Path) -> list[str]:
    """Return the complete lines of a cleanup file, in file order, without their ``\\n``.

    A last line that does not end in ``\\n`` was torn by a crash mid-write and is dropped, as the
    official agent does. Empty lines are skipped. A missing file reads as no lines.
    """
    lines = list(iter_cleanup_lines_reversed(path))
    lines.reverse()
    return lines


def iter_cleanup_lines_reversed(path: Path) -> Iterator[str]:
    """Yield the complete lines of a cleanup file from last to first, reading backwards in blocks.

    Same rules as ``read_cleanup_file``; memory is one block plus one line, not the whole file.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 -- closed in the finally below, across yields
    except FileNotFoundError:
        return
    try:
        position = handle.seek(0, os.SEEK_END)
        carry = b""
        # The text after the last "\n" is either empty (a clean file) or a torn line: drop it.
        dropped_tail = False
        while position > 0:
            size = min(_BLOCK, position)
            position -= size
            handle.seek(position)
            chunk = handle.read(size) + carry
            parts = chunk.split(b"\n")
            carry = parts[0]
            for raw in reversed(parts[1:]):
                if not dropped_tail:
                    dropped_tail = True
                    continue
                if raw:
                    yield os.fsdecode(raw)
        # ``carry`` is now the first line; it is complete only if some "\n" followed it.
        if dropped_tail and carry:
            yield os.fsdecode(carry)
    finally:
        handle.close()


def run_cleanup(path: Path) -> int:
    """Undo what the Install recorded in the cleanup file at ``path``, then delete that file.

    Lines run last to first. Returns how many files, links and directories were removed. A
    ``semanage\\0<path>`` line deletes that file-context rule with ``semanage fcontext -d`` when
    ``semanage`` is installed, and is ignored otherwise (a host without the tool cannot hold the
    rule); its exit status is ignored, as the official agent does. Any other failure raises
    ``InstallError`` and leaves the cleanup file in place, so the next attempt retries it.
    """
    removed = 0
    real_dirs: dict[str, str] = {}
    for line in iter_cleanup_lines_reversed(path):
        if line.startswith(CONTEXT_PREFIX):
            _remove_context(line[len(CONTEXT_PREFIX) :])
            continue
        parent = os.path.dirname(line)
        real = real_dirs.get(parent)
        if real is None:
            real = real_dirs[parent] = os.path.realpath(parent)
        if real != parent:
            logger.warning(
                "cleanup: not removing %s: its directory now resolves to %s through a symbolic "
                "link, which was not there when it was installed",
                line,
                real,
            )
            continue
        if _remove_path(line):
            removed += 1
    path.unlink(missing_ok=True)
    return removed


def _remove_path(target: str) -> bool:
    """Remove one recorded path; return whether something was removed."""
    try:
        info = os.lstat(target)
        if stat.S_ISDIR(info.st_mode):
            os.rmdir(target)
        else:
            os.unlink(target)
    except (FileNotFoundError, NotADirectoryError):
        return False  # gone already, as the official agent's File.exist? check sees it
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            # Someone put files in a directory we created: keep it, and what is in it.
            return False
        raise InstallError(
            f"cleanup of the previous deployment failed: cannot remove {target}: {exc.strerror}"
        ) from exc
    return True


def _remove_context(target: str) -> None:
    semanage = shutil.which("semanage")
    if semanage is None:
        return
    subprocess.run(
        [semanage, "fcontext", "-d", target],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


class CleanupWriter:
    """Append the paths an Install creates to its cleanup file, one flushed line each.

    Use as a context manager; each ``record`` reaches the operating system before it returns, so a
    crash right after still leaves the path listed for the next deployment to remove. A path that
    contains a newline cannot be represented in the file's format and is refused.
    """

    def __init__(self, path: Path, *, real_dirs: dict[str, str] | None = None) -> None:
        self.path = path
        self._handle: BufferedWriter | None = None
        # Directory -> real path; the installer passes what its plan already resolved.
        self._real_dirs: dict[str, str] = {} if real_dirs is None else real_dirs

    def __enter__(self) -> CleanupWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Append, never truncate: if an older file survived somehow, its records must not be lost.
        self._handle = open(self.path, "ab")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def record(self, path: str) -> None:
        """List ``path`` (a file, symlink or directory this deployment created), its directory
        resolved to its real path."""
        parent, name = os.path.split(path)
        real = self._real_dirs.get(parent)
        if real is None:
            real = self._real_dirs[parent] = os.path.realpath(parent)
        self._write(os.path.join(real, name))

    def record_context(self, path: str) -> None:
        """List an SELinux file-context rule added for ``path`` (``semanage\\0<path>``)."""
        self._write(CONTEXT_PREFIX + path)

    def close(self) -> None:
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as exc:
            raise InstallError(
                f"cannot write the cleanup file {self.path}: {exc.strerror or exc}"
            ) from exc
        finally:
            with contextlib.suppress(OSError):
                handle.close()

    def _write(self, line: str) -> None:
        if self._handle is None:
            raise RuntimeError("CleanupWriter is not open; use it as a context manager")
        if "\n" in line:
            raise InstallError(
                f"cannot record {line!r} in the cleanup file: paths may not contain a newline"
            )
        try:
            self._handle.write(os.fsencode(line) + b"\n")
            self._handle.flush()
        except OSError as exc:
            raise InstallError(
                f"cannot write the cleanup file {self.path}: {exc.strerror or exc}"
            ) from exc
