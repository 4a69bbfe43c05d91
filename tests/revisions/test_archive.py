"""unpack_bundle: friendly bundles unpack like the official agent; hostile ones write nothing."""

from __future__ import annotations

import gzip
import hashlib
import inspect
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tracemalloc
import types
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import opendeploy.revisions
from opendeploy.errors import BundleError, UnsafeArchiveError
from opendeploy.revisions.archive import ExtractLimits, remove_tree, sha256_file, unpack_bundle

# --- builders: hostile and friendly bundles, written with the stdlib writers ------------


@dataclass(frozen=True)
class Entry:
    """One archive member: a file (``data``), a ``dir``, a ``symlink``/``hardlink`` (``target``),
    or a ``chr``/``blk``/``fifo`` special file."""

    name: str
    data: bytes = b""
    kind: str = "file"
    target: str = ""
    mode: int | None = None


def file(name: str, data: bytes = b"x", mode: int | None = None) -> Entry:
    return Entry(name, data=data, mode=mode)


def directory(name: str, mode: int | None = None) -> Entry:
    return Entry(name, kind="dir", mode=mode)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, kind="symlink", target=target)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, kind="hardlink", target=target)


def special(name: str, kind: str) -> Entry:
    return Entry(name, kind=kind)


_TAR_TYPES = {
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def write_tar(path: Path, entries: Sequence[Entry], *, gz: bool = False) -> Path:
    with tarfile.open(path, "w:gz" if gz else "w") as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.mtime = 1_600_000_000
            if e.kind == "file":
                info.size = len(e.data)
                info.mode = 0o644 if e.mode is None else e.mode
                tar.addfile(info, io.BytesIO(e.data))
                continue
            info.type = _TAR_TYPES[e.kind]
            info.linkname = e.target
            info.mode = (0o755 if e.kind == "dir" else 0o777) if e.mode is None else e.mode
            tar.addfile(info)
    return path


_ZIP_TYPES = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "fifo": stat.S_IFIFO,
    "chr": stat.S_IFCHR,
}


def write_zip(path: Path, entries: Sequence[Entry], *, unix: bool = True) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for e in entries:
            name = e.name + "/" if e.kind == "dir" and not e.name.endswith("/") else e.name
            info = zipfile.ZipInfo(name, date_time=(2020, 9, 13, 12, 26, 40))
            info.compress_type = zipfile.ZIP_DEFLATED
            if unix:
                info.create_system = 3
                default = 0o755 if e.kind == "dir" else 0o644
                mode = default if e.mode is None else e.mode
                info.external_attr = (_ZIP_TYPES[e.kind] | mode) << 16
            else:
                info.create_system = 0
            zf.writestr(info, e.target.encode() if e.kind == "symlink" else e.data)
    return path


