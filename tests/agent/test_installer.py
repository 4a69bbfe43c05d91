"""The Install event on real files: copying, file_exists_behavior, collisions, cleanup, memory."""

from __future__ import annotations

import json
import os
import stat
import tracemalloc
import uuid
from pathlib import Path

import pytest

from opendeploy.agent.cleanup import read_cleanup_file
from opendeploy.agent.installer import (
    Copy,
    InstallResult,
    Instruction,
    Mkdir,
    Planner,
    install,
    instruction_from_json,
)
from opendeploy.agent.permissions import Chmod, Chown, SetAcl, SetContext
from opendeploy.appspec.model import (
    Ace,
    AppSpec,
    FileExistsBehavior,
    FileMapping,
    ObjectType,
    Permission,
    SELinuxContext,
)
from opendeploy.errors import InstallError, PermissionsError

DG = "dg-1234"


def spec(
    *files: tuple[str, str],
    permissions: tuple[Permission, ...] = (),
    file_exists_behavior: FileExistsBehavior | None = None,
) -> AppSpec:
    return AppSpec(
        version=0.0,
        os="linux",
        files=tuple(FileMapping(source, destination) for source, destination in files),
        permissions=permissions,
        file_exists_behavior=file_exists_behavior,
    )


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """An unpacked revision: appspec.yml, a config file, and an app tree with nested dirs."""
    root = tmp_path / "bundle"
    write(root / "appspec.yml", "version: 0.0\nos: linux\n")
    write(root / "config" / "app.conf", "port=80\n")
    write(root / "app" / "index.html", "<p>")
    write(root / "app" / "lib" / "util.py", "pass\n")
    write(root / "app" / "lib" / "deep" / "core.py", "pass\n")
    return root


@pytest.fixture
def instructions(tmp_path: Path) -> Path:
    return tmp_path / "deployment-instructions"


def run(
    appspec: AppSpec,
    bundle: Path,
    instructions: Path,
    behaviour: FileExistsBehavior = FileExistsBehavior.DISALLOW,
) -> InstallResult:
    return install(
        appspec,
        archive_dir=bundle,
        instructions_dir=instructions,
        deployment_group_id=DG,
        file_exists_behavior=behaviour,
    )


def cleanup_lines(instructions: Path) -> list[str]:
    return read_cleanup_file(instructions / f"{DG}-cleanup")


