"""The cleanup file: format, torn writes, and removing exactly what was recorded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opendeploy.agent.cleanup import CleanupWriter, read_cleanup_file, run_cleanup
from opendeploy.errors import InstallError


def write_tool(directory: Path, name: str, body: str) -> None:
    """A small shell script standing in for a system tool, put first on PATH by the test."""
    directory.mkdir(exist_ok=True)
    tool = directory / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)


def test_read_returns_lines_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "dg-cleanup"
    path.write_bytes(b"/a\n/a/b\nsemanage\0/a/b\n")
    assert read_cleanup_file(path) == ["/a", "/a/b", "semanage\0/a/b"]


def test_read_drops_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "dg-cleanup"
    path.write_bytes(b"/a\n/a/b\n/a/b/c")
    assert read_cleanup_file(path) == ["/a", "/a/b"]


def test_read_of_a_single_torn_line_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "dg-cleanup"
    path.write_bytes(b"/only/half/writ")
    assert read_cleanup_file(path) == []


def test_read_of_missing_or_empty_file_is_empty(tmp_path: Path) -> None:
    assert read_cleanup_file(tmp_path / "missing") == []
    (tmp_path / "empty").write_bytes(b"")
    assert read_cleanup_file(tmp_path / "empty") == []


def test_read_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "dg-cleanup"
    path.write_bytes(b"\n/a\n\n/b\n")
    assert read_cleanup_file(path) == ["/a", "/b"]


def test_read_handles_lines_across_block_boundaries(tmp_path: Path) -> None:
    # Far more than one 64 KiB block, with line lengths that do not divide it.
    lines = [f"/srv/app/{'x' * (i % 97)}/{i}" for i in range(6000)]
    path = tmp_path / "dg-cleanup"
    path.write_text("\n".join(lines) + "\n" + "/torn/at/the/end")
    assert read_cleanup_file(path) == lines


def test_read_keeps_non_utf8_names(tmp_path: Path) -> None:
    path = tmp_path / "dg-cleanup"
    path.write_bytes(b"/srv/caf\xe9\n")
    assert [os.fsencode(line) for line in read_cleanup_file(path)] == [b"/srv/caf\xe9"]


def test_writer_flushes_each_line_before_returning(tmp_path: Path) -> None:
    path = tmp_path / "instructions" / "dg-cleanup"
    with CleanupWriter(path) as writer:
        writer.record("/srv/app")
        assert path.read_bytes() == b"/srv/app\n"
        writer.record_context("/srv/app/x")
        assert path.read_bytes() == b"/srv/app\nsemanage\0/srv/app/x\n"


def test_writer_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "dg-cleanup"
    path.write_bytes(b"/old\n")
    with CleanupWriter(path) as writer:
        writer.record("/new")
    assert read_cleanup_file(path) == ["/old", "/new"]


def test_writer_refuses_a_path_with_a_newline(tmp_path: Path) -> None:
    with (
        CleanupWriter(tmp_path / "dg-cleanup") as writer,
        pytest.raises(InstallError, match="newline"),
    ):
        writer.record("/srv/a\nb")


def test_run_removes_what_was_recorded_in_reverse_order(tmp_path: Path) -> None:
    app = tmp_path / "app"
    cleanup = tmp_path / "dg-cleanup"
    with CleanupWriter(cleanup) as writer:
        app.mkdir()
        writer.record(str(app))
        (app / "sub").mkdir()
        writer.record(str(app / "sub"))
        writer.record(str(app / "sub" / "f.txt"))
        (app / "sub" / "f.txt").write_text("x")
        writer.record(str(app / "link"))
        (app / "link").symlink_to(app / "sub")

    assert run_cleanup(cleanup) == 4
    assert not app.exists()
    assert not cleanup.exists()


def test_run_never_touches_unrecorded_files_and_keeps_non_empty_dirs(tmp_path: Path) -> None:
    existing = tmp_path / "existing"  # was there before: never recorded
    existing.mkdir()
    (existing / "mine.conf").write_text("keep")
    created = existing / "created"
    cleanup = tmp_path / "dg-cleanup"
    with CleanupWriter(cleanup) as writer:
        created.mkdir()
        writer.record(str(created))
        writer.record(str(created / "deployed.txt"))
        (created / "deployed.txt").write_text("x")
    (created / "added-later-by-someone.log").write_text("keep me")

    assert run_cleanup(cleanup) == 1
    assert (existing / "mine.conf").read_text() == "keep"
    assert (created / "added-later-by-someone.log").exists()
    assert not (created / "deployed.txt").exists()


def test_run_unlinks_a_symlink_to_a_directory_without_following_it(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "precious").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(target)
    cleanup = tmp_path / "dg-cleanup"
    cleanup.write_text(f"{link}\n")

    assert run_cleanup(cleanup) == 1
    assert not link.is_symlink()
    assert (target / "precious").exists()


def test_run_ignores_missing_paths_and_the_torn_line(tmp_path: Path) -> None:
    torn = tmp_path / "torn.txt"
    torn.write_text("created before the crash recorded it fully")
    cleanup = tmp_path / "dg-cleanup"
    cleanup.write_text(f"{tmp_path / 'gone'}\n{torn}")

    assert run_cleanup(cleanup) == 0
    assert torn.exists()
    assert not cleanup.exists()


def test_run_ignores_context_lines_when_semanage_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    cleanup = tmp_path / "dg-cleanup"
    cleanup.write_bytes(b"semanage\0/srv/app/x\n")
    assert run_cleanup(cleanup) == 0
    assert not cleanup.exists()


def test_run_deletes_context_rules_with_semanage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "tools"
    log = tmp_path / "semanage.log"
    write_tool(tools, "semanage", f'echo "$@" >> {log}')
    monkeypatch.setenv("PATH", str(tools))
    cleanup = tmp_path / "dg-cleanup"
    cleanup.write_bytes(b"semanage\0/srv/app/x\nsemanage\0/srv/app/y\n")

    run_cleanup(cleanup)
    assert log.read_text().splitlines() == ["fcontext -d /srv/app/y", "fcontext -d /srv/app/x"]


def test_run_treats_a_path_below_a_file_as_missing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    cleanup = tmp_path / "dg-cleanup"
    cleanup.write_text(f"{tmp_path / 'file' / 'child'}\n")
    assert run_cleanup(cleanup) == 0
    assert (tmp_path / "file").exists()
