"""The deployment root: official names, records, and the max_revisions rule (§1.8)."""

from __future__ import annotations

import errno
import inspect
import os
import sys
from pathlib import Path

import pytest

from opendeploy.agent.deployment_root import DeploymentRoot
from opendeploy.errors import AgentError

DG = "2a0e1c5e-group"


def make_deployments(root: DeploymentRoot, *names: str) -> list[Path]:
    """Create deployment dirs with strictly increasing mtimes, oldest first."""
    paths = []
    for age, name in enumerate(names):
        path = root.deployment(DG, name).archive
        path.mkdir(parents=True)
        (path / "appspec.yml").write_text("version: 0.0\nos: linux\n")
        stamp = 1_700_000_000 + age * 10
        os.utime(path.parent, (stamp, stamp))
        paths.append(path.parent)
    return paths


def names(root: DeploymentRoot) -> set[str]:
    return {p.name for p in root.group_dir(DG).iterdir()}


def test_paths_follow_the_official_names(tmp_path: Path) -> None:
    root = DeploymentRoot(tmp_path)
    deployment = root.deployment(DG, "d-ABCDEFGHI")
    assert deployment.path == tmp_path / DG / "d-ABCDEFGHI"
    assert deployment.bundle.name == "bundle.tar"
    assert deployment.archive.name == "deployment-archive"
    assert deployment.scripts_log == deployment.path / "logs" / "scripts.log"
    instructions = tmp_path / "deployment-instructions"
    assert root.cleanup_file(DG) == instructions / f"{DG}-cleanup"
    assert root.install_json(DG) == instructions / f"{DG}-install.json"
    assert root.last_successful_file(DG) == instructions / f"{DG}_last_successful_install"
    assert root.most_recent_file(DG) == instructions / f"{DG}_most_recent_install"
    assert root.deployments_log == tmp_path / "deployment-logs/codedeploy-agent-deployments.log"
    assert root.ongoing_dir == tmp_path / "ongoing-deployment"


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b"])
def test_ids_must_be_one_path_component(tmp_path: Path, bad: str) -> None:
    with pytest.raises(AgentError, match="must be a non-empty name"):
        DeploymentRoot(tmp_path).deployment(DG, bad)


def test_records_hold_the_absolute_path_without_newline(tmp_path: Path) -> None:
    root = DeploymentRoot(tmp_path)
    assert root.last_successful(DG) is None
    deployment = root.deployment(DG, "d-1")
    root.record_last_successful(DG, deployment)
    root.record_most_recent(DG, deployment)
    assert root.last_successful_file(DG).read_text() == str(deployment.path)
    assert root.last_successful(DG) == deployment.path
    assert root.most_recent(DG) == deployment.path
    # A record written by the official agent (or by hand) with a trailing newline reads the same.
    root.last_successful_file(DG).write_text(f"{deployment.path}\n")
    assert root.last_successful(DG) == deployment.path


def test_tracking_files(tmp_path: Path) -> None:
    root = DeploymentRoot(tmp_path)
    root.start_tracking("d-1", "command-7")
    assert (tmp_path / "ongoing-deployment" / "d-1").read_text() == "command-7"
    assert root.ongoing() == ["d-1"]
    root.stop_tracking("d-1")
    assert root.ongoing() == []


def test_cleanup_keeps_max_revisions_counting_the_current_one(tmp_path: Path) -> None:
    root = DeploymentRoot(tmp_path)
    make_deployments(root, "d-1", "d-2", "d-3", "d-4", "d-5", "d-6")
    removed = root.cleanup_old_deployments(DG, "d-6", max_revisions=3)
    assert [p.name for p in removed] == ["d-1", "d-2", "d-3"]
    assert names(root) == {"d-4", "d-5", "d-6"}


def test_cleanup_never_removes_the_last_successful_deployment(tmp_path: Path) -> None:
    root = DeploymentRoot(tmp_path)
    first, *_ = make_deployments(root, "d-1", "d-2", "d-3", "d-4")
    root.record_last_successful(DG, root.deployment(DG, "d-1"))
    root.cleanup_old_deployments(DG, "d-4", max_revisions=2)
    # extra = 3 - 2 + 1 = 2, taken from the candidates without d-1: d-2 and d-3.
    assert names(root) == {"d-1", "d-4"}
    assert first.exists()