def tree(root: Path) -> list[str]:
    """Every path below ``root``, relative, sorted (directories end with /)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        found += [os.path.normpath(os.path.join(rel, d)) + "/" for d in dirnames]
        found += [os.path.normpath(os.path.join(rel, f)) for f in filenames]
    return sorted(found)


# --- copying --------------------------------------------------------------------------------


def test_a_file_source_goes_into_the_destination_directory(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "etc" / "myapp"  # neither exists: both are created and recorded
    result = run(spec(("config/app.conf", str(dest))), bundle, instructions)

    assert (dest / "app.conf").read_text() == "port=80\n"
    assert result == InstallResult(
        files_copied=1, dirs_created=2, files_skipped=0, permissions_applied=0
    )
    assert cleanup_lines(instructions) == [
        str(tmp_path / "etc"),
        str(dest),
        str(dest / "app.conf"),
    ]


def test_a_directory_source_is_copied_recursively(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "srv"
    dest.mkdir()  # exists already: reused, never recorded
    run(spec(("app", str(dest))), bundle, instructions)

    assert tree(dest) == ["index.html", "lib/", "lib/deep/", "lib/deep/core.py", "lib/util.py"]
    assert cleanup_lines(instructions) == [
        str(dest / "index.html"),
        str(dest / "lib"),
        str(dest / "lib" / "deep"),
        str(dest / "lib" / "deep" / "core.py"),
        str(dest / "lib" / "util.py"),
    ]


def test_slash_source_copies_the_whole_bundle_including_the_appspec(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "all"
    run(spec(("/", str(dest))), bundle, instructions)
    assert tree(dest) == tree(bundle)
    assert (dest / "appspec.yml").exists()


def test_symlinks_are_recreated_as_symlinks(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    (bundle / "app" / "current").symlink_to("lib")  # to a directory: not followed
    (bundle / "app" / "main.py").symlink_to("lib/util.py")
    (bundle / "app" / "dangling").symlink_to("/nowhere/at/all")
    dest = tmp_path / "srv"
    run(spec(("app", str(dest))), bundle, instructions)

    assert os.readlink(dest / "current") == "lib"
    assert os.readlink(dest / "main.py") == "lib/util.py"
    assert os.readlink(dest / "dangling") == "/nowhere/at/all"
    assert (dest / "current").is_symlink()
    assert str(dest / "current") in cleanup_lines(instructions)


def test_mode_times_and_owner_are_preserved(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    script = write(bundle / "bin" / "start.sh", "#!/bin/sh\n")
    script.chmod(0o750)
    os.utime(script, (1_000_000_000, 1_000_000_000))
    if os.geteuid() == 0:
        os.chown(script, 54321, 54322)
    dest = tmp_path / "srv"
    run(spec(("bin", str(dest))), bundle, instructions)

    info = (dest / "start.sh").stat()
    assert stat.S_IMODE(info.st_mode) == 0o750
    assert info.st_mtime == 1_000_000_000
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (54321, 54322)


def test_setuid_xattrs_and_atime_are_copied_as_copystat_does(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    data = os.urandom(300_000)  # several pages: sendfile has a real copy to do
    binary = bundle / "bin" / "tool"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_bytes(data)
    binary.chmod(0o4755)  # setuid survives the chown that precedes the chmod
    os.utime(binary, ns=(1_100_000_000_123_456_789, 1_000_000_000_987_654_321))
    try:
        os.setxattr(binary, "user.opendeploy", b"kept")
        has_xattrs = True
    except OSError:  # a file system without user xattrs (tmpfs before 6.6)
        has_xattrs = False
    before = os.stat(binary)
    dest = tmp_path / "srv"
    run(spec(("bin", str(dest))), bundle, instructions)

    copied = dest / "tool"
    info = copied.stat()
    assert copied.read_bytes() == data
    assert stat.S_IMODE(info.st_mode) == 0o4755
    # Times as the source had them after it was read (copystat's reading, and relatime moves
    # an atime older than a day), to the nanosecond.
    after = os.stat(binary)
    assert info.st_mtime_ns == before.st_mtime_ns == 1_000_000_000_987_654_321
    assert info.st_atime_ns == after.st_atime_ns
    if has_xattrs:
        assert os.getxattr(copied, "user.opendeploy") == b"kept"


def test_a_copy_falls_back_to_read_write_where_sendfile_refuses(tmp_path: Path) -> None:
    from opendeploy.agent.installer import _copy_data

    source = tmp_path / "source"
    source.write_bytes(b"x" * 100_000 + b"end")
    target = tmp_path / "target"
    target.write_bytes(b"head:")
    infd = os.open(source, os.O_RDONLY)
    # sendfile refuses an O_APPEND destination (EINVAL) before the first byte.
    outfd = os.open(target, os.O_WRONLY | os.O_APPEND)
    try:
        _copy_data(infd, outfd, os.fstat(infd).st_size)
    finally:
        os.close(infd)
        os.close(outfd)
    assert target.read_bytes() == b"head:" + b"x" * 100_000 + b"end"


def test_destinations_must_be_absolute(bundle: Path, instructions: Path) -> None:
    with pytest.raises(InstallError, match=r"files\[0\]\.destination: 'srv/app' is not an abs"):
        run(spec(("app", "srv/app")), bundle, instructions)


def test_a_missing_source_is_named(bundle: Path, instructions: Path, tmp_path: Path) -> None:
    with pytest.raises(InstallError, match=r"files\[1\]\.source: 'nope' does not exist"):
        run(spec(("app", str(tmp_path / "a")), ("nope", str(tmp_path / "b"))), bundle, instructions)
    # Planning failed: nothing was copied.
    assert not (tmp_path / "a").exists()


def test_a_source_outside_the_bundle_is_refused(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    with pytest.raises(InstallError, match="points outside the bundle"):
        run(spec(("../../etc", str(tmp_path / "a"))), bundle, instructions)


# --- file_exists_behavior -------------------------------------------------------------------


def test_disallow_refuses_an_existing_file(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "srv"
    existing = write(dest / "lib" / "util.py", "mine")
    with pytest.raises(InstallError) as caught:
        run(spec(("app", str(dest))), bundle, instructions)
    assert str(caught.value) == (
        "The deployment failed because a specified file already exists at this location: "
        f"{existing}"
    )
    assert existing.read_text() == "mine"
    assert not (dest / "index.html").exists()  # checked while planning, before any copy


def test_overwrite_replaces_and_records_the_file(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "srv"
    existing = write(dest / "lib" / "util.py", "mine")
    result = run(spec(("app", str(dest))), bundle, instructions, FileExistsBehavior.OVERWRITE)
    assert existing.read_text() == "pass\n"
    assert result.files_copied == 3
    assert str(existing) in cleanup_lines(instructions)


def test_overwrite_replaces_a_symlink_not_its_target(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    outside = write(tmp_path / "outside.txt", "do not write through me")
    dest = tmp_path / "srv"
    dest.mkdir()
    (dest / "index.html").symlink_to(outside)
    run(spec(("app", str(dest))), bundle, instructions, FileExistsBehavior.OVERWRITE)
    assert not (dest / "index.html").is_symlink()
    assert outside.read_text() == "do not write through me"


def test_retain_keeps_the_file_and_does_not_record_it(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "srv"
    existing = write(dest / "lib" / "util.py", "mine")
    result = run(spec(("app", str(dest))), bundle, instructions, FileExistsBehavior.RETAIN)
    assert existing.read_text() == "mine"
    assert result.files_skipped == 1 and result.files_copied == 2
    assert str(existing) not in cleanup_lines(instructions)


def test_the_appspec_setting_wins_over_the_deployment_setting(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "srv"
    existing = write(dest / "index.html", "mine")
    retain = spec(("app", str(dest)), file_exists_behavior=FileExistsBehavior.RETAIN)
    run(retain, bundle, instructions, FileExistsBehavior.OVERWRITE)
    assert existing.read_text() == "mine"

    (instructions / f"{DG}-cleanup").unlink()  # keep this deployment's files for the next check
    disallow = spec(("app", str(dest)), file_exists_behavior=FileExistsBehavior.DISALLOW)
    with pytest.raises(InstallError, match="already exists"):
        run(disallow, bundle, instructions, FileExistsBehavior.OVERWRITE)


def test_an_invalid_deployment_setting_gets_the_official_message(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    with pytest.raises(InstallError, match="invalid option was specified for fileExistsBehavior"):
        install(
            spec(("app", str(tmp_path / "srv"))),
            archive_dir=bundle,
            instructions_dir=instructions,
            deployment_group_id=DG,
            file_exists_behavior="SOMETIMES",  # type: ignore[arg-type]
        )


# --- collisions within one deployment --------------------------------------------------------


def test_two_sources_for_one_destination(bundle: Path, instructions: Path, tmp_path: Path) -> None:
    write(bundle / "other" / "app.conf")
    dest = tmp_path / "etc"
    with pytest.raises(InstallError) as caught:
        run(spec(("config/app.conf", str(dest)), ("other", str(dest))), bundle, instructions)
    assert str(caught.value) == (
        "The deployment failed because the application specification file specifies two source "
        f"files named {bundle / 'other' / 'app.conf'} and {bundle / 'config' / 'app.conf'} for "
        f"the same destination ({dest / 'app.conf'}). Remove one of the source file paths from "
        "the AppSpec file, and then try again."
    )


def test_a_copy_onto_a_directory_being_created(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    write(bundle / "flat" / "lib")  # a file named like app/lib, the directory
    dest = tmp_path / "srv"
    with pytest.raises(InstallError) as caught:
        run(spec(("app", str(dest)), ("flat", str(dest))), bundle, instructions)
    assert str(caught.value) == (
        "The deployment failed because the application specification file calls for installing "
        f"the file {bundle / 'flat' / 'lib'}, but a file with that name already exists at the "
        f"location ({dest / 'lib'}). Update your AppSpec file or directory structure, and then "
        "try again."
    )


def test_a_directory_onto_a_file_being_copied(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    write(bundle / "flat" / "lib")
    dest = tmp_path / "srv"
    with pytest.raises(InstallError) as caught:
        run(spec(("flat", str(dest)), ("app", str(dest))), bundle, instructions)
    assert str(caught.value) == (
        "The deployment failed because the application specification file includes an mkdir "
        f"command more than once for the same destination path ({dest / 'lib'}) from "
        f"({bundle / 'flat' / 'lib'}). Update the files section of the AppSpec file, and then "
        "try again."
    )


def test_duplicate_mkdirs_are_merged(bundle: Path, instructions: Path, tmp_path: Path) -> None:
    dest = tmp_path / "srv" / "app"
    run(
        spec(("app", f"{dest}/"), ("config", str(dest)), ("config", f"{dest}//lib/")),
        bundle,
        instructions,
    )
    assert tree(dest) == [
        "app.conf",
        "index.html",
        "lib/",
        "lib/app.conf",
        "lib/deep/",
        "lib/deep/core.py",
        "lib/util.py",
    ]
    lines = cleanup_lines(instructions)
    assert lines.count(str(dest)) == 1 and lines.count(str(dest / "lib")) == 1


# --- cleanup between deployments ------------------------------------------------------------


def test_the_next_deployment_removes_what_the_previous_one_created(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "srv"
    mine = write(dest / "mine.conf", "keep")  # pre-existing: never touched
    run(spec(("app", str(dest))), bundle, instructions)
    write(dest / "lib" / "runtime.log", "written by the app")  # makes lib/ non-empty

    # Same files again under DISALLOW: fine, because cleanup runs before the existence checks.
    (bundle / "app" / "index.html").unlink()
    run(spec(("app", str(dest))), bundle, instructions)

    assert mine.read_text() == "keep"
    assert not (dest / "index.html").exists()  # removed, and no longer in the bundle
    assert (dest / "lib" / "runtime.log").exists()
    assert tree(dest) == [
        "lib/",
        "lib/deep/",
        "lib/deep/core.py",
        "lib/runtime.log",
        "lib/util.py",
        "mine.conf",
    ]


def test_a_failed_install_is_cleaned_up_by_the_next_one(
    bundle: Path, instructions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "srv"
    failing = tmp_path / "tools"
    failing.mkdir()
    (failing / "setfacl").write_text("#!/bin/sh\nexit 1\n")
    (failing / "setfacl").chmod(0o755)
    monkeypatch.setenv("PATH", str(failing))
    broken = spec(
        ("app", str(dest)),
        permissions=(
            Permission(
                object=str(dest),
                acls=(Ace(default=False, kind="user", name="nobody", perms="r--"),),
            ),
        ),
    )
    with pytest.raises(PermissionsError, match="Failed command: setfacl"):
        run(broken, bundle, instructions)
    assert (dest / "lib" / "deep" / "core.py").exists()  # copied before the failure

    monkeypatch.undo()
    run(spec(("config", str(dest))), bundle, instructions)
    assert tree(dest) == ["app.conf"]


def test_a_torn_cleanup_line_is_not_removed(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    instructions.mkdir()
    kept = write(tmp_path / "half.txt")
    gone = write(tmp_path / "whole.txt")
    (instructions / f"{DG}-cleanup").write_text(f"{gone}\n{kept}")
    run(spec(("config", str(tmp_path / "etc"))), bundle, instructions)
    assert kept.exists() and not gone.exists()


# --- install.json and permissions -----------------------------------------------------------


def test_install_json_lists_the_instructions_in_the_official_shapes(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "srv"
    permissions = (
        Permission(object=str(dest), pattern="*.html", mode="640", owner="0", group="0"),
        Permission(object=str(dest), types=frozenset({ObjectType.DIRECTORY}), mode="750"),
    )
    result = run(spec(("app", str(dest)), permissions=permissions), bundle, instructions)

    data = json.loads((instructions / f"{DG}-install.json").read_text())
    assert data == {
        "instructions": [
            {"type": "mkdir", "directory": str(dest)},
            {
                "type": "copy",
                "source": str(bundle / "app" / "index.html"),
                "destination": str(dest / "index.html"),
            },
            {"type": "mkdir", "directory": str(dest / "lib")},
            {"type": "mkdir", "directory": str(dest / "lib" / "deep")},
            {
                "type": "copy",
                "source": str(bundle / "app" / "lib" / "deep" / "core.py"),
                "destination": str(dest / "lib" / "deep" / "core.py"),
            },
            {
                "type": "copy",
                "source": str(bundle / "app" / "lib" / "util.py"),
                "destination": str(dest / "lib" / "util.py"),
            },
            {"type": "chmod", "mode": "640", "file": str(dest / "index.html")},
            {"type": "chown", "owner": "0", "group": "0", "file": str(dest / "index.html")},
            {"type": "chmod", "mode": "750", "file": str(dest / "lib")},
            {"type": "chmod", "mode": "750", "file": str(dest / "lib" / "deep")},
        ]
    }
    assert result.permissions_applied == 3
    assert stat.S_IMODE((dest / "index.html").stat().st_mode) == 0o640
    assert stat.S_IMODE((dest / "lib" / "deep").stat().st_mode) == 0o750


def test_a_permission_problem_is_found_before_anything_is_copied(
    bundle: Path, instructions: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "srv"
    bad = Permission(object=str(dest), owner="no-such-user-xyz")
    with pytest.raises(PermissionsError, match="no-such-user-xyz"):
        run(spec(("app", str(dest)), permissions=(bad,)), bundle, instructions)
    assert not dest.exists()


def test_progress_is_reported(bundle: Path, instructions: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    install(
        spec(("app", str(tmp_path / "srv"))),
        archive_dir=bundle,
        instructions_dir=instructions,
        deployment_group_id=DG,
        on_progress=messages.append,
    )
    assert messages[-1].startswith("installed: 3 files copied, 3 directories created")


# --- bounded memory -------------------------------------------------------------------------


def test_memory_stays_bounded_for_a_large_bundle(instructions: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "big"
    for d in range(50):
        folder = bundle / f"dir{d:02}"
        folder.mkdir(parents=True)
        for f in range(100):
            (folder / f"file{f:03}.txt").write_bytes(b"x")
    dest = tmp_path / "srv"

    tracemalloc.start()
    try:
        result = run(spec(("/", str(dest))), bundle, instructions)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.files_copied == 5000
    # The two path maps for 5,000 files take well under a megabyte; a per-file object graph
    # (the official agent's problem) would take several.
    assert peak < 3 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_every_instruction_survives_the_round_trip_through_install_json() -> None:
    values: list[Instruction] = [
        Copy("/b/a.txt", "/srv/a.txt"),
        Mkdir("/srv/d"),
        Chmod("/srv/a.txt", "0644"),
        SetAcl(
            "/srv/d",
            (
                Ace(default=True, kind="user", name="bob", perms="rw-"),
                Ace(default=False, kind="mask", name="", perms="r--"),
            ),
        ),
        SetContext("/srv/d", SELinuxContext(type="httpd_sys_content_t", range="s0")),
        Chown("/srv/a.txt", "www-data", None),
    ]
    for value in values:
        assert instruction_from_json(json.loads(json.dumps(value.to_json()))) == value
    assert values[4].to_json()["context"] == {
        "user": None,
        "role": None,
        "type": "httpd_sys_content_t",
        "range": "s0",
    }


# --- nothing is written outside the destinations -------------------------------------------


def test_a_link_left_in_a_destination_by_another_group_is_not_installed_through(
    tmp_path: Path, instructions: Path
) -> None:
    # Group A's bundle maps a subdirectory whose link points inside its bundle but, once
    # installed one level down, outside the destination: that is allowed (links are copied as
    # they are), but group B's bundle must not write through it.
    canary = tmp_path / "canary"
    write(canary / "keep.txt", "keep")
    dest = tmp_path / "srv" / "app"
    bundle_a = tmp_path / "a"
    write(bundle_a / "site" / "index.html")
    (bundle_a / "site" / "data").symlink_to("../../canary")  # bundle/canary: inside the bundle
    write(bundle_a / "canary" / "x")
    install(
        spec(("site", str(dest))),
        archive_dir=bundle_a,
        instructions_dir=instructions,
        deployment_group_id="group-a",
    )
    assert (dest / "data").resolve() == canary.resolve()
    bundle_b = tmp_path / "b"
    write(bundle_b / "data" / "evil.txt", "evil")
    before = sorted(p.name for p in canary.iterdir())
    with pytest.raises(InstallError) as caught:
        install(
            spec(("/", str(dest))),
            archive_dir=bundle_b,
            instructions_dir=instructions,
            deployment_group_id="group-b",
        )
    assert caught.value.args[0] == (
        f"files[0]: {dest}/data is a symbolic link (to ../../canary) below the destination "
        f"{dest}; installing through it could write outside the destination, so it is "
        "refused. Remove the link, or name the directory it points to as the destination"
    )
    assert sorted(p.name for p in canary.iterdir()) == before
    assert not (instructions / "group-b-cleanup").exists() or not read_cleanup_file(
        instructions / "group-b-cleanup"
    )


@pytest.mark.parametrize(
    "behaviour",
    [FileExistsBehavior.OVERWRITE, FileExistsBehavior.RETAIN, FileExistsBehavior.DISALLOW],
)
def test_a_link_below_the_destination_is_refused_whatever_the_file_exists_behaviour(
    tmp_path: Path, instructions: Path, behaviour: FileExistsBehavior
) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    dest = tmp_path / "dest"
    (dest / "a").mkdir(parents=True)
    (dest / "a" / "b").symlink_to(canary)
    bundle = tmp_path / "bundle"
    write(bundle / "a" / "b" / "c" / "evil.txt")
    with pytest.raises(InstallError, match=r"files\[0\]: .*/dest/a/b is a symbolic link"):
        run(spec(("/", str(dest))), bundle, instructions, behaviour)
    assert list(canary.iterdir()) == []


def test_a_link_as_the_named_destination_or_above_it_is_followed(
    tmp_path: Path, bundle: Path, instructions: Path
) -> None:
    # The destination as the appspec names it is the author's choice, links included (e.g.
    # /var/www -> /srv/www); the cleanup file records the real paths.
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "www").symlink_to(real)
    run(spec(("config", str(tmp_path / "www" / "conf"))), bundle, instructions)
    assert (real / "conf" / "app.conf").read_text() == "port=80\n"
    assert cleanup_lines(instructions) == [str(real / "conf"), str(real / "conf" / "app.conf")]
    run(spec(("config", str(tmp_path / "www" / "conf"))), bundle, instructions)
    assert (real / "conf" / "app.conf").read_text() == "port=80\n"


def test_a_bundle_cannot_install_over_its_own_cleanup_file(
    tmp_path: Path, instructions: Path
) -> None:
    victim = write(tmp_path / "victim.txt", "precious")
    bundle = tmp_path / "bundle"
    write(bundle / f"{DG}-cleanup", f"{victim}\n")
    first = tmp_path / "first"
    write(first / "x.txt")
    run(spec(("x.txt", str(tmp_path / "app"))), first, instructions)
    with pytest.raises(InstallError, match=r"files\[0\]: installing .* would write into .*"):
        run(
            spec((f"{DG}-cleanup", str(instructions))),
            bundle,
            instructions,
            FileExistsBehavior.OVERWRITE,
        )
    # The next deployment's cleanup removes what the first installed, and nothing else.
    run(spec(("x.txt", str(tmp_path / "app"))), first, instructions)
    assert victim.read_text() == "precious"


def test_nothing_is_installed_into_the_protected_deployment_root(
    tmp_path: Path, instructions: Path
) -> None:
    root = tmp_path / "root"
    bundle = tmp_path / "bundle"
    write(bundle / "root" / "group" / "d-1" / "deployment-archive" / "evil.sh")
    with pytest.raises(InstallError, match=rf"would write into {root}, the agent's own"):
        install(
            spec(("/", str(tmp_path))),
            archive_dir=bundle,
            instructions_dir=instructions,
            deployment_group_id=DG,
            protected=(root,),
        )
    assert not root.exists()


def test_a_link_swapped_in_after_planning_is_not_written_through(
    tmp_path: Path, bundle: Path, instructions: Path
) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    dest = tmp_path / "dest"
    (dest / "lib").mkdir(parents=True)

    def swap(message: str) -> None:
        if message.startswith("planned"):
            (dest / "lib").rmdir()
            (dest / "lib").symlink_to(canary)

    with pytest.raises(InstallError, match=r"its directory .*/dest/lib now resolves to"):
        install(
            spec(("app", str(dest))),
            archive_dir=bundle,
            instructions_dir=instructions,
            deployment_group_id=DG,
            on_progress=swap,
            file_exists_behavior=FileExistsBehavior.OVERWRITE,
        )
    assert list(canary.iterdir()) == []


def test_cleanup_does_not_delete_through_a_link_put_in_its_way(
    tmp_path: Path, bundle: Path, instructions: Path
) -> None:
    dest = tmp_path / "dest"
    run(spec(("app", str(dest))), bundle, instructions)
    canary = tmp_path / "canary"
    write(canary / "util.py", "not ours")
    # Someone replaces an installed directory with a link to a directory holding a same-named
    # file: replaying the cleanup must not delete it.
    for name in ("deep/core.py", "deep", "util.py"):
        path = dest / "lib" / name
        path.rmdir() if path.is_dir() else path.unlink()
    (dest / "lib").rmdir()
    (dest / "lib").symlink_to(canary)
    run(spec(("config", str(tmp_path / "other"))), bundle, instructions)
    assert (canary / "util.py").read_text() == "not ours"


def test_the_root_directory_as_destination_is_planned(tmp_path: Path) -> None:
    # Only planned, never run: "/" as the destination (every path is below it).
    name = f"opendeploy-test-{uuid.uuid4().hex}"
    bundle = tmp_path / "bundle"
    write(bundle / "site" / name / "f.txt")
    planner = Planner(
        spec(("site", "/")),
        archive_dir=bundle,
        file_exists_behavior=FileExistsBehavior.DISALLOW,
    )
    assert list(planner.instructions()) == [
        Mkdir(f"/{name}"),
        Copy(str(bundle / "site" / name / "f.txt"), f"/{name}/f.txt"),
    ]
