"""The deployment root on disk, laid out exactly as the official agent lays it out.

::

    <root_dir>/
      <deployment-group-id>/<deployment-id>/
        bundle.tar                     downloaded bundle (deleted once unpacked: see executor)
        deployment-archive/            the unpacked revision
        logs/scripts.log               hook output
      deployment-instructions/
        <dg-id>-cleanup                files the last Install created (hyphen)
        <dg-id>-install.json           what the last Install did (hyphen)
        <dg-id>_last_successful_install   path of the last deployment whose Install succeeded
        <dg-id>_most_recent_install       path of the last deployment that was downloaded
      deployment-logs/<program_name>-deployments.log
      ongoing-deployment/<deployment-id>   present while a command runs (crash recovery)

Mind the names: ``-cleanup`` and ``-install.json`` take a hyphen, ``_last_successful_install``
and ``_most_recent_install`` an underscore, as in the official agent, so an operator who knows
CodeDeploy finds their way and the usual fix ("delete ``…_last_successful_install``") applies.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from opendeploy.errors import AgentError
from opendeploy.revisions.archive import remove_tree

__all__ = ["DeploymentDir", "DeploymentRoot", "check_path_component", "spread_subdirectories"]

# <linux/fs.h>: FS_IOC_GETFLAGS = _IOR('f', 1, long), FS_IOC_SETFLAGS = _IOW('f', 2, long); the
# size field is sizeof(long), so the numbers differ between 32- and 64-bit builds.
_LONG = struct.calcsize("l")
_FS_IOC_GETFLAGS = 0x80006601 | (_LONG << 16)
_FS_IOC_SETFLAGS = 0x40006602 | (_LONG << 16)
_FS_TOPDIR_FL = 0x00020000  # chattr +T: "top of directory hierarchy" for the Orlov allocator


def check_path_component(field: str, value: str) -> str:
    """Reject a deployment-group or deployment id that is not a single plain path component."""
    if not value or value in (".", "..") or "/" in value or "\0" in value:
        raise AgentError(f"{field}: {value!r} must be a non-empty name without '/'")
    return value


@dataclass(frozen=True)
class DeploymentDir:
    """The directory of one deployment: ``<root_dir>/<dg-id>/<deployment-id>``."""

    path: Path

    @property
    def bundle(self) -> Path:
        """Where a downloaded bundle is written (``bundle.tar`` whatever its type)."""
        return self.path / "bundle.tar"

    @property
    def archive(self) -> Path:
        return self.path / "deployment-archive"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def scripts_log(self) -> Path:
        return self.logs / "scripts.log"


@dataclass(frozen=True)
class DeploymentRoot:
    """Paths and records under ``root`` (the agent's ``root_dir``)."""

    root: Path
    program_name: str = "codedeploy-agent"
    ongoing_deployment_tracking: str = "ongoing-deployment"

    # -- paths ----------------------------------------------------------------------------------

    def group_dir(self, group_id: str) -> Path:
        return self.root / check_path_component("DeploymentGroupId", group_id)

    def deployment(self, group_id: str, deployment_id: str) -> DeploymentDir:
        return DeploymentDir(
            self.group_dir(group_id) / check_path_component("DeploymentId", deployment_id)
        )

    def make_deployment_dir(self, group_id: str, deployment_id: str) -> DeploymentDir:
        """Create (if needed) the directory of one deployment, and its group's directory.

        The group's directory is marked a top of directory hierarchy (see
        :func:`spread_subdirectories`) before a deployment directory is made in it.
        """
        deployment = self.deployment(group_id, deployment_id)
        if not deployment.path.is_dir():
            deployment.path.parent.mkdir(parents=True, exist_ok=True)
            spread_subdirectories(deployment.path.parent)
            deployment.path.mkdir(exist_ok=True)
        return deployment

    @property
    def instructions_dir(self) -> Path:
        return self.root / "deployment-instructions"

    def cleanup_file(self, group_id: str) -> Path:
        return self.instructions_dir / f"{group_id}-cleanup"

    def install_json(self, group_id: str) -> Path:
        return self.instructions_dir / f"{group_id}-install.json"

    def last_successful_file(self, group_id: str) -> Path:
        return self.instructions_dir / f"{group_id}_last_successful_install"

    def most_recent_file(self, group_id: str) -> Path:
        return self.instructions_dir / f"{group_id}_most_recent_install"

    @property
    def deployments_log_dir(self) -> Path:
        return self.root / "deployment-logs"

    @property
    def deployments_log(self) -> Path:
        return self.deployments_log_dir / f"{self.program_name}-deployments.log"

    @property
    def ongoing_dir(self) -> Path:
        return self.root / self.ongoing_deployment_tracking

    # -- records --------------------------------------------------------------------------------

    def last_successful(self, group_id: str) -> Path | None:
        """The deployment dir of the last successful Install of ``group_id``, if recorded."""
        return _read_record(self.last_successful_file(group_id))

    def most_recent(self, group_id: str) -> Path | None:
        """The deployment dir of the last DownloadBundle of ``group_id``, if recorded."""
        return _read_record(self.most_recent_file(group_id))

    def record_last_successful(self, group_id: str, deployment: DeploymentDir) -> None:
        _write_record(self.last_successful_file(group_id), deployment.path)

    def record_most_recent(self, group_id: str, deployment: DeploymentDir) -> None:
        _write_record(self.most_recent_file(group_id), deployment.path)

    def start_tracking(self, deployment_id: str, command_id: str = "") -> Path:
        """Mark ``deployment_id`` as having a command in flight (content: the command id)."""
        path = self.ongoing_dir / check_path_component("DeploymentId", deployment_id)
        _atomic_write(path, command_id)
        return path

    def stop_tracking(self, deployment_id: str) -> None:
        (self.ongoing_dir / check_path_component("DeploymentId", deployment_id)).unlink(
            missing_ok=True
        )

    def ongoing(self) -> list[str]:
        """Deployment ids that had a command in flight when the agent last stopped."""
        try:
            return sorted(p.name for p in self.ongoing_dir.iterdir() if p.is_file())
        except FileNotFoundError:
            return []

    # -- max_revisions ----------------------------------------------------------------------------

    def cleanup_old_deployments(
        self, group_id: str, current_deployment_id: str, max_revisions: int
    ) -> list[Path]:
        """Remove the oldest deployment dirs of ``group_id`` so at most ``max_revisions`` remain.

        The official rule (``cleanup_old_archives``, run at the start of DownloadBundle): the
        count includes the current deployment, which is never removed; neither is the last
        successful one (its scripts run in the next ApplicationStop). Oldest by mtime go first.
        Returns the removed paths.
        """
        if max_revisions < 1:
            raise AgentError(f"max_revisions: {max_revisions} must be >= 1")
        group = self.group_dir(group_id)
        try:
            entries = [p for p in group.iterdir() if p.name != current_deployment_id]
        except FileNotFoundError:
            return []
        extra = len(entries) - max_revisions + 1
        if extra <= 0:
            return []
        keep = self.last_successful(group_id)
        candidates = [p for p in entries if keep is None or not _same_path(p, keep)]
        candidates.sort(key=_mtime)
        removed = []
        for path in candidates[:extra]:
            _remove(path)
            removed.append(path)
        return removed


def spread_subdirectories(directory: Path) -> None:
    """Ask the file system to place each new subdirectory of ``directory`` in a fresh area.

    On ext2/3/4 this is the ``T`` attribute (``chattr +T``): the Orlov allocator then puts each
    new child directory, and so the files later created in it, in a block group with room,
    instead of next to its siblings. Every deployment unpacks a whole revision (hundreds of new
    files) and max_revisions deletes an old one; kept together, the new files land among the
    inodes just freed, and ext4 without a journal skips every inode freed in the last seconds
    to minutes one by one for each file it creates (``recently_deleted``), which cost more CPU
    than the unpacking itself. Only where data goes changes, never what is written; file
    systems without the attribute (tmpfs, XFS, btrfs, non-Linux) and a refusal are ignored.
    """
    if sys.platform != "linux":
        return
    import fcntl

    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        # The kernel reads and writes an int through the pointer, whatever the ioctl number says.
        flags = bytearray(struct.pack("i", 0))
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags)
        (value,) = struct.unpack("i", flags)
        if not value & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", value | _FS_TOPDIR_FL))
    except OSError:
        pass  # ENOTTY/EOPNOTSUPP: no such attribute here; EPERM: not ours to change
    finally:
        os.close(fd)


def _same_path(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            remove_tree(path)  # not shutil.rmtree: a revision may nest deeper than it recurses
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise AgentError(f"Error deleting directories: {path}: {exc.strerror or exc}") from exc


def _read_record(path: Path) -> Path | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AgentError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    return Path(text) if text else None


def _write_record(path: Path, deployment_dir: Path) -> None:
    # The official format: the absolute path, no trailing newline.
    _atomic_write(path, str(deployment_dir.absolute()))


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, never half-written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise AgentError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, say: name the file
            raise AgentError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
