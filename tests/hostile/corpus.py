"""The hostile corpus: bundles and appspecs that must each fail with a clear error, harmlessly.

Generated from the tables below: every archive case is tried in each bundle type that can hold
it (zip, tar, tgz, directory), every appspec case in a directory, a zip and a tgz bundle. A case
gives the entries of its bundle (see ``bundles.py``; the appspec is an entry too), the regular
expression its error message must match (what names the problem), and optionally agent settings,
a damage to the archive, or a setup run before it (another deployment group's deployment).

Paths in entries and expectations use placeholders filled per test: ``{dest}`` (the destination),
``{canary}`` (a directory beside it that nothing may touch), ``{root}`` (the agent's deployment
root), ``{instructions}``, ``{group}`` (the deployment group id) and ``{up}`` (from the unpacked
archive up to the test's directory).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.hostile.bundles import Entry, representable

OK_SCRIPT = b"#!/bin/sh\necho ok\n"
BASE_APPSPEC = """version: 0.0
os: linux
files:
  - source: app
    destination: {dest}
hooks:
  AfterInstall:
    - location: scripts/ok.sh
      timeout: 30
"""
HEAD = "version: 0.0\nos: linux\n"
FILES = "files:\n  - source: app\n    destination: {dest}\n"


def base_entries(appspec: bytes | str = BASE_APPSPEC) -> list[Entry]:
    """A good bundle: an appspec, one content file, one script."""
    data = appspec.encode("utf-8", "surrogatepass") if isinstance(appspec, str) else appspec
    return [
        ("file", "appspec.yml", data),
        ("file", "app/index.html", b"<p>hello</p>\n"),
        ("file", "scripts/ok.sh", OK_SCRIPT, 0o755),
    ]


@dataclass(frozen=True)
class Case:
    """One hostile bundle: how to build it and what its error must say."""

    name: str
    kind: str  # zip, tar, tgz or directory
    entries: tuple[Entry, ...]
    expect: str  # a regular expression the error message must match
    damage: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    setup: str | None = None  # "group-a-link": another group first leaves a link in {dest}
    sparse: bool = False

    @property
    def id(self) -> str:
        return f"{self.name}-{self.kind}"


# -- archives: the unpack refuses them -------------------------------------------------------------

ARCHIVE_TYPES = ("zip", "tar", "tgz", "directory")
_A = base_entries()

#: (name, extra entries, expected message)
ARCHIVE_ENTRIES: list[tuple[str, list[Entry], str]] = [
    ("absolute-file", [("file", "{canary}/pwned", b"x")], r"is an absolute path"),
    ("absolute-dir", [("dir", "{canary}/pwned-dir")], r"is an absolute path"),
    ("dotdot-file", [("file", "{up}/canary/pwned", b"x")], r"escapes the target directory"),
    ("dotdot-dir", [("dir", "{up}/canary/pwned-dir")], r"escapes the target directory"),
    ("inner-dotdot", [("file", "app/../../canary/pwned", b"x")], r"escapes the target"),
    ("deep-dotdot", [("file", "a/b/../../../{up}/canary/p", b"x")], r"escapes the target"),
    ("dotdot-only", [("file", "..", b"x")], r"escapes the target directory"),
    ("backslash-dotdot", [("file", "..\\..\\..\\..\\canary\\pwned", b"x")], r"escapes the"),
    ("symlink-absolute", [("symlink", "app/l", "{canary}")], r"absolute link targets"),
    ("symlink-etc", [("symlink", "app/passwd", "/etc/passwd")], r"absolute link targets"),
    ("symlink-out", [("symlink", "app/l", "../../canary")], r"points outside the target"),
    ("symlink-far-out", [("symlink", "l", "{up}/canary")], r"points outside the target"),
    (
        "write-through-symlink",
        [("symlink", "app/l", "."), ("file", "app/l/x", b"x")],
        r"goes through the symbolic link 'app/l'",
    ),
    (
        "write-through-link-chain",
        [("symlink", "app/l", "sub"), ("dir", "app/sub"), ("file", "app/l/x", b"x")],
        r"goes through the symbolic link",
    ),
    ("symlink-empty-target", [("symlink", "app/l", "")], r"empty target"),
    ("hardlink-absolute", [("hardlink", "app/h", "{canary}/keep.txt")], r"absolute targets"),
    ("hardlink-out", [("hardlink", "app/h", "{up}/canary/keep.txt")], r"outside the target"),
    ("hardlink-missing", [("hardlink", "app/h", "nope")], r"not a regular file earlier"),
    (
        "hardlink-to-symlink",
        [("symlink", "app/l", "index.html"), ("hardlink", "app/h", "app/l")],
        r"not a regular file earlier",
    ),
    ("fifo", [("fifo", "app/pipe")], r"FIFO"),
    ("char-device", [("chr", "app/null")], r"character device"),
    ("block-device", [("blk", "app/disk")], r"block device"),
    ("appspec-fifo", [("fifo", "x/appspec.yml")], r"FIFO"),
    (
        "newline-in-name",
        [("file", "app/a\nb", b"x")],
        r"files\[0\]: .*/dest/a\\nb' contains a newline",
    ),
    ("name-too-long", [("file", "app/" + "n" * 300, b"x")], r"File name too long"),
    ("path-too-long", [("file", "app/" + ("n" * 250 + "/") * 17 + "x", b"x")], r"File name too"),
    (
        "dir-then-file",
        [("dir", "app/d"), ("file", "app/d", b"x")],
        r"would replace the directory 'app/d'",
    ),
    (
        "file-as-parent",
        [("file", "app/f", b"x"), ("file", "app/f/x", b"y")],
        r"needs 'app/f' to be a directory, but it is a file",
    ),
]

#: (name, damage, expected message) for bundles broken as a whole
ARCHIVE_DAMAGE: list[tuple[str, str, str]] = [
    ("truncated", "truncate", r"corrupt|cannot be read|not a (zip|tar)|unexpected end"),
    ("garbage", "garbage", r"is not a|it looks like"),
    ("empty-file", "empty", r"looks like an empty file|is not a"),
]


def archive_cases() -> Iterator[Case]:
    for name, extra, expect in ARCHIVE_ENTRIES:
        for kind in ARCHIVE_TYPES:
            entries = (*_A, *extra)
            if not representable(kind, entries):
                continue
            if name == "backslash-dotdot" and kind != "zip":
                continue
            if kind == "directory" and name.startswith(
                ("write-through", "dir-then", "file-as", "name-too", "path-too")
            ):
                continue  # a directory holds one thing per name, follows links, and has limits
            if name == "symlink-empty-target" and kind == "directory":
                continue  # a file system holds no link with an empty target
            if name == "appspec-fifo" and kind == "zip":
                continue  # the zip refuses it as well, see "fifo"
            yield Case(name, kind, entries, expect)
    # A member big enough that cutting the archive in half cuts into it.
    payload = ("file", "app/payload.bin", random.Random(24).randbytes(64 * 1024))
    for name, damage, expect in ARCHIVE_DAMAGE:
        for kind in ("zip", "tar", "tgz"):
            if damage == "garbage" and kind == "tar":
                continue  # random bytes are "unrecognised content" for tar: see below
            yield Case(name, kind, (*_A, payload), expect, damage=damage)
    yield Case("garbage", "tar", tuple(_A), r"is not a tar archive|corrupt", damage="garbage")
    yield Case("bad-crc", "zip", tuple(_A), r"corrupt|cannot be read|CRC", damage="crc")
    yield Case("bad-crc", "tgz", tuple(_A), r"corrupt.*CRC check failed", damage="crc")
    yield Case(
        "gzip-of-garbage",
        "tgz",
        tuple(_A),
        r"not a gzip-compressed tar archive|corrupt",
        damage="gzip-of-garbage",
    )
    # Declared type and content disagree.
    for declared, actual in (("zip", "tgz"), ("tgz", "zip"), ("tar", "zip"), ("tgz", "tar")):
        yield Case(
            f"is-{actual}",
            declared,
            tuple(_A),
            r"is not a .* it looks like",
            config={"write_as": actual},
        )
    # Limits, named with the agent configuration key that raises them.
    many = tuple(("file", f"app/many/{n:03d}", b"x") for n in range(80))
    for kind in ("zip", "tar", "tgz", "directory"):
        yield Case(
            "too-many-entries",
            kind,
            (*_A, *many),
            r"over the limit of 50 entries \(bundle_max_entries in the agent configuration",
            config={"bundle_max_entries": 50},
        )
        yield Case(
            "too-large",
            kind,
            (*_A, ("file", "app/big.bin", bytes(3 << 20))),
            r"over the limit of 1048576 bytes \(bundle_max_total_bytes",
            config={"bundle_max_total_bytes": 1 << 20},
        )
    for kind in ("zip", "tgz"):
        yield Case(
            "compression-bomb",
            kind,
            (*_A, ("file", "app/zeros", bytes(48 << 20))),
            r"'app/zeros' expands to \d+ bytes from \d+ bytes of the archive",
        )
    yield Case(
        "sparse-bomb", "tar", (), r"'holes' expands to \d+ bytes from \d+ bytes", sparse=True
    )
    # No appspec where one is needed.
    no_appspec = tuple(e for e in _A if e[1] != "appspec.yml")
    for kind in ("zip", "tar", "tgz"):
        yield Case("no-appspec", kind, no_appspec, r"no AppSpec file at the top of the revision")
        yield Case(
            "appspec-is-a-directory",
            kind,
            (*no_appspec, ("dir", "appspec.yml")),
            r"no AppSpec file at the top of the revision",
        )
        yield Case(
            "appspec-link-out",
            kind,
            (*no_appspec, ("symlink", "appspec.yml", "{canary}/keep.txt")),
            r"absolute link targets",
        )
    yield Case("no-appspec", "directory", no_appspec, r"Expecting appspec file at location")


# -- appspecs: parse, Install or the hook refuses them ---------------------------------------------

APPSPEC_TYPES = ("directory", "zip", "tgz")

HOOK = "hooks:\n  AfterInstall:\n"

#: (name, appspec text (placeholders allowed), expected message[, extra entries])
APPSPECS: list[tuple[Any, ...]] = [
    # characters YAML forbids
    ("nul-in-value", HEAD + FILES + "x: a\0b\n", r"line 6, column 5: the character U\+0000"),
    ("nul-in-key", HEAD + FILES + "a\0: 1\n", r"the character U\+0000"),
    ("nul-in-comment", HEAD + "# \0\n" + FILES, r"line 3, column 3: the character U\+0000"),
    ("control-01", HEAD + FILES + "x: \x01\n", r"the character U\+0001"),
    ("control-bell", HEAD + FILES + "x: \x07\n", r"the character U\+0007"),
    ("control-escape", HEAD + FILES + "x: \x1b[31m\n", r"the character U\+001B"),
    ("control-del", HEAD + FILES + "x: \x7f\n", r"the character U\+007F"),
    ("control-c1", HEAD + FILES + "x: \x9f\n", r"the character U\+009F"),
    ("noncharacter", HEAD + FILES + "x: \ufffe\n", r"the character U\+FFFE"),
    ("lone-surrogate", HEAD.encode() + b"x: \xed\xa0\x80\n", r"is not UTF-8 text"),
    # numbers Python refuses to convert
    (
        "bigint-timeout",
        HEAD + HOOK + "    - location: scripts/ok.sh\n      timeout: " + "9" * 10_000 + "\n",
        r"has 10000 digits",
    ),
    (
        "bigint-mode",
        HEAD + FILES + "permissions:\n  - object: {dest}\n    mode: " + "7" * 5000 + "\n",
        r"has 5000 digits",
    ),
    ("bigint-version", "version: " + "1" * 4400 + "\nos: linux\n", r"has 4400 digits"),
    ("bigint-key", HEAD + "? " + "1" * 6000 + "\n: x\n", r"has 6000 digits"),
    ("bigint-negative", HEAD + "x: -" + "1" * 5000 + "\n", r"has 5001 digits"),
    # nesting deeper than the loaders' recursion
    ("deep-flow-list", HEAD + "x: " + "[" * 5000 + "]" * 5000 + "\n", r"nested more than 64"),
    ("deep-flow-map", HEAD + "x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", r"nested more"),
    (
        "deep-block",
        HEAD + "x:\n" + "".join(" " * i + "- \n" for i in range(0, 600, 2)),
        r"nested more than 64",
    ),
    ("deep-unclosed", HEAD + "x: " + "[" * 3000 + "\n", r"nested more than 64"),
    ("deep-in-files", HEAD + "files: " + "[" * 1200 + "]" * 1200 + "\n", r"nested more"),
    ("deep-in-hooks", HEAD + "hooks: " + "{a: " * 1500 + "1" + "}" * 1500 + "\n", r"nested"),
    # size
    # (random text: a compressible one is stopped earlier, by the archive's ratio check)
    (
        "oversized-comment",
        HEAD + "# " + random.Random(7).randbytes(800 * 1024).hex() + "\n",
        r"over the limit of 1048576 bytes",
    ),
    (
        "oversized-files",
        HEAD
        + "files:\n"
        + "".join(
            f"  - source: app\n    destination: /x/{n}\n"
            for n in random.Random(8).sample(range(10**9), 40_000)
        ),
        r"over the limit of 1048576 bytes",
    ),
    # encodings and emptiness
    ("latin-1", HEAD.encode() + b"x: caf\xe9\n", r"is not UTF-8 text \(byte \d+\)"),
    ("utf-16", "version: 0.0\nos: linux\n".encode("utf-16"), r"is not UTF-8 text"),
    ("empty", "", r"the file is empty; it must define version and os"),
    ("only-comments", "# nothing\n# here\n", r"the file is empty"),
    ("only-whitespace", "   \n\n  \n", r"the file is empty"),
    ("top-level-list", "- version: 0.0\n", r"the top level is a list"),
    ("top-level-string", "hello\n", r"the top level is a string"),
    ("top-level-int", "42\n", r"the top level is a int"),
    # YAML features and syntax
    ("alias", HEAD + "a: &x 1\nb: *x\n", r"YAML alias \*x is not allowed"),
    (
        "billion-laughs",
        HEAD + 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nd: [*c,*c]\n',
        r"YAML alias \*a is not allowed",
    ),
    ("tab-indent", HEAD + "files:\n\t- source: app\n", r"invalid YAML at line 4"),
    ("unclosed-quote", HEAD + 'x: "abc\n', r"invalid YAML"),
    ("bad-indent", HEAD + "files:\n  - source: a\n   destination: b\n", r"invalid YAML"),
    ("two-documents", HEAD + "---\nversion: 0.0\n", r"invalid YAML|expected a single document"),
    ("unknown-tag", HEAD + "x: !!python/object:os.system ls\n", r"invalid YAML.*python/object"),
    # top-level fields
    ("version-1", "version: 1\nos: linux\n", r"version: 1: must be the number 0\.0"),
    (
        "version-string",
        "version: '0.0'\nos: linux\n",
        r"version: \"0\.0\": must be the number 0\.0 \(unquoted\)",
    ),
    ("version-missing", "os: linux\n", r"version: missing: must be the number 0\.0"),
    ("os-windows", "version: 0.0\nos: windows\n", r"os: \"windows\": this host runs Linux"),
    ("os-missing", "version: 0.0\n", r"os: missing: must be linux or windows"),
    ("os-plan9", "version: 0.0\nos: plan9\n", r"os: \"plan9\": must be linux or windows"),
    (
        "file-exists-bogus",
        HEAD + "file_exists_behavior: BOGUS\n",
        r"file_exists_behavior: \"BOGUS\": must be exactly DISALLOW, OVERWRITE or RETAIN",
    ),
    # files
    ("files-string", HEAD + "files: app\n", r"files: \"app\": must be a list"),
    (
        "files-item-string",
        HEAD + "files:\n  - app\n",
        r"files\[0\]: \"app\": must be a mapping with source and destination",
    ),
    (
        "files-no-source",
        HEAD + "files:\n  - destination: {dest}\n",
        r"files\[0\]\.source: missing: every files entry needs a source",
    ),
    (
        "files-no-destination",
        HEAD + "files:\n  - source: app\n",
        r"files\[0\]\.destination: missing: every files entry needs a destination",
    ),
    (
        "source-dotdot",
        HEAD + "files:\n  - source: ../../../../canary\n    destination: {dest}\n",
        r"files\[0\]\.source: .* points outside the bundle",
    ),
    (
        "source-abs-dotdot",
        HEAD + "files:\n  - source: /../../../../canary/keep.txt\n    destination: {dest}\n",
        r"points outside the bundle",
    ),
    (
        "source-missing",
        HEAD + "files:\n  - source: nope\n    destination: {dest}\n",
        r"files\[0\]\.source: 'nope' does not exist in the bundle",
    ),
    (
        "destination-relative",
        HEAD + "files:\n  - source: app\n    destination: dest\n",
        r"destination.*absolute",
    ),
    (
        "destination-nul",
        HEAD + 'files:\n  - source: app\n    destination: "{dest}/a\\0b"\n',
        r"files\[0\]\.destination: .* contains a NUL character",
    ),
    (
        "destination-newline",
        HEAD + 'files:\n  - source: app\n    destination: "{dest}/a\\nb"\n',
        r"newline",
    ),
    (
        "destination-root",
        HEAD + "files:\n  - source: app\n    destination: {root}/x\n",
        r"files\[0\]: installing .* would write into .*root, the agent's own deployment root",
    ),
    (
        "destination-cleanup-file",
        HEAD + "files:\n  - source: {group}-cleanup\n"
        "    destination: {instructions}\nfile_exists_behavior: OVERWRITE\n",
        r"would write into .*deployment-instructions",
        [("file", "{group}-cleanup", b"{canary}/keep.txt\n")],
    ),
    (
        "destination-whole-bundle-into-root",
        HEAD + "files:\n  - source: /\n    destination: {root}\n",
        r"would write into .*root",
    ),
    (
        "through-another-groups-link",
        HEAD + "files:\n  - source: site\n    destination: {dest}\n",
        r"files\[0\]: .*/dest/data is a symbolic link \(to \.\./canary\) below the destination",
        [("file", "site/data/pwned", b"x")],
        "group-a-link",
    ),
    (
        "existing-file-disallowed",
        HEAD + "files:\n  - source: app\n    destination: {dest}\n",
        r"a specified file already exists at this location: .*/dest/index.html",
        [],
        "existing-file",
    ),
    # hooks
    (
        "hooks-list",
        HEAD + "hooks:\n  - AfterInstall\n",
        r"hooks: .*must be a mapping of lifecycle event to scripts",
    ),
    (
        "hook-string",
        HEAD + "hooks:\n  AfterInstall: scripts/ok.sh\n",
        r"hooks\.AfterInstall: \"scripts/ok\.sh\": must be a list of scripts",
    ),
    (
        "hook-item-string",
        HEAD + HOOK + "    - scripts/ok.sh\n",
        r"hooks\.AfterInstall\[0\]: \"scripts/ok\.sh\": must be a mapping with location",
    ),
    ("hook-no-location", HEAD + HOOK + "    - timeout: 5\n", r"no location value"),
    (
        "hook-empty-location",
        HEAD + HOOK + "    - location: ''\n",
        r"hooks\.AfterInstall\[0\]\.location: \"\": every script needs a location",
    ),
    (
        "hook-location-list",
        HEAD + HOOK + "    - location: [a]\n",
        r"hooks\.AfterInstall\[0\]\.location: \[\"a\"\]: must be a path string",
    ),
    (
        "hook-location-dotdot",
        HEAD + FILES + HOOK + "    - location: {up}/canary/evil.sh\n",
        r"Script location '.*canary/evil.sh' points outside the revision",
    ),
    (
        "hook-location-abs-dotdot",
        HEAD + FILES + HOOK + "    - location: /../../../../canary/evil.sh\n",
        r"points outside the revision",
    ),
    (
        "hook-location-deep-dotdot",
        HEAD + FILES + HOOK + "    - location: scripts/../../../../../canary/evil.sh\n",
        r"points outside",
    ),
    (
        "hook-location-missing",
        HEAD + FILES + HOOK + "    - location: scripts/nope.sh\n",
        r"Script does not exist at specified location: .*scripts/nope.sh",
    ),
    (
        "hook-location-directory",
        HEAD + FILES + HOOK + "    - location: scripts\n",
        r"Script at specified location: scripts failed: .*/scripts is a directory, not a script",
    ),
    (
        "hook-timeout-zero",
        HEAD + HOOK + "    - location: scripts/ok.sh\n      timeout: 0\n",
        r"invalid timeout value",
    ),
    (
        "hook-timeout-negative",
        HEAD + HOOK + "    - location: scripts/ok.sh\n      timeout: -5\n",
        r"invalid timeout value",
    ),
    (
        "hook-timeout-text",
        HEAD + HOOK + "    - location: scripts/ok.sh\n      timeout: soon\n",
        r"timeout: \"soon\": must be a whole number of seconds above 0",
    ),
    (
        "hook-timeout-infinite",
        HEAD + HOOK + "    - location: scripts/ok.sh\n      timeout: .inf\n",
        r"timeout: Infinity: must be a whole number of seconds above 0",
    ),
    (
        "hook-timeout-nan",
        HEAD + HOOK + "    - location: scripts/ok.sh\n      timeout: .nan\n",
        r"timeout: NaN: must be a whole number of seconds above 0",
    ),
    (
        "hook-timeout-huge",
        HEAD + HOOK + "    - location: scripts/ok.sh\n      timeout: " + "9" * 60 + "\n",
        r"timeout: 9{60} exceeds 3600 s for the event",
    ),
    (
        "hook-timeout-sum",
        HEAD + HOOK + "    - location: scripts/ok.sh\n      timeout: 3000\n"
        "    - location: scripts/ok.sh\n      timeout: 3000\n",
        r"brings the event.s total to 6000 s, which exceeds 3600 s",
    ),
    (
        "hook-runas-nobody-here",
        HEAD + FILES + HOOK + "    - location: scripts/ok.sh\n      runas: no-such-user-x\n",
        r"runas: user 'no-such-user-x' does not exist",
    ),
    (
        "hook-runas-list",
        HEAD + HOOK + "    - location: scripts/ok.sh\n      runas: [root]\n",
        r"hooks\.AfterInstall\[0\]\.runas: \[\"root\"\]: must be a user name",
    ),
    (
        "hook-unknown-event",
        HEAD + "hooks:\n  NoSuchEvent:\n    - location: scripts/ok.sh\n",
        r"hooks: \[\"NoSuchEvent\"\]: unknown lifecycle events for this deployment",
    ),
    (
        "hook-fails",
        HEAD + FILES + HOOK + "    - location: scripts/fail.sh\n",
        r"Script at specified location: scripts/fail.sh failed with exit code 7",
        [("file", "scripts/fail.sh", b"#!/bin/sh\necho broken >&2\nexit 7\n", 0o755)],
    ),
    (
        "hook-killed",
        HEAD + FILES + HOOK + "    - location: scripts/die.sh\n",
        r"killed by signal SIGKILL",
        [("file", "scripts/die.sh", b"#!/bin/sh\nkill -9 $$\n", 0o755)],
    ),
    (
        "hook-not-a-program",
        HEAD + FILES + HOOK + "    - location: scripts/data.bin\n",
        r"Script at specified location: scripts/data\.bin failed with exit code 127",
        [("file", "scripts/data.bin", b"\x7fELF\x02\x01\x01garbage", 0o755)],
    ),
    # NUL characters made by YAML escapes, and names no file system takes
    (
        "location-nul",
        HEAD + FILES + HOOK + '    - location: "scripts/ok.sh\\0x"\n',
        r"hooks\.AfterInstall\[0\]\.location: .* contains a NUL character",
    ),
    (
        "runas-nul",
        HEAD + FILES + HOOK + '    - location: scripts/ok.sh\n      runas: "ro\\0ot"\n',
        r"hooks\.AfterInstall\[0\]\.runas: .* contains a NUL character",
    ),
    (
        "source-nul",
        HEAD + 'files:\n  - source: "ap\\0p"\n    destination: {dest}\n',
        r"files\[0\]\.source: .* contains a NUL character",
    ),
    (
        "object-nul",
        HEAD + FILES + 'permissions:\n  - object: "{dest}/\\0"\n    mode: 644\n',
        r"permissions\[0\]\.object: .* contains a NUL character",
    ),
    (
        "owner-nul",
        HEAD + FILES + 'permissions:\n  - object: {dest}\n    owner: "ro\\0ot"\n',
        r"permissions\[0\]\.owner: .* contains a NUL character",
    ),
    ("key-nul", HEAD + FILES + '"a\\0": 1\n', r"contains a NUL character"),
    (
        "location-too-long",
        HEAD + FILES + HOOK + "    - location: " + "a" * 5000 + "\n",
        r"Script does not exist at specified location: .*/aaaa",
    ),
    (
        "destination-too-long",
        HEAD + "files:\n  - source: app\n    destination: {dest}/" + "a" * 300 + "\n",
        r"cannot create directory .*/dest/aaaa.*: File name too long",
    ),
    # values of the wrong YAML type
    (
        "destination-binary",
        HEAD + "files:\n  - source: app\n    destination: !!binary L3RtcA==\n",
        r"files\[0\]\.destination: .* must be a non-empty path string",
    ),
    (
        "destination-set",
        HEAD + "files:\n  - source: app\n    destination: !!set {a, b}\n",
        r"files\[0\]\.destination: .* must be a non-empty path string",
    ),
    (
        "destination-int",
        HEAD + "files:\n  - source: app\n    destination: 5\n",
        r"files\[0\]\.destination: 5: must be a non-empty path string",
    ),
    (
        "source-int",
        HEAD + "files:\n  - source: 5\n    destination: {dest}\n",
        r"files\[0\]\.source: 5: must be a non-empty path string",
    ),
    ("os-binary", "version: 0.0\nos: !!binary aGVsbG8=\n", r"os: .*must be linux or windows"),
    ("version-date", "version: 2001-12-14\nos: linux\n", r"version: .*must be the number 0\.0"),
    (
        "timeout-bool",
        HEAD + HOOK + "    - location: scripts/ok.sh\n      timeout: yes\n",
        r"timeout: true: must be a whole number",
    ),
    ("list-as-key", HEAD + "? [a]\n: 1\n", r"invalid YAML at line 3.*unhashable key"),
    (
        "file-exists-list",
        HEAD + "file_exists_behavior: [OVERWRITE]\n",
        r"file_exists_behavior: \[\"OVERWRITE\"\]: must be exactly",
    ),
    ("hook-null-item", HEAD + HOOK + "    -\n", r"hooks\.AfterInstall\[0\]: null: must be a"),
    (
        "mode-float",
        HEAD + FILES + "permissions:\n  - object: {dest}\n    mode: 6.44\n",
        r"permissions\[0\]\.mode: 6\.44",
    ),
    # permissions
    (
        "permissions-string",
        HEAD + FILES + "permissions: all\n",
        r"permissions: \"all\": must be a list of entries with an object",
    ),
    (
        "permissions-no-object",
        HEAD + FILES + "permissions:\n  - mode: 644\n",
        r"permissions\[0\]\.object: missing: every permissions entry needs an object",
    ),
    (
        "permissions-relative",
        HEAD + FILES + "permissions:\n  - object: dest\n    mode: 644\n",
        r"permissions\[0\]\.object: .dest. is not an absolute path",
    ),
    (
        "permissions-mode-999",
        HEAD + FILES + "permissions:\n  - object: {dest}\n    mode: 999\n",
        r"permissions\[0\]\.mode: 999: invalid character .9. \(octal digits only\)",
    ),
    (
        "permissions-mode-text",
        HEAD + FILES + "permissions:\n  - object: {dest}\n    mode: rwx\n",
        r"permissions\[0\]\.mode: \"rwx\": invalid character .r.",
    ),
    (
        "permissions-owner",
        HEAD + FILES + "permissions:\n  - object: {dest}\n    owner: no-such-user-x\n",
        r"permissions owner: .no-such-user-x. for .* is not a user on this host",
    ),
    (
        "permissions-group",
        HEAD + FILES + "permissions:\n  - object: {dest}\n    group: no-such-group-x\n",
        r"permissions group: .no-such-group-x. for .* is not a group on this host",
    ),
    (
        "permissions-acl",
        HEAD + FILES + "permissions:\n  - object: {dest}\n    acls:\n      - 'u:bob:rwz'\n",
        r"permissions\[0\]\.acls\[0\]: \"u:bob:rwz\": invalid permission character .z.",
    ),
    (
        "permissions-type",
        HEAD + FILES + "permissions:\n  - object: {dest}\n    type: [socket]\n",
        r"permissions\[0\]\.type\[0\]: \"socket\": must be file or directory",
    ),
    (
        "permissions-except",
        HEAD + FILES + "permissions:\n  - object: {dest}\n    except: x\n",
        r"permissions\[0\]\.except: \"x\": must be a list of glob strings",
    ),
    (
        "permissions-context",
        HEAD + FILES + "permissions:\n  - object: {dest}\n    context:\n      type: [x]\n",
        r"permissions\[0\]\.context\.type: \[\"x\"\]: must be a non-empty string",
    ),
]


def appspec_cases() -> Iterator[Case]:
    for row in APPSPECS:
        name, text, expect = row[:3]
        extra: list[Entry] = row[3] if len(row) > 3 else []
        setup: str | None = row[4] if len(row) > 4 else None
        if name == "through-another-groups-link":
            entries = (("file", "appspec.yml", text.encode()), *extra)
        else:
            entries = (*base_entries(text), *extra)
        for kind in APPSPEC_TYPES:
            yield Case(name, kind, tuple(entries), expect, setup=setup)


CASES: list[Case] = [*archive_cases(), *appspec_cases()]