def test_cleanup_with_room_left_removes_nothing(tmp_path: Path) -> None:
    root = DeploymentRoot(tmp_path)
    make_deployments(root, "d-1", "d-2")
    assert root.cleanup_old_deployments(DG, "d-3", max_revisions=5) == []
    assert root.cleanup_old_deployments("other-group", "d-3", max_revisions=1) == []
    assert names(root) == {"d-1", "d-2"}


def test_cleanup_with_max_revisions_one_keeps_only_the_current(tmp_path: Path) -> None:
    root = DeploymentRoot(tmp_path)
    make_deployments(root, "d-1", "d-2", "d-3")
    root.cleanup_old_deployments(DG, "d-3", max_revisions=1)
    assert names(root) == {"d-3"}


def test_cleanup_removes_stray_files_and_symlinks_without_following_them(tmp_path: Path) -> None:
    root = DeploymentRoot(tmp_path / "root")
    make_deployments(root, "d-1")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    link = root.group_dir(DG) / "a-link"
    link.symlink_to(outside)
    os.utime(link, (1, 1), follow_symlinks=False)
    root.cleanup_old_deployments(DG, "d-9", max_revisions=1)
    assert names(root) == set()
    assert (outside / "keep.txt").exists()


def test_cleanup_rejects_zero(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="max_revisions: 0 must be >= 1"):
        DeploymentRoot(tmp_path).cleanup_old_deployments(DG, "d-1", max_revisions=0)


def _dir_flags(path: Path) -> int | None:
    """The inode flags of ``path`` (``lsattr``), or None where the file system has none."""
    import fcntl
    import struct

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buffer = bytearray(4)
        fcntl.ioctl(fd, 0x80006601 | (struct.calcsize("l") << 16), buffer)
        return int(struct.unpack("i", buffer)[0])
    except OSError:
        return None
    finally:
        os.close(fd)


def test_a_group_dir_spreads_its_deployment_dirs(tmp_path: Path) -> None:
    """chattr +T on the group dir, so each revision's files go to a block group of their own."""
    root = DeploymentRoot(tmp_path)
    deployment = root.make_deployment_dir(DG, "d-1")
    assert deployment.path.is_dir()
    flags = _dir_flags(root.group_dir(DG))
    if flags is not None:  # ext4 (CI's file system) has the attribute; tmpfs has no flags
        assert flags & 0x00020000, f"FS_TOPDIR_FL not set: {flags:#x}"
    # Idempotent, and an existing deployment dir is left as it is.
    (deployment.path / "keep").write_text("x")
    assert root.make_deployment_dir(DG, "d-1") == deployment
    assert (deployment.path / "keep").read_text() == "x"


def test_a_full_disk_while_writing_a_record_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    root = DeploymentRoot(tmp_path / "root")
    with pytest.raises(AgentError) as caught:
        root.start_tracking("d-123456789", "cmd")
    path = tmp_path / "root" / "ongoing-deployment" / "d-123456789"
    assert str(caught.value) == f"cannot write {path}: No space left on device"
    assert os.listdir(path.parent) == []  # the temporary file is gone


def test_an_old_revision_nested_deeper_than_python_recurses_is_removed(tmp_path: Path) -> None:
    # shutil.rmtree needs a frame per level; the recursion limit is lowered to keep this small.
    root = DeploymentRoot(tmp_path / "root")
    old, *_ = make_deployments(root, "d-1", "d-2", "d-3")
    deep = str(old / "deployment-archive")
    for _ in range(300):
        deep += "/d"
        os.mkdir(deep)
    Path(deep, "leaf").write_text("x")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 150)
    try:
        removed = root.cleanup_old_deployments(DG, "d-4", max_revisions=3)
    finally:
        sys.setrecursionlimit(limit)
    assert old in removed
    assert not old.exists()
