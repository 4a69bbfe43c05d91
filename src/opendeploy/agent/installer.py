"""The Install event: put a revision's ``files`` in place, then apply its ``permissions``.

Steps, in the official agent's order (``shared/reference/agent-behaviour.md`` §2.3, §3):

1. if ``<instructions_dir>/<dg-id>-cleanup`` exists, remove what the previous Install of this
   deployment group created (``cleanup.run_cleanup``), then delete that file;
2. plan: walk the bundle and the appspec, yielding one instruction at a time (``Planner``); the
   ``file_exists_behavior`` checks see the disk *after* step 1; collisions within the deployment
   are errors with the official messages;
3. stream the plan into ``<dg-id>-install.json`` (``{"instructions":[…]}``, official shapes, one
   instruction per line);
4. execute it, reading that file back line by line: every path created is recorded in a new
   cleanup file -- a copy's destination *before* copying, a directory *after* mkdir.

Memory stays bounded whatever the bundle size (the official agent's pain point #1): nothing holds
an object per file except the two maps collision detection and permission matching need (the
destination strings copied and the directories created). The plan is never a list.

Differences from the official agent, deliberate: a missing source, a source outside the bundle, a
relative destination and a bundle entry that is neither file, directory nor symlink fail while
planning with a message naming ``files[i]``; a dangling symlink at a destination counts as an
existing file; under OVERWRITE an existing directory is never replaced by a file.

Nothing is written outside the destinations. A ``files`` destination is taken as the appspec
names it (links in it and above it are the host's business), but below it no symbolic link is
followed: a link placed there earlier -- by another deployment group's bundle, say -- would let
this bundle write anywhere, so installing through it is refused while planning, and checked
again for each directory before writing (a link swapped in meanwhile is refused too). Files are
created with ``O_EXCL | O_NOFOLLOW``. The agent's own directories (``protected``: the deployment
root, with the cleanup files whose paths the next deployment deletes) are never written to.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opendeploy.agent.cleanup import CleanupWriter, run_cleanup
from opendeploy.agent.permissions import (
    Chmod,
    Chown,
    PermissionInstruction,
    SetAcl,
    SetContext,
    instructions_for,
    plan_permissions,
)
from opendeploy.appspec.model import Ace, AppSpec, FileExistsBehavior, SELinuxContext
from opendeploy.errors import InstallError

__all__ = [
    "Copy",
    "InstallResult",
    "Instruction",
    "Mkdir",
    "Planner",
    "install",
    "instruction_from_json",
    "read_instructions",
]

_PROGRESS_EVERY = 1000


@dataclass(frozen=True)
class InstallResult:
    """What one Install did."""

    files_copied: int
    dirs_created: int
    files_skipped: int
    permissions_applied: int


@dataclass(frozen=True)
class Copy:
    """Copy one bundle entry (file or symlink) to ``destination``."""

    source: str
    destination: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "copy", "source": self.source, "destination": self.destination}

    def execute(self, cleanup: CleanupWriter, *, overwrite: bool) -> None:
        """Record, then copy: mode, times and (as root) owner kept; a symlink stays a symlink."""
        dst = self.destination
        try:
            info = os.lstat(self.source)
            if os.path.lexists(dst):
                if not overwrite:
                    raise InstallError(_exists_message(dst))
                cleanup.record(dst)
                os.unlink(dst)
            else:
                cleanup.record(dst)
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(self.source), dst)
                if os.geteuid() == 0:
                    os.chown(dst, info.st_uid, info.st_gid, follow_symlinks=False)
                shutil.copystat(self.source, dst, follow_symlinks=False)
            else:
                _copy_file(self.source, dst, chown=os.geteuid() == 0)
        except OSError as exc:
            raise InstallError(f"cannot copy {self.source} to {dst}: {exc.strerror}") from exc


@dataclass(frozen=True)
class Mkdir:
    """Create one directory (its parent exists by then)."""

    directory: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "mkdir", "directory": self.directory}

    def execute(self, cleanup: CleanupWriter) -> None:
        """Create, then record."""
        try:
            os.mkdir(self.directory)
        except FileExistsError as exc:
            raise InstallError(_exists_message(self.directory)) from exc
        except OSError as exc:
            raise InstallError(f"cannot create directory {self.directory}: {exc.strerror}") from exc
        cleanup.record(self.directory)


Instruction = Copy | Mkdir | PermissionInstruction

# shutil's sendfile chunk: at least 8 MiB per call.
_SENDFILE_MIN_BLOCK = 1 << 23


def _copy_file(source: str, destination: str, *, chown: bool) -> None:
    """``shutil.copyfile`` + (as root) ``chown`` + ``shutil.copystat`` for a regular file.

    The same steps in the same order -- data (sendfile), owner, times, extended attributes,
    mode -- but on the two open descriptors: shutil looks each path up again for every step
    (ten stats per file), which was a visible share of installing many small files.
    The owner goes before the mode, since chown clears a setuid bit that the mode restores.
    """
    # O_NONBLOCK: a source swapped for a FIFO since the plan must not hang the copy.
    infd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        before = os.fstat(infd)
        if not stat.S_ISREG(before.st_mode):
            raise InstallError(f"cannot copy {source} to {destination}: not a regular file")
        # As open(destination, "wb") in shutil.copyfile, but the destination was removed (or was
        # absent) at the plan's check: never follow or truncate what appeared there since.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        outfd = os.open(destination, flags, 0o666)
        try:
            _copy_data(infd, outfd, before.st_size)
            # Read after the copy, as copystat does: reading may have moved the source's atime.
            info = os.fstat(infd)
            if chown:
                os.fchown(outfd, info.st_uid, info.st_gid)
            os.utime(outfd, ns=(info.st_atime_ns, info.st_mtime_ns))
            _copy_xattrs(infd, outfd)
            os.fchmod(outfd, stat.S_IMODE(info.st_mode))
        finally:
            os.close(outfd)
    finally:
        os.close(infd)


def _copy_data(infd: int, outfd: int, size: int) -> None:
    """sendfile until the end, or read/write where sendfile refuses at the start (shutil's
    rule: any error but ENOSPC before the first byte means "not for these files")."""
    block = max(size, _SENDFILE_MIN_BLOCK)
    offset = 0
    while True:
        try:
            sent = os.sendfile(outfd, infd, offset, block)
        except OSError as exc:
            if exc.errno == errno.ENOSPC or offset:
                raise
            break
        if sent == 0:
            return
        offset += sent
    while chunk := os.read(infd, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(outfd, view) :]


def _copy_xattrs(infd: int, outfd: int) -> None:
    """Extended attributes, with the errors ``shutil.copystat`` ignores ignored."""
    try:
        names = os.listxattr(infd)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.ENODATA, errno.EINVAL):
            raise
        return
    for name in names:
        try:
            os.setxattr(outfd, name, os.getxattr(infd, name))
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.ENODATA, errno.EINVAL):
                raise


class Planner:
    """Turn an appspec and an unpacked bundle into install instructions, one at a time.

    ``instructions()`` only reads the filesystem (the bundle, and which destinations exist). It
    keeps what collision detection and permission matching need -- the destinations copied and the
    directories created, as strings -- and counts the files RETAIN skipped and the permission
    targets. Errors are ``InstallError`` / ``PermissionsError`` with the official messages.
    """

    def __init__(
        self,
        appspec: AppSpec,
        *,
        archive_dir: Path,
        file_exists_behavior: FileExistsBehavior,
        protected: Sequence[Path] = (),
    ) -> None:
        self.appspec = appspec
        self.archive_dir = os.path.normpath(os.path.abspath(archive_dir))
        self.behaviour = file_exists_behavior
        self.copy_targets: dict[str, int] = {}  # destination -> index of its files[] entry
        self.mkdir_targets: dict[str, None] = {}  # an ordered set
        self.files_skipped = 0
        self.permission_targets = 0
        #: Every directory an instruction writes in -> its real path when planned.
        self.real_dirs: dict[str, str] = {}
        self._roots: dict[int, str] = {}  # files[] index -> its destination
        self._protected = tuple(os.path.realpath(path) for path in protected)

    def instructions(self) -> Iterator[Instruction]:
        """Yield copies and mkdirs for ``files`` in order, then the ``permissions`` steps."""
        for index in range(len(self.appspec.files)):
            yield from self._mapping(index)
        for target in plan_permissions(
            self.appspec.permissions,
            copied_files=self.copy_targets.keys(),
            created_dirs=self.mkdir_targets.keys(),
        ):
            self.permission_targets += 1
            yield from instructions_for(target)

    def _mapping(self, index: int) -> Iterator[Instruction]:
        destination = self._destination(index)
        source = self._source(index)
        if _is_real_dir(source):
            yield from self._ancestors(index, destination)
            yield from self._tree(index, source, destination)
        else:
            target = os.path.join(destination, os.path.basename(source))
            yield from self._ancestors(index, target)
            yield from self._file(index, source, target, os.lstat(source))

    def _destination(self, index: int) -> str:
        raw = self.appspec.files[index].destination
        if not raw.startswith("/"):
            raise InstallError(
                f"files[{index}].destination: {raw!r} is not an absolute path; destinations "
                "must be absolute"
            )
        if "\n" in raw or "\0" in raw:
            raise InstallError(
                f"files[{index}].destination: {raw!r} contains a newline or NUL character"
            )
        return _normalise(raw)

    def _source(self, index: int) -> str:
        raw = self.appspec.files[index].source
        # As File.join(archive, source): "/" is the whole bundle, "/x" is "x" in the bundle.
        path = os.path.normpath(os.path.join(self.archive_dir, raw.lstrip("/")))
        if path != self.archive_dir and not path.startswith(self.archive_dir + "/"):
            raise InstallError(
                f"files[{index}].source: {raw!r} points outside the bundle; sources are relative "
                "to the bundle root"
            )
        if not os.path.lexists(path):
            raise InstallError(
                f"files[{index}].source: {raw!r} does not exist in the bundle (looked for {path})"
            )
        return path

    def _ancestors(self, index: int, path: str) -> Iterator[Instruction]:
        """mkdir the missing ancestors of ``path``, outermost first."""
        missing: list[str] = []
        parent = os.path.dirname(path)
        while parent != "/" and not os.path.exists(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(missing):
            yield from self._mkdir(index, directory)

    def _tree(self, index: int, source_root: str, destination_root: str) -> Iterator[Instruction]:
        """Copy a bundle directory depth-first, in name order, without recursion."""
        yield from self._mkdir_unless_dir(index, destination_root)
        # One sorted listing per open directory level: memory follows depth x width, not size.
        levels: list[tuple[Iterator[os.DirEntry[str]], str]] = [
            (_entries(source_root), destination_root)
        ]
        while levels:
            entries, destination_dir = levels[-1]
            entry = next(entries, None)
            if entry is None:
                levels.pop()
                continue
            destination = os.path.join(destination_dir, entry.name)
            if entry.is_dir(follow_symlinks=False):
                yield from self._mkdir_unless_dir(index, destination)
                levels.append((_entries(entry.path), destination))
            else:
                yield from self._file(
                    index, entry.path, destination, entry.stat(follow_symlinks=False)
                )

    def _mkdir_unless_dir(self, index: int, directory: str) -> Iterator[Instruction]:
        if os.path.islink(directory):
            raise self._through_link(index, directory)
        if os.path.isdir(directory):
            return  # an existing directory is reused, and never recorded for cleanup
        if os.path.lexists(directory):
            raise InstallError(_exists_message(directory))
        yield from self._mkdir(index, directory)

    def _mkdir(self, index: int, directory: str) -> Iterator[Instruction]:
        if directory in self.copy_targets:
            raise InstallError(
                "The deployment failed because the application specification file includes an "
                f"mkdir command more than once for the same destination path ({directory}) from "
                f"({self._copy_source(directory)}). Update the files section of the AppSpec file, "
                "and then try again."
            )
        if directory in self.mkdir_targets:
            return
        self._confine(index, directory)
        self.mkdir_targets[directory] = None
        yield Mkdir(directory)

    def _file(
        self, index: int, source: str, destination: str, info: os.stat_result
    ) -> Iterator[Instruction]:
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
            raise InstallError(
                f"files[{index}].source: {source} is not a regular file, directory or symlink; "
                "only those can be installed"
            )
        self._confine(index, destination)
        if os.path.lexists(destination):
            if self.behaviour is FileExistsBehavior.DISALLOW:
                raise InstallError(_exists_message(destination))
            if self.behaviour is FileExistsBehavior.RETAIN:
                self.files_skipped += 1
                return
            if _is_real_dir(destination):
                raise InstallError(
                    f"files[{index}]: cannot install {source} at {destination}: OVERWRITE "
                    "replaces files, and a directory exists there"
                )
        if destination in self.copy_targets:
            raise InstallError(
                "The deployment failed because the application specification file specifies two "
                f"source files named {source} and {self._copy_source(destination)} for the same "
                f"destination ({destination}). Remove one of the source file paths from the "
                "AppSpec file, and then try again."
            )
        if destination in self.mkdir_targets:
            raise InstallError(
                "The deployment failed because the application specification file calls for "
                f"installing the file {source}, but a file with that name already exists at the "
                f"location ({destination}). Update your AppSpec file or directory structure, and "
                "then try again."
            )
        self.copy_targets[destination] = index
        yield Copy(source, destination)

    def _confine(self, index: int, path: str) -> None:
        """Refuse ``path`` if a link below its files[] destination leads it elsewhere, or if it
        lands in one of the agent's own directories; remember its directory's real path."""
        if "\n" in path:
            raise InstallError(
                f"files[{index}]: {path!r} contains a newline, which the cleanup file (one path "
                "per line) cannot record; rename it in the bundle"
            )
        parent = os.path.dirname(path)
        real_parent = self.real_dirs.get(parent)
        if real_parent is None:
            real_parent = self._real_dir(index, parent)
        real = os.path.join(real_parent, os.path.basename(path))
        for protected in self._protected:
            if real == protected or real.startswith(protected.rstrip("/") + "/"):
                raise InstallError(
                    f"files[{index}]: installing {path} would write into {protected}, the agent's "
                    "own deployment root (its cleanup files decide what the next deployment "
                    "deletes); choose a destination outside it"
                )

    def _real_dir(self, index: int, directory: str) -> str:
        """The real path of ``directory``, refusing a link below the files[] destination.

        At or above the destination the operating system resolves it; below, each component
        must be a real directory or not exist yet, so its real path is its parent's plus its
        name: one lstat per new directory, not a realpath.
        """
        root = self._roots.get(index)
        if root is None:
            root = self._roots[index] = self._destination(index)
        below = root.rstrip("/") + "/"
        missing: list[str] = []
        current = directory
        while current not in self.real_dirs:
            if current == root or not current.startswith(below):
                self.real_dirs[current] = os.path.realpath(current)
                break
            missing.append(current)
            current = os.path.dirname(current)
        for component in reversed(missing):
            if os.path.islink(component):
                raise self._through_link(index, component)
            parent, name = os.path.split(component)
            self.real_dirs[component] = os.path.join(self.real_dirs[parent], name)
        return self.real_dirs[directory]

    def _through_link(self, index: int, link: str) -> InstallError:
        try:
            target = os.readlink(link)
        except OSError:
            target = "?"
        return InstallError(
            f"files[{index}]: {link} is a symbolic link (to {target}) below the destination "
            f"{self._destination(index)}; installing through it could write outside the "
            "destination, so it is refused. Remove the link, or name the directory it points to "
            "as the destination"
        )

    def _copy_source(self, destination: str) -> str:
        """The bundle path that ``destination`` is copied from, rebuilt from its files[] entry."""
        index = self.copy_targets[destination]
        source = self._source(index)
        if not _is_real_dir(source):
            return source
        return os.path.join(source, os.path.relpath(destination, self._destination(index)))


def install(
    appspec: AppSpec,
    *,
    archive_dir: Path,
    instructions_dir: Path,
    deployment_group_id: str,
    file_exists_behavior: FileExistsBehavior = FileExistsBehavior.DISALLOW,
    on_progress: Callable[[str], None] | None = None,
    protected: Sequence[Path] = (),
) -> InstallResult:
    """Run the Install event for ``appspec`` from the bundle unpacked at ``archive_dir``.

    ``file_exists_behavior`` is the deployment's setting; the appspec's own, when present, wins.
    Nothing is installed into ``protected`` (the agent's deployment root) nor into
    ``instructions_dir``, which are always protected.
    Raises ``InstallError`` or ``PermissionsError``; what was created before a failure stays
    recorded in the cleanup file, so the next deployment of the group removes it.
    """
    progress = on_progress or (lambda _message: None)
    behaviour = _behaviour(appspec.file_exists_behavior or file_exists_behavior)
    instructions_dir.mkdir(parents=True, exist_ok=True)
    cleanup_path = instructions_dir / f"{deployment_group_id}-cleanup"
    install_path = instructions_dir / f"{deployment_group_id}-install.json"

    if cleanup_path.exists():
        removed = run_cleanup(cleanup_path)
        progress(f"removed {removed} paths left by the previous deployment")

    planner = Planner(
        appspec,
        archive_dir=archive_dir,
        file_exists_behavior=behaviour,
        protected=(instructions_dir, *protected),
    )
    count = _write_instructions(install_path, planner.instructions())
    progress(f"planned {count} instructions in {install_path}")

    copied = created = 0
    overwrite = behaviour is FileExistsBehavior.OVERWRITE
    rechecked: set[str] = set()
    with CleanupWriter(cleanup_path, real_dirs=planner.real_dirs) as cleanup:
        for instruction in read_instructions(install_path):
            if isinstance(instruction, Copy | Mkdir):
                _recheck(planner, instruction, rechecked)
            if isinstance(instruction, Copy):
                instruction.execute(cleanup, overwrite=overwrite)
                copied += 1
                if copied % _PROGRESS_EVERY == 0:
                    progress(f"copied {copied} files")
            elif isinstance(instruction, Mkdir):
                instruction.execute(cleanup)
                created += 1
            else:
                instruction.execute()
    result = InstallResult(
        files_copied=copied,
        dirs_created=created,
        files_skipped=planner.files_skipped,
        permissions_applied=planner.permission_targets,
    )
    progress(
        f"installed: {copied} files copied, {created} directories created, "
        f"{result.files_skipped} existing files kept, permissions on {result.permissions_applied}"
    )
    return result


def _recheck(planner: Planner, instruction: Copy | Mkdir, rechecked: set[str]) -> None:
    """Before the first write in a directory, check it still resolves where it did when the
    install was planned: a link swapped in since then is not written through."""
    path = instruction.destination if isinstance(instruction, Copy) else instruction.directory
    parent = os.path.dirname(path)
    if parent in rechecked:
        return
    expected = planner.real_dirs.get(parent)
    grand, name = os.path.split(parent)
    if (
        expected is not None
        and grand in rechecked
        and expected == os.path.join(planner.real_dirs[grand], name)
    ):
        # Its parent was checked just before: it is enough that it is no link itself.
        real = expected if not os.path.islink(parent) else os.path.realpath(parent)
    else:
        real = os.path.realpath(parent)
    if expected is None or real != expected:
        raise InstallError(
            f"cannot install {path}: its directory {parent} now resolves to {real}, not "
            f"{expected} as when the install was planned; a symbolic link was put in the way, "
            "and nothing is written through it"
        )
    rechecked.add(parent)


def read_instructions(path: Path) -> Iterator[Instruction]:
    """Read back an install.json written by ``install``, one instruction at a time."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            text = line.strip().lstrip(",")
            if text.startswith("{") and not text.startswith('{"instructions"'):
                yield instruction_from_json(json.loads(text))


def instruction_from_json(data: dict[str, Any]) -> Instruction:
    """One install.json entry (official shape) back to its instruction value."""
    kind = data.get("type")
    if kind == "copy":
        return Copy(data["source"], data["destination"])
    if kind == "mkdir":
        return Mkdir(data["directory"])
    if kind == "chmod":
        return Chmod(data["file"], data["mode"])
    if kind == "setfacl":
        return SetAcl(data["file"], tuple(_ace(entry) for entry in data["acl"]))
    if kind == "semanage":
        context = data["context"]
        return SetContext(
            data["file"],
            SELinuxContext(type=context["type"], user=context["user"], range=context["range"]),
        )
    if kind == "chown":
        return Chown(data["file"], data["owner"], data["group"])
    raise InstallError(f"install.json: unknown instruction type {kind!r}")


def _write_instructions(path: Path, instructions: Iterator[Instruction]) -> int:
    """Stream ``instructions`` into ``path`` (via a temporary file); return how many."""
    partial = path.with_name(path.name + ".partial")
    count = 0
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write('{"instructions":[\n')
            for instruction in instructions:
                handle.write("," if count else "")
                handle.write(json.dumps(instruction.to_json()))
                handle.write("\n")
                count += 1
            handle.write("]}\n")
        os.replace(partial, path)
    except OSError as exc:
        raise InstallError(f"cannot write the install plan {path}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return count


def _behaviour(value: FileExistsBehavior | str) -> FileExistsBehavior:
    try:
        return FileExistsBehavior(str(value).upper())
    except ValueError:
        raise InstallError(
            "The deployment failed because an invalid option was specified for "
            f"fileExistsBehavior: {value}. Valid options include OVERWRITE, RETAIN, and DISALLOW."
        ) from None


def _exists_message(path: str) -> str:
    return f"The deployment failed because a specified file already exists at this location: {path}"


def _entries(directory: str) -> Iterator[os.DirEntry[str]]:
    with os.scandir(directory) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    return iter(entries)


def _is_real_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _normalise(path: str) -> str:
    normal = os.path.normpath(path)
    # POSIX keeps a leading "//"; the official agent's File.expand_path does not.
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


def _ace(entry: str) -> Ace:
    default = entry.startswith("default:")
    kind, name, perms = entry.removeprefix("default:").split(":", 2)
    return Ace(default=default, kind=kind, name=name, perms=perms)
