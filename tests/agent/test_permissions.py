"""Permissions: which paths a permission selects, and applying mode, owner, group, ACLs, context."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opendeploy.agent.permissions import (
    PermissionTarget,
    _glob,
    acl_entries,
    apply_permissions,
    plan_permissions,
)
from opendeploy.appspec.model import Ace, ObjectType, Permission, SELinuxContext
from opendeploy.errors import PermissionsError
from tests._users import throwaway_user

FILES = ObjectType.FILE
DIRS = ObjectType.DIRECTORY

# What a deployment into /srv/app copied and created, as the installer passes it.
COPIED = [
    "/srv/app/index.html",
    "/srv/app/app.log",
    "/srv/app/lib/util.py",
    "/srv/app/lib/deep/core.py",
    "/srv/app/lib/debug.log",
]
CREATED = ["/srv/app", "/srv/app/lib", "/srv/app/lib/deep"]


def targets(*permissions: Permission, existing_dirs: tuple[str, ...] = ()) -> list[str]:
    """The paths selected, in order, for a deployment that copied COPIED and created CREATED."""
    plan = plan_permissions(
        permissions,
        copied_files=COPIED,
        created_dirs=CREATED,
        is_dir=lambda path: path in existing_dirs,
    )
    return [target.path for target in plan]


def write_tool(directory: Path, name: str, body: str) -> None:
    directory.mkdir(exist_ok=True)
    tool = directory / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)


# --- selection ------------------------------------------------------------------------------


def test_double_star_selects_everything_below_the_object_but_not_the_object() -> None:
    assert targets(Permission(object="/srv/app")) == [*COPIED, "/srv/app/lib", "/srv/app/lib/deep"]


def test_type_file_or_directory_restricts_the_selection() -> None:
    assert targets(Permission(object="/srv/app/lib", types=frozenset({FILES}))) == [
        "/srv/app/lib/util.py",
        "/srv/app/lib/deep/core.py",
        "/srv/app/lib/debug.log",
    ]
    assert targets(Permission(object="/srv/app", types=frozenset({DIRS}))) == [
        "/srv/app/lib",
        "/srv/app/lib/deep",
    ]


def test_a_glob_pattern_matches_direct_children_only() -> None:
    assert targets(Permission(object="/srv/app", pattern="*.log")) == ["/srv/app/app.log"]
    assert targets(Permission(object="/srv/app/lib", pattern="*")) == [
        "/srv/app/lib/util.py",
        "/srv/app/lib/debug.log",
        "/srv/app/lib/deep",
    ]


def test_only_star_is_special_in_a_glob() -> None:
    assert targets(Permission(object="/srv/app", pattern="index.htm?")) == []
    assert targets(Permission(object="/srv/app", pattern="index.*")) == ["/srv/app/index.html"]


def test_a_glob_that_would_backtrack_exponentially_is_matched_at_once() -> None:
    # As a regular expression, ".*a" twelve times then "b" against 250 "a"s runs for ages: an
    # appspec pattern must not be able to hang the Install.
    name = "/srv/app/" + "a" * 250
    started = time.monotonic()
    plan = plan_permissions(
        [Permission(object="/srv/app", pattern="*a" * 12 + "b")],
        copied_files=(*COPIED, name),
        created_dirs=CREATED,
        is_dir=lambda path: False,
    )
    assert [target.path for target in plan] == []
    assert time.monotonic() - started < 1


@given(
    pattern=st.text(alphabet="ab*.", max_size=8),
    name=st.text(alphabet="ab.", max_size=10),
)
def test_a_glob_matches_exactly_as_the_regular_expression_would(pattern: str, name: str) -> None:
    regex = re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern), re.DOTALL)
    assert _glob(pattern).fullmatch(name) == bool(regex.fullmatch(name))


def test_except_drops_direct_children_only() -> None:
    selected = targets(Permission(object="/srv/app", except_=("*.log", "lib")))
    # app.log and lib are direct children and dropped; lib/debug.log is deeper and kept.
    assert "/srv/app/app.log" not in selected
    assert "/srv/app/lib" not in selected
    assert "/srv/app/lib/debug.log" in selected
    assert "/srv/app/lib/deep" in selected


def test_an_existing_directory_selects_only_what_this_deployment_installed() -> None:
    assert targets(Permission(object="/srv"), existing_dirs=("/srv",)) == [
        *COPIED,
        *CREATED,
    ]


def test_an_object_that_is_neither_installed_nor_a_directory_selects_nothing() -> None:
    assert targets(Permission(object="/srv/elsewhere")) == []


def test_a_copied_file_object_is_its_own_target_when_type_includes_file() -> None:
    assert targets(Permission(object="/srv/app/index.html")) == ["/srv/app/index.html"]
    assert targets(Permission(object="/srv/app/index.html", types=frozenset({DIRS}))) == []


def test_object_paths_are_normalised() -> None:
    assert targets(Permission(object="/srv/app/lib/deep/")) == ["/srv/app/lib/deep/core.py"]
    assert targets(Permission(object="//srv/app/./index.html")) == ["/srv/app/index.html"]


def test_a_file_object_needs_the_default_pattern() -> None:
    with pytest.raises(PermissionsError) as caught:
        targets(Permission(object="/srv/app/index.html", pattern="*.html"))
    assert str(caught.value) == (
        "The deployment failed because the application specification file includes an object "
        "(/srv/app/index.html) with an invalid pattern (*.html), such as a pattern for a file "
        "applied to a directory. Correct the permissions section of the AppSpec file, and then "
        "try again."
    )


def test_a_file_object_may_not_have_except() -> None:
    with pytest.raises(PermissionsError) as caught:
        targets(Permission(object="/srv/app/index.html", except_=("*.log",)))
    assert str(caught.value) == (
        "The deployment failed because the except parameter for a pattern in the permissions "
        'section (["*.log"]) for the object named /srv/app/index.html contains an invalid format. '
        "Update the AppSpec file, and then try again."
    )


def test_default_acl_entries_on_a_file_are_an_error() -> None:
    acl = (Ace(default=True, kind="user", name="nobody", perms="r--"),)
    for obj in ("/srv/app/index.html", "/srv/app/lib"):
        with pytest.raises(PermissionsError, match="the -d parameter has been specified"):
            targets(Permission(object=obj, acls=acl))


def test_two_permissions_on_one_target_are_an_error() -> None:
    with pytest.raises(PermissionsError) as caught:
        targets(
            Permission(object="/srv/app/lib"), Permission(object="/srv/app/lib", pattern="*.log")
        )
    assert str(caught.value) == (
        "The deployment failed because the permissions setting for (/srv/app/lib/debug.log) is "
        "specified more than once in the application specification file. Update the files "
        "section of the AppSpec file, and then try again."
    )


def test_a_relative_object_is_an_error_naming_the_field() -> None:
    with pytest.raises(PermissionsError, match=r"permissions\[1\]\.object: 'srv/app'"):
        targets(Permission(object="/srv/app/app.log"), Permission(object="srv/app"))


def test_plan_yields_targets_with_their_kind() -> None:
    plan = list(
        plan_permissions(
            [Permission(object="/srv/app/lib/deep")],
            copied_files=COPIED,
            created_dirs=CREATED,
        )
    )
    assert plan == [
        PermissionTarget("/srv/app/lib/deep/core.py", Permission(object="/srv/app/lib/deep"), True)
    ]


# --- ACL entries ----------------------------------------------------------------------------


def test_acl_entries_add_base_entries_and_a_mask_from_the_mode() -> None:
    aces = (Ace(default=False, kind="user", name="alice", perms="rwx"),)
    assert acl_entries(aces, 0o640) == [
        "user::rw-",
        "group::r--",
        "other::---",
        "user:alice:rwx",
        "mask::r--",
    ]


def test_acl_entries_keep_an_explicit_mask_and_fill_in_defaults() -> None:
    aces = (
        Ace(default=False, kind="mask", name="", perms="rw-"),
        Ace(default=True, kind="group", name="", perms="r-x"),
        Ace(default=True, kind="user", name="bob", perms="rw-"),
    )
    assert acl_entries(aces, 0o755) == [
        "user::rwx",
        "group::r-x",
        "other::r-x",
        "mask::rw-",
        "default:group::r-x",
        "default:user:bob:rw-",
        "default:user::rwx",
        "default:other::r-x",
        "default:mask::r-x",
    ]


# --- applying -------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, list[str], list[str]]:
    """A small installed tree: (root, copied files, created dirs)."""
    root = tmp_path / "app"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "run").write_text("#!/bin/sh\n")
    (root / "index.html").write_text("<p>")
    copied = [str(root / "bin" / "run"), str(root / "index.html")]
    return root, copied, [str(root / "bin")]


@pytest.fixture
def account() -> Iterator[tuple[str, int, int]]:
    """A throwaway user and group (same name) for ownership tests: (name, uid, gid)."""
    with throwaway_user("odtest", shell="/usr/sbin/nologin", own_group=True) as name:
        import grp
        import pwd

        yield name, pwd.getpwnam(name).pw_uid, grp.getgrnam(name).gr_gid


def test_mode_is_the_octal_string_as_given(tree: tuple[Path, list[str], list[str]]) -> None:
    root, copied, created = tree
    count = apply_permissions(
        [
            Permission(object=str(root / "bin"), mode="755"),
            Permission(object=str(root), pattern="*.html", mode="420"),
        ],
        copied_files=copied,
        created_dirs=created,
    )
    assert count == 2
    assert stat.S_IMODE((root / "bin" / "run").stat().st_mode) == 0o755
    # An unquoted ``mode: 0644`` arrives as "420", and the official agent applies 0o420.
    assert stat.S_IMODE((root / "index.html").stat().st_mode) == 0o420


def test_owner_and_group_by_name(
    tree: tuple[Path, list[str], list[str]], account: tuple[str, int, int]
) -> None:
    root, copied, created = tree
    name, uid, gid = account
    apply_permissions(
        [Permission(object=str(root), owner=name, group=name)],
        copied_files=copied,
        created_dirs=created,
    )
    for path in (root / "bin", root / "bin" / "run", root / "index.html"):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (uid, gid)
    assert root.stat().st_uid == 0  # the object itself is not a target


def test_owner_and_group_by_numeric_id(tree: tuple[Path, list[str], list[str]]) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    root, copied, created = tree
    apply_permissions(
        [Permission(object=str(root), types=frozenset({FILES}), owner="54321", group="54322")],
        copied_files=copied,
        created_dirs=created,
    )
    info = (root / "index.html").stat()
    assert (info.st_uid, info.st_gid) == (54321, 54322)


def test_group_only_keeps_the_owner(tree: tuple[Path, list[str], list[str]]) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    root, copied, created = tree
    apply_permissions(
        [Permission(object=str(root / "index.html"), group="54322")],
        copied_files=copied,
        created_dirs=created,
    )
    info = (root / "index.html").stat()
    assert (info.st_uid, info.st_gid) == (0, 54322)


def test_unknown_owner_or_group_is_named_before_anything_changes(
    tree: tuple[Path, list[str], list[str]],
) -> None:
    root, copied, created = tree
    before = (root / "index.html").stat().st_mode
    with pytest.raises(PermissionsError, match="'no-such-user-xyz'.* is not a user"):
        apply_permissions(
            [Permission(object=str(root), mode="600", owner="no-such-user-xyz")],
            copied_files=copied,
            created_dirs=created,
        )
    with pytest.raises(PermissionsError, match="'no-such-group-xyz'.* is not a group"):
        apply_permissions(
            [Permission(object=str(root), group="no-such-group-xyz")],
            copied_files=copied,
            created_dirs=created,
        )
    assert (root / "index.html").stat().st_mode == before


def test_chown_keeps_a_setuid_bit_set_by_mode(
    tree: tuple[Path, list[str], list[str]], account: tuple[str, int, int]
) -> None:
    root, copied, created = tree
    name, uid, _ = account
    apply_permissions(
        [Permission(object=str(root / "bin"), mode="4755", owner=name)],
        copied_files=copied,
        created_dirs=created,
    )
    info = (root / "bin" / "run").stat()
    assert info.st_uid == uid
    assert stat.S_IMODE(info.st_mode) == 0o4755


def test_symlink_targets_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("x")
    outside.chmod(0o600)
    app = tmp_path / "app"
    app.mkdir()
    (app / "link").symlink_to(outside)
    apply_permissions(
        [Permission(object=str(app), mode="777")],
        copied_files=[str(app / "link")],
        created_dirs=[],
    )
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600


def test_acls_without_setfacl_are_a_clear_error(
    tree: tuple[Path, list[str], list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, copied, created = tree
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    acl = (Ace(default=False, kind="user", name="nobody", perms="r--"),)
    with pytest.raises(PermissionsError) as caught:
        apply_permissions(
            [Permission(object=str(root), acls=acl)], copied_files=copied, created_dirs=created
        )
    assert str(caught.value) == (
        f"acls requested for {root} but setfacl is not installed (install the acl package)"
    )


def test_acls_are_set_with_setfacl(tree: tuple[Path, list[str], list[str]]) -> None:
    # No skip: scripts/install installs Debian's acl package; without it this must fail loudly.
    assert shutil.which("setfacl") and shutil.which("getfacl"), (
        "setfacl/getfacl missing: install Debian's acl package (scripts/install does, as root)"
    )
    root, copied, created = tree
    acl = (Ace(default=False, kind="user", name="nobody", perms="r-x"),)
    default = (Ace(default=True, kind="user", name="nobody", perms="rwx"),)
    apply_permissions(
        [
            Permission(object=str(root), types=frozenset({FILES}), mode="640", acls=acl),
            Permission(object=str(root), types=frozenset({DIRS}), acls=default),
        ],
        copied_files=copied,
        created_dirs=created,
    )
    index = subprocess.run(
        ["getfacl", "-c", str(root / "index.html")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "user:nobody:r-x" in index
    assert "mask::r--" in index  # the mask is the mode's group bits, as the official agent does
    bin_acl = subprocess.run(
        ["getfacl", "-c", str(root / "bin")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "default:user:nobody:rwx" in bin_acl


def test_a_failing_setfacl_gives_the_official_message(
    tree: tuple[Path, list[str], list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, copied, created = tree
    tools = tmp_path / "tools"
    write_tool(tools, "setfacl", "echo 'setfacl: bad entry' >&2; exit 2")
    monkeypatch.setenv("PATH", str(tools))
    (root / "index.html").chmod(0o644)
    acl = (Ace(default=False, kind="user", name="nobody", perms="r--"),)
    with pytest.raises(PermissionsError) as caught:
        apply_permissions(
            [Permission(object=str(root / "index.html"), acls=acl)],
            copied_files=copied,
            created_dirs=created,
        )
    target = root / "index.html"
    assert str(caught.value) == (
        "The deployment failed because of a problem with the acls permission settings in the "
        f"application specification file for this object: {target}. Failed command: setfacl "
        f"--set user::rw-,group::r--,other::r--,user:nobody:r--,mask::r-- {target}. Exit code: 2"
        ". Output: setfacl: bad entry"
    )


def test_context_without_chcon_is_a_clear_error(
    tree: tuple[Path, list[str], list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, copied, created = tree
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    with pytest.raises(PermissionsError, match=f"context requested for {root} but chcon is not"):
        apply_permissions(
            [Permission(object=str(root), context=SELinuxContext(type="httpd_sys_content_t"))],
            copied_files=copied,
            created_dirs=created,
        )


@pytest.mark.skipif(
    os.path.exists("/sys/fs/selinux/enforce"), reason="SELinux is enabled on this host"
)
def test_context_with_selinux_disabled_is_a_clear_error(
    tree: tuple[Path, list[str], list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, copied, created = tree
    tools = tmp_path / "tools"
    write_tool(tools, "chcon", "exit 0")
    write_tool(tools, "selinuxenabled", "exit 1")
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(PermissionsError, match="SELinux is not enabled on this host"):
        apply_permissions(
            [Permission(object=str(root), context=SELinuxContext(type="httpd_sys_content_t"))],
            copied_files=copied,
            created_dirs=created,
        )


def test_context_is_set_with_chcon_when_selinux_is_enabled(
    tree: tuple[Path, list[str], list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, copied, created = tree
    tools = tmp_path / "tools"
    log = tmp_path / "chcon.log"
    write_tool(tools, "chcon", f'echo "$@" >> {log}')
    write_tool(tools, "selinuxenabled", "exit 0")
    monkeypatch.setenv("PATH", str(tools))
    context = SELinuxContext(type="httpd_sys_content_t", user="system_u", range="s0:c1.c3")
    apply_permissions(
        [
            Permission(object=str(root), types=frozenset({FILES}), context=context),
            Permission(object=str(root), types=frozenset({DIRS}), context=SELinuxContext(type="t")),
        ],
        copied_files=copied,
        created_dirs=created,
    )
    assert log.read_text().splitlines() == [
        f"-u system_u -t httpd_sys_content_t -l s0:c1.c3 {root / 'bin' / 'run'}",
        f"-u system_u -t httpd_sys_content_t -l s0:c1.c3 {root / 'index.html'}",
        f"-t t {root / 'bin'}",
    ]