class Layout:
    """tmp_path/work is the parent of dest; the bundle sits beside work, in tmp_path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.work = root / "work"
        self.work.mkdir()
        self.dest = self.work / "deployment-archive"

    def tree(self) -> set[str]:
        """Every path under tmp_path, relative, links not followed."""
        found: set[str] = set()
        for current, dirs, files in os.walk(self.root):
            for name in dirs + files:
                found.add(os.path.relpath(os.path.join(current, name), self.root))
        return found

    def assert_nothing_outside(self, *bundles: Path) -> None:
        """Only the bundles, work/ and whatever is inside dest may exist."""
        allowed = {"work"} | {str(b.relative_to(self.root)) for b in bundles}
        stray = {
            p
            for p in self.tree()
            if p not in allowed and not p.startswith("work/deployment-archive")
        }
        assert stray == set(), f"written outside dest: {sorted(stray)}"

    def assert_clean_failure(self, *bundles: Path) -> None:
        """A failed unpack leaves no dest and no temporary sibling."""
        assert os.listdir(self.work) == []
        self.assert_nothing_outside(*bundles)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path)


Builder = Callable[[Path, Sequence[Entry]], tuple[Path, str]]


def _tar(root: Path, entries: Sequence[Entry]) -> tuple[Path, str]:
    return write_tar(root / "bundle.tar", entries), "tar"


def _tgz(root: Path, entries: Sequence[Entry]) -> tuple[Path, str]:
    return write_tar(root / "bundle.tgz", entries, gz=True), "tgz"


def _zip(root: Path, entries: Sequence[Entry]) -> tuple[Path, str]:
    return write_zip(root / "bundle.zip", entries), "zip"


ALL = pytest.mark.parametrize("build", [_tar, _tgz, _zip], ids=["tar", "tgz", "zip"])
TARS = pytest.mark.parametrize("build", [_tar, _tgz], ids=["tar", "tgz"])
DEFAULT_LIMITS = ExtractLimits()


def refused(
    layout: Layout, bundle: Path, kind: str, match: str, limits: ExtractLimits = DEFAULT_LIMITS
) -> None:
    """Unpacking must fail with UnsafeArchiveError, leaving no dest, temp dir or stray file."""
    with pytest.raises(UnsafeArchiveError, match=match):
        unpack_bundle(bundle, kind, layout.dest, limits=limits)
    layout.assert_clean_failure(bundle)


# --- friendly bundles -----------------------------------------------------------------------


@ALL
def test_unpacks_files_dirs_and_executable_bits(layout: Layout, build: Builder) -> None:
    bundle, kind = build(
        layout.root,
        [
            file("appspec.yml", b"version: 0.0\n"),
            directory("scripts"),
            file("scripts/start.sh", b"#!/bin/sh\n", mode=0o755),
            file("a/b/deep.txt", b"deep"),  # parents without entries of their own
        ],
    )
    unpack_bundle(bundle, kind, layout.dest)
    assert (layout.dest / "appspec.yml").read_bytes() == b"version: 0.0\n"
    assert (layout.dest / "a/b/deep.txt").read_bytes() == b"deep"
    assert stat.S_IMODE((layout.dest / "scripts/start.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((layout.dest / "appspec.yml").stat().st_mode) == 0o644
    assert (layout.dest / "appspec.yml").stat().st_mtime == pytest.approx(1_600_000_000, abs=86400)
    assert os.listdir(layout.work) == ["deployment-archive"]
    assert bundle.exists(), "the caller owns the bundle and deletes it"


@ALL
def test_setuid_setgid_and_sticky_bits_are_stripped(layout: Layout, build: Builder) -> None:
    bundle, kind = build(
        layout.root, [file("suid", mode=0o4755), file("sgid", mode=0o2750), directory("t", 0o1777)]
    )
    unpack_bundle(bundle, kind, layout.dest)
    assert stat.S_IMODE((layout.dest / "suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((layout.dest / "sgid").stat().st_mode) == 0o750
    assert stat.S_IMODE((layout.dest / "t").stat().st_mode) == 0o777


def test_zip_without_unix_modes_uses_umask_defaults(layout: Layout) -> None:
    bundle = write_zip(layout.root / "b.zip", [file("appspec.yml"), directory("d")], unix=False)
    unpack_bundle(bundle, "zip", layout.dest)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((layout.dest / "appspec.yml").stat().st_mode) == 0o666 & ~umask
    assert (layout.dest / "d").is_dir()


def test_zip_backslash_names_are_separators(layout: Layout) -> None:
    bundle = write_zip(layout.root / "b.zip", [file("scripts\\run.sh", b"ok")])
    unpack_bundle(bundle, "zip", layout.dest)
    assert (layout.dest / "scripts" / "run.sh").read_bytes() == b"ok"


@ALL
def test_inner_symlinks_are_kept_as_links(layout: Layout, build: Builder) -> None:
    bundle, kind = build(
        layout.root,
        [
            file("real/app.conf", b"conf"),
            symlink("current", "real"),
            symlink("x/c", "../real/app.conf"),
        ],
    )
    unpack_bundle(bundle, kind, layout.dest)
    assert os.readlink(layout.dest / "current") == "real"
    assert (layout.dest / "x/c").read_bytes() == b"conf"


@TARS
def test_hard_link_to_an_earlier_file_shares_its_inode(layout: Layout, build: Builder) -> None:
    bundle, kind = build(layout.root, [file("a/orig", b"data"), hardlink("b/copy", "a/orig")])
    unpack_bundle(bundle, kind, layout.dest)
    assert (layout.dest / "b/copy").stat().st_ino == (layout.dest / "a/orig").stat().st_ino


@TARS
def test_inner_dotdot_that_stays_inside_is_allowed(layout: Layout, build: Builder) -> None:
    bundle, kind = build(layout.root, [file("a/../b.txt", b"b"), file("./c.txt", b"c")])
    unpack_bundle(bundle, kind, layout.dest)
    assert sorted(os.listdir(layout.dest)) == ["b.txt", "c.txt"]


@TARS
def test_later_entry_for_the_same_path_wins(layout: Layout, build: Builder) -> None:
    bundle, kind = build(layout.root, [file("f", b"old"), symlink("f", "g"), file("f", b"new")])
    unpack_bundle(bundle, kind, layout.dest)
    assert (layout.dest / "f").read_bytes() == b"new"
    assert not (layout.dest / "f").is_symlink()


def test_read_only_directories_get_their_mode_after_their_children(layout: Layout) -> None:
    bundle, _ = _tar(layout.root, [directory("ro", 0o555), file("ro/inside", b"i")])
    unpack_bundle(bundle, "tar", layout.dest)
    assert stat.S_IMODE((layout.dest / "ro").stat().st_mode) == 0o555
    unpack_bundle(bundle, "tar", layout.dest)  # and the next unpack can still remove it
    assert (layout.dest / "ro/inside").read_bytes() == b"i"


def test_bundle_type_is_case_insensitive(layout: Layout) -> None:
    bundle, _ = _zip(layout.root, [file("appspec.yml")])
    unpack_bundle(bundle, "ZIP", layout.dest)
    assert (layout.dest / "appspec.yml").exists()


def test_unknown_bundle_type_uses_the_official_message(layout: Layout) -> None:
    bundle, _ = _tgz(layout.root, [file("appspec.yml")])
    with pytest.raises(
        BundleError,
        match=r"^type tar\.gz is not a valid type\. Must be one of tgz,tar,zip,directory$",
    ):
        unpack_bundle(bundle, "tar.gz", layout.dest)


def test_dest_is_replaced_on_re_extract(layout: Layout) -> None:
    first, _ = _tar(layout.root, [file("old.txt"), file("appspec.yml", b"1")])
    unpack_bundle(first, "tar", layout.dest)
    second, _ = _zip(layout.root, [file("appspec.yml", b"2")])
    unpack_bundle(second, "zip", layout.dest)
    assert sorted(os.listdir(layout.dest)) == ["appspec.yml"]
    assert (layout.dest / "appspec.yml").read_bytes() == b"2"
    assert os.listdir(layout.work) == ["deployment-archive"]


def test_bundle_inside_dest_is_refused(layout: Layout) -> None:
    layout.dest.mkdir()
    bundle, _ = _tar(layout.dest, [file("appspec.yml")])
    with pytest.raises(BundleError, match="overlap"):
        unpack_bundle(bundle, "tar", layout.dest)
    assert bundle.exists()


# --- leading-directory strip (agent-behaviour §1.6) -----------------------------------------


@ALL
def test_single_top_directory_with_an_appspec_is_stripped(layout: Layout, build: Builder) -> None:
    bundle, kind = build(
        layout.root,
        [directory("pkg", 0o750), file("pkg/AppSpec.yml"), file("pkg/scripts/run.sh", mode=0o755)],
    )
    unpack_bundle(bundle, kind, layout.dest)
    assert sorted(os.listdir(layout.dest)) == ["AppSpec.yml", "scripts"]
    assert stat.S_IMODE((layout.dest / "scripts/run.sh").stat().st_mode) == 0o755
    assert os.listdir(layout.work) == ["deployment-archive"]


@pytest.mark.parametrize(
    "entries",
    [
        [file("pkg/appspec.yml"), file("README")],  # two entries at the root
        [file("pkg/app.py"), file("pkg/sub/appspec.yml")],  # appspec not in the top listing
        [file("appspec.yml")],  # one entry, but a file
    ],
    ids=["two-entries", "no-appspec-at-top", "single-file"],
)
def test_no_strip_otherwise(layout: Layout, entries: list[Entry]) -> None:
    bundle, _ = _tar(layout.root, entries)
    unpack_bundle(bundle, "tar", layout.dest)
    top = sorted({e.name.split("/")[0] for e in entries})
    assert sorted(os.listdir(layout.dest)) == top


def test_strip_refuses_a_link_that_only_stayed_inside_through_the_stripped_root(
    layout: Layout,
) -> None:
    # "pkg/up -> .." points at the archive root, which is fine until pkg becomes dest.
    bundle, _ = _tar(layout.root, [file("pkg/appspec.yml"), symlink("pkg/up", "..")])
    refused(layout, bundle, "tar", r"'pkg/up' is a symbolic link to '\.\.', which resolves outside")


# --- hostile bundles ------------------------------------------------------------------------


@ALL
def test_absolute_path_is_refused(layout: Layout, build: Builder) -> None:
    evil = layout.root / "evil"
    bundle, kind = build(layout.root, [file("ok"), file(str(evil))])
    refused(layout, bundle, kind, r"entry '/.*/evil' is an absolute path")
    assert not evil.exists()


@ALL
@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "a/b/../../../evil"])
def test_dotdot_escape_is_refused(layout: Layout, build: Builder, name: str) -> None:
    bundle, kind = build(layout.root, [file("appspec.yml"), file(name)])
    refused(layout, bundle, kind, rf"entry '{name}' escapes the target directory through '\.\.'")


@ALL
def test_symlink_to_etc_passwd_is_refused(layout: Layout, build: Builder) -> None:
    bundle, kind = build(layout.root, [symlink("passwd", "/etc/passwd")])
    refused(layout, bundle, kind, r"'passwd' is a symbolic link to '/etc/passwd'; absolute")


@ALL
def test_relative_symlink_out_of_dest_is_refused(layout: Layout, build: Builder) -> None:
    bundle, kind = build(layout.root, [symlink("a/out", "../../x")])
    refused(
        layout, bundle, kind, r"'a/out' is a symbolic link to '\.\./\.\./x', which points outside"
    )


@ALL
def test_file_through_a_link_to_a_directory_is_refused(layout: Layout, build: Builder) -> None:
    # Even a link that stays inside may not be written through: "d/passwd" must not land in sub/.
    bundle, kind = build(layout.root, [directory("sub"), symlink("d", "sub"), file("d/passwd")])
    refused(layout, bundle, kind, r"'d/passwd' goes through the symbolic link 'd'")


@ALL
def test_link_through_an_inner_link_that_climbs_out_is_refused(
    layout: Layout, build: Builder
) -> None:
    # sub/up -> .. is the root (fine); x -> sub/up/.. is lexically "sub" but really the parent.
    bundle, kind = build(
        layout.root, [directory("sub"), symlink("sub/up", ".."), symlink("x", "sub/up/..")]
    )
    refused(layout, bundle, kind, r"'x' is a symbolic link to 'sub/up/\.\.', which points outside")


@ALL
def test_link_chain_made_escaping_by_a_later_link_is_refused(
    layout: Layout, build: Builder
) -> None:
    # When "a" is made, b does not exist and a -> b/../x is the root's x; then b -> "." turns it
    # into ./../x. Only the check on the finished tree sees it.
    bundle, kind = build(layout.root, [symlink("a", "b/../x"), symlink("b", ".")])
    refused(layout, bundle, kind, r"'a' is a symbolic link to 'b/\.\./x', which resolves outside")


@TARS
@pytest.mark.parametrize(
    ("target", "rule"),
    [
        ("../outside", "is outside the target directory"),
        ("/etc/passwd", "absolute targets are refused"),
        ("missing", "not a regular file earlier in the bundle"),
        ("d", "not a regular file earlier in the bundle"),
        ("ln", "not a regular file earlier in the bundle"),
    ],
)
def test_hard_link_out_or_to_a_non_file_is_refused(
    layout: Layout, build: Builder, target: str, rule: str
) -> None:
    outside = layout.root / "outside"
    outside.write_bytes(b"secret")
    bundle, kind = build(layout.root, [directory("d"), symlink("ln", "d"), hardlink("h", target)])
    with pytest.raises(UnsafeArchiveError, match=f"'h' is a hard link to '{target}'.*{rule}"):
        unpack_bundle(bundle, kind, layout.dest)
    layout.assert_clean_failure(bundle, outside)
    assert outside.stat().st_nlink == 1


@TARS
@pytest.mark.parametrize(
    ("kind_", "what"),
    [("chr", "a character device"), ("blk", "a block device"), ("fifo", "a FIFO")],
)
def test_tar_special_files_are_refused(
    layout: Layout, build: Builder, kind_: str, what: str
) -> None:
    bundle, kind = build(layout.root, [file("appspec.yml"), special("dev/thing", kind_)])
    refused(layout, bundle, kind, rf"'dev/thing' is {what}; device, FIFO and special")


def test_zip_fifo_mode_is_refused(layout: Layout) -> None:
    bundle = write_zip(layout.root / "b.zip", [special("pipe", "fifo")])
    refused(layout, bundle, "zip", r"'pipe' is a FIFO")


@ALL
def test_too_many_entries_are_refused(layout: Layout, build: Builder) -> None:
    bundle, kind = build(layout.root, [file(f"f{i}") for i in range(5)])
    refused(
        layout,
        bundle,
        kind,
        r"over the limit of 3 entries \(ExtractLimits\.max_entries\)",
        limits=ExtractLimits(max_entries=3),
    )


@ALL
def test_total_size_over_the_limit_is_refused(layout: Layout, build: Builder) -> None:
    bundle, kind = build(layout.root, [file("a", b"x" * 600), file("b", b"y" * 600)])
    refused(
        layout,
        bundle,
        kind,
        r"over the limit of 1000 bytes \(ExtractLimits\.max_total_bytes\)",
        limits=ExtractLimits(max_total_bytes=1000),
    )


def test_zip_bomb_ratio_is_refused_and_the_check_can_be_turned_off(layout: Layout) -> None:
    bundle, _ = _zip(layout.root, [file("zeros", bytes(2 * 1024 * 1024))])
    refused(
        layout,
        bundle,
        "zip",
        r"'zeros' expands to \d+ bytes from \d+ bytes of the archive.*zip bomb",
        limits=ExtractLimits(max_compression_ratio=100),
    )
    unpack_bundle(bundle, "zip", layout.dest, limits=ExtractLimits(max_compression_ratio=None))
    assert (layout.dest / "zeros").stat().st_size == 2 * 1024 * 1024


def test_gzip_bomb_ratio_is_refused_while_streaming(layout: Layout) -> None:
    bundle, _ = _tgz(layout.root, [file("zeros", bytes(3 * 1024 * 1024))])
    refused(
        layout,
        bundle,
        "tgz",
        r"'zeros' expands to \d+ bytes from \d+ bytes of the archive",
        limits=ExtractLimits(max_compression_ratio=100),
    )


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar to write a sparse member")
@pytest.mark.parametrize("tar_format", ["gnu", "pax"])
def test_a_sparse_tar_member_is_held_to_the_ratio_check(layout: Layout, tar_format: str) -> None:
    # 10 KiB of tar that would write 256 MiB of holes: the bytes read from the archive per
    # entry are counted for a plain tar too, so it stops after about 10 MiB.
    source = layout.root / "src"
    source.mkdir()
    (source / "appspec.yml").write_text("version: 0.0\nos: linux\n")
    with open(source / "holes", "wb") as handle:
        handle.truncate(256 * 1024 * 1024)
    bundle = layout.root / "sparse.tar"
    subprocess.run(
        ["tar", "--sparse", f"--format={tar_format}", "-cf", str(bundle), "-C", str(source),
         "appspec.yml", "holes"],
        check=True,
    )  # fmt: skip
    assert bundle.stat().st_size < 64 * 1024
    shutil.rmtree(source)
    refused(layout, bundle, "tar", r"'holes' expands to \d+ bytes from \d+ bytes of the archive")


def test_a_plain_tar_entry_over_a_mib_passes_the_ratio_check(layout: Layout) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    bundle, _ = _tar(layout.root, [file("appspec.yml"), file("big.bin", payload)])
    unpack_bundle(bundle, "tar", layout.dest, limits=ExtractLimits(max_compression_ratio=2))
    assert (layout.dest / "big.bin").read_bytes() == payload


def test_a_tgz_with_a_wrong_gzip_crc_is_refused(layout: Layout) -> None:
    # Reading stops at the tar end marker; the CRC is in the gzip trailer after it.
    bundle, _ = _tgz(layout.root, [file("appspec.yml"), file("app.txt", b"hello")])
    data = bytearray(bundle.read_bytes())
    data[-8] ^= 0xFF  # the CRC32 of the gzip trailer
    bundle.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="corrupt.*CRC check failed"):
        unpack_bundle(bundle, "tgz", layout.dest)
    layout.assert_clean_failure(bundle)


def test_a_tgz_with_a_wrong_gzip_length_is_refused(layout: Layout) -> None:
    bundle, _ = _tgz(layout.root, [file("appspec.yml")])
    data = bytearray(bundle.read_bytes())
    data[-1] ^= 0x01  # ISIZE, the length modulo 2**32
    bundle.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="corrupt"):
        unpack_bundle(bundle, "tgz", layout.dest)
    layout.assert_clean_failure(bundle)


def test_bytes_after_the_tar_end_of_a_tgz_count_against_the_size_limit(layout: Layout) -> None:
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as tar:
        info = tarfile.TarInfo("appspec.yml")
        tar.addfile(info, io.BytesIO(b""))
    bundle = layout.root / "trail.tgz"
    bundle.write_bytes(gzip.compress(inner.getvalue() + bytes(4 * 1024 * 1024)))
    with pytest.raises(UnsafeArchiveError, match="bytes after the end of its tar archive"):
        unpack_bundle(bundle, "tgz", layout.dest, limits=ExtractLimits(max_total_bytes=1 << 20))
    layout.assert_clean_failure(bundle)


def test_small_compressible_entries_skip_the_ratio_check(layout: Layout) -> None:
    bundle, _ = _zip(layout.root, [file("zeros", bytes(512 * 1024))])
    unpack_bundle(bundle, "zip", layout.dest, limits=ExtractLimits(max_compression_ratio=2))
    assert (layout.dest / "zeros").stat().st_size == 512 * 1024


def test_failed_extraction_removes_the_previous_dest_and_its_temp_dir(layout: Layout) -> None:
    good, _ = _tar(layout.root, [file("appspec.yml")])
    unpack_bundle(good, "tar", layout.dest)
    bad, _ = _zip(layout.root, [file("appspec.yml"), file("ok/file"), file("../evil")])
    with pytest.raises(UnsafeArchiveError):
        unpack_bundle(bad, "zip", layout.dest)
    layout.assert_clean_failure(good, bad)


# --- declared type vs content, corrupt archives ---------------------------------------------


@pytest.mark.parametrize(
    ("build", "declared", "match"),
    [
        (
            _zip,
            "tgz",
            r"is not a gzip-compressed tar archive \(declared type tgz\); it looks like a zip",
        ),
        (_zip, "tar", r"is not a tar archive \(declared type tar\); it looks like a zip archive"),
        (
            _tgz,
            "tar",
            r"is not a tar archive \(declared type tar\); it looks like a gzip-compressed file",
        ),
        (
            _tgz,
            "zip",
            r"is not a zip archive \(declared type zip\); it looks like a gzip-compressed file",
        ),
        (_tar, "zip", r"is not a zip archive \(declared type zip\); it looks like a tar archive"),
        (
            _tar,
            "tgz",
            r"is not a gzip-compressed tar archive \(declared type tgz\); it looks like a tar",
        ),
    ],
)
def test_type_mismatch_is_a_clear_error(
    layout: Layout, build: Builder, declared: str, match: str
) -> None:
    bundle, _ = build(layout.root, [file("appspec.yml")])
    with pytest.raises(BundleError, match=match) as caught:
        unpack_bundle(bundle, declared, layout.dest)
    assert not isinstance(caught.value, UnsafeArchiveError)
    layout.assert_clean_failure(bundle)


def test_gzip_that_is_not_a_tar_is_a_clear_error(layout: Layout) -> None:
    bundle = layout.root / "b.tgz"
    bundle.write_bytes(gzip.compress(b"just text, no tar headers here" * 40))
    with pytest.raises(BundleError, match=r"is not a gzip-compressed tar archive or is corrupt"):
        unpack_bundle(bundle, "tgz", layout.dest)
    layout.assert_clean_failure(bundle)


@pytest.mark.parametrize("kind", ["tar", "tgz", "zip"])
def test_truncated_archive_is_a_bundle_error(layout: Layout, kind: str) -> None:
    payload = os.urandom(256 * 1024)  # incompressible, so the cut lands inside the member data
    build = {"tar": _tar, "tgz": _tgz, "zip": _zip}[kind]
    bundle, _ = build(layout.root, [file("appspec.yml"), file("big.bin", payload)])
    data = bundle.read_bytes()
    bundle.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=rf"bundle {bundle}"):
        unpack_bundle(bundle, kind, layout.dest)
    layout.assert_clean_failure(bundle)


def test_zip_with_a_bad_crc_is_a_bundle_error(layout: Layout) -> None:
    bundle = layout.root / "b.zip"
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("appspec.yml", b"A" * 100)
    data = bundle.read_bytes().replace(b"A" * 100, b"B" * 100)
    bundle.write_bytes(data)
    with pytest.raises(BundleError, match="corrupt"):
        unpack_bundle(bundle, "zip", layout.dest)
    layout.assert_clean_failure(bundle)


def test_empty_file_is_not_an_archive(layout: Layout) -> None:
    bundle = layout.root / "b.tar"
    bundle.touch()
    with pytest.raises(BundleError, match="it looks like an empty file"):
        unpack_bundle(bundle, "tar", layout.dest)


def test_missing_bundle_is_a_bundle_error(layout: Layout) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        unpack_bundle(layout.root / "nope.zip", "zip", layout.dest)


# --- directory bundles ----------------------------------------------------------------------


def _source_tree(root: Path) -> Path:
    src = root / "src"
    (src / "scripts").mkdir(parents=True)
    (src / "appspec.yml").write_text("version: 0.0\n")
    (src / "scripts/start.sh").write_text("#!/bin/sh\n")
    (src / "scripts/start.sh").chmod(0o755)
    os.symlink("scripts/start.sh", src / "start")
    return src


def test_directory_bundle_is_copied_with_links_and_modes(layout: Layout) -> None:
    src = _source_tree(layout.root)
    unpack_bundle(src, "directory", layout.dest)
    assert (layout.dest / "appspec.yml").read_text() == "version: 0.0\n"
    assert stat.S_IMODE((layout.dest / "scripts/start.sh").stat().st_mode) == 0o755
    assert os.readlink(layout.dest / "start") == "scripts/start.sh"
    assert (src / "appspec.yml").exists(), "the source directory is left alone"


def test_directory_bundle_given_as_a_link_is_followed_once(layout: Layout) -> None:
    src = _source_tree(layout.root)
    link = layout.root / "bundle.tar"  # what LocalFileSource.fetch makes for a directory
    os.symlink(src, link)
    unpack_bundle(link, "directory", layout.dest)
    assert (layout.dest / "appspec.yml").exists()


def test_directory_bundle_with_an_outward_link_is_refused(layout: Layout) -> None:
    src = _source_tree(layout.root)
    os.symlink("../../etc", src / "scripts" / "etc")
    with pytest.raises(
        UnsafeArchiveError, match=r"'scripts/etc' is a symbolic link to '\.\./\.\./etc'"
    ):
        unpack_bundle(src, "directory", layout.dest)
    assert os.listdir(layout.work) == []


def test_directory_bundle_with_a_fifo_is_refused(layout: Layout) -> None:
    src = _source_tree(layout.root)
    os.mkfifo(src / "pipe")
    with pytest.raises(UnsafeArchiveError, match=r"'pipe' is a FIFO"):
        unpack_bundle(src, "directory", layout.dest)
    assert os.listdir(layout.work) == []


def test_directory_bundle_is_not_stripped(layout: Layout) -> None:
    src = layout.root / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg/appspec.yml").touch()
    unpack_bundle(src, "directory", layout.dest)
    assert os.listdir(layout.dest) == ["pkg"]


def test_directory_cannot_be_copied_into_itself(layout: Layout) -> None:
    src = _source_tree(layout.root)
    with pytest.raises(BundleError, match="overlap"):
        unpack_bundle(src, "directory", src / "inner")


def test_directory_bundle_that_is_a_file_is_refused(layout: Layout) -> None:
    bundle, _ = _tar(layout.root, [file("appspec.yml")])
    with pytest.raises(BundleError, match="declared as a directory but it is not one"):
        unpack_bundle(bundle, "directory", layout.dest)


# --- misc -----------------------------------------------------------------------------------


def test_sha256_file_streams_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        ExtractLimits(max_entries=-1)
    with pytest.raises(ValueError, match="max_compression_ratio"):
        ExtractLimits(max_compression_ratio=0.5)


def test_limits_defaults_are_visible() -> None:
    limits = ExtractLimits()
    assert (limits.max_total_bytes, limits.max_entries, limits.max_compression_ratio) == (
        4 * 1024**3,
        100_000,
        1000.0,
    )


def test_public_names_are_exact() -> None:
    # Submodules appear in the package's namespace once anything imports them: not exports.
    exported = {
        name
        for name, value in vars(opendeploy.revisions).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    } - {"annotations"}
    assert sorted(opendeploy.revisions.__all__) == sorted(exported)


@pytest.mark.parametrize("kind", ["tar", "tgz"])
def test_tar_member_data_is_never_read_whole(layout: Layout, kind: str) -> None:
    # A 24 MiB member goes through in 1 MiB chunks: the peak of Python allocations while
    # unpacking (about 4.3 MB here, whatever the member's size) stays a fraction of the member,
    # and the content survives intact.
    size = 24 * 1024 * 1024 + 5
    source = layout.root / "big.src"
    with source.open("wb") as out:
        for _ in range(24):
            out.write(os.urandom(1024 * 1024))
        out.write(b"tail!")
    bundle = layout.root / f"b.{kind}"
    if kind == "tgz":
        with tarfile.open(bundle, "w:gz", compresslevel=1) as tar:
            tar.add(source, "big")
    else:
        with tarfile.open(bundle, "w") as tar:
            tar.add(source, "big")

    tracemalloc.start()
    try:
        unpack_bundle(bundle, kind, layout.dest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (layout.dest / "big").stat().st_size == size
    assert sha256_file(layout.dest / "big") == sha256_file(source)
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB member"


def test_a_tree_nested_deeper_than_python_recurses_unpacks_and_is_removed(
    layout: Layout,
) -> None:
    # A revision nested deeper than shutil.rmtree and os.walk can recurse (they need a frame
    # per level: 1,100 levels, within PATH_MAX, break them at Python's default limit) could be
    # unpacked but never removed. The recursion limit is lowered to keep the tree small.
    deep = "d/" * 300 + "leaf.txt"
    bundle, _ = _tar(layout.root, [file("appspec.yml"), file(deep, b"deep")])
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 150)
    try:
        unpack_bundle(bundle, "tar", layout.dest)
        assert (layout.dest / deep).read_bytes() == b"deep"
        unpack_bundle(bundle, "tar", layout.dest)  # removes the previous unpack first
        remove_tree(layout.dest)
    finally:
        sys.setrecursionlimit(limit)
    assert not layout.dest.exists()


def test_remove_tree_removes_links_without_following_them(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "link").symlink_to(outside)
    (tree / "a" / "file").write_text("x")
    (tree / "ro").mkdir()
    (tree / "ro" / "f").write_text("x")
    (tree / "ro").chmod(0o555)
    remove_tree(tree)
    assert not tree.exists()
    assert (outside / "keep").read_text() == "keep"
