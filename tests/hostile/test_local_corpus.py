"""The hostile corpus through ``opendeploy local``, in-process: a clear error, and no harm.

For each case (``corpus.py``): the bundle is written beside a destination and a canary directory;
``deploy_local`` (the code of ``opendeploy local``, same executor as the agent) must end in a
failed event or a refused option whose message matches the case's expectation and reads as an
error for people -- no traceback, no Python exception text -- and everything under the test's
directory except the destination, the deployment root and the logs (the canary, the bundle
itself) must be exactly as before: nothing written, changed or deleted.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from opendeploy.agent.config import AgentConfig
from opendeploy.agent.local import DEFAULT_DEPLOYMENT_GROUP_ID, LocalOptions, deploy_local
from opendeploy.errors import OpenDeployError
from tests.hostile.bundles import Places, write_bundle, write_sparse_tar
from tests.hostile.corpus import CASES, Case

#: What a message must not contain: a Python exception leaking out instead of an explanation.
PYTHON_TEXT = re.compile(
    r"Traceback|\[Errno \d+\]|object has no attribute|unsupported operand|recursion depth|"
    r"NoneType|invalid literal for|\b(Key|Type|Value|Attribute|Index|Recursion|Name|Lookup|"
    r"UnicodeDecode|UnicodeEncode|Overflow|ZeroDivision|Assertion)Error\b|not subscriptable|"
    r"set_int_max_str_digits|Exceeds the limit|<unicode string>|<built-in|0x[0-9a-f]{8,}>"
)
EXCLUDED = ("dest", "root", "logs")


def make_canary(places: Places) -> None:
    canary = places.canary
    (canary / "sub").mkdir(parents=True)
    (canary / "keep.txt").write_text("keep\n")
    (canary / "sub" / "data.bin").write_bytes(os.urandom(256))
    evil = canary / "evil.sh"
    evil.write_text(f"#!/bin/sh\ntouch {canary}/ran\n")
    evil.chmod(0o644)
    (canary / "link").symlink_to("keep.txt")


def snapshot(base: Path) -> dict[str, tuple[object, ...]]:
    """Every path under ``base`` but the excluded top-level ones: type, mode, size, mtime, owner
    and content (or link target). Links are not followed."""
    found: dict[str, tuple[object, ...]] = {}
    for current, dirs, files in os.walk(base):
        rel_dir = os.path.relpath(current, base)
        if rel_dir == ".":
            dirs[:] = [d for d in dirs if d not in EXCLUDED]
            files = [f for f in files if f not in EXCLUDED]
        for name in dirs + files:
            path = os.path.join(current, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                content: object = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    content = hashlib.file_digest(handle, "sha256").hexdigest()
            else:
                content = None
            key = os.path.relpath(path, base)
            found[key] = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_uid, content)
    return found


def run_setup(case: Case, places: Places) -> None:
    if case.setup == "group-a-link":
        # Another deployment group installs a link that, one level down from where it sat in
        # its bundle, points out of the destination into the canary.
        bundle = places.base / "group-a-bundle"
        (bundle / "site").mkdir(parents=True)
        (bundle / "canary").mkdir()
        (bundle / "site" / "index.html").write_text("a\n")
        (bundle / "site" / "data").symlink_to("../canary")
        (bundle / "appspec.yml").write_text(
            f"version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: {places.dest}\n"
        )
        result = deploy_local(
            LocalOptions(bundle_location=str(bundle), deployment_group_id="group-a"),
            config=agent_config(places, case),
        )
        assert result.succeeded, result.failure
        assert (places.dest / "data").resolve() == places.canary.resolve()
    elif case.setup == "existing-file":
        places.dest.mkdir(parents=True)
        (places.dest / "index.html").write_text("someone else's\n")
    elif case.setup is not None:  # pragma: no cover
        raise AssertionError(case.setup)


def agent_config(places: Places, case: Case) -> AgentConfig:
    limits = {k: v for k, v in case.config.items() if k.startswith("bundle_")}
    return AgentConfig(
        root_dir=places.root,
        log_dir=places.base / "logs",
        hook_kill_grace_seconds=0.2,
        hook_output_close_grace_seconds=0.2,
        **limits,
    )


def build(case: Case, places: Places) -> Path:
    if case.sparse:
        return write_sparse_tar(places.base / "bundle.tar", places.base / "sparse-src", 1 << 30)
    actual = case.config.get("write_as", case.kind)
    suffix = "" if actual == "directory" else f".{actual}"
    return write_bundle(actual, case.entries, places.base / f"bundle{suffix}", places, case.damage)


def deploy(case: Case, places: Places, bundle: Path) -> str:
    """Run the deployment; return the message of its failure (a test failure if it succeeded)."""
    try:
        result = deploy_local(
            LocalOptions(bundle_location=str(bundle), bundle_type=case.kind),
            config=agent_config(places, case),
        )
    except OpenDeployError as exc:  # refused before any event ran
        return str(exc)
    failure = result.failure
    assert failure is not None, f"{case.id}: the deployment succeeded"
    return f"{failure.error_code.value}: {failure.message}"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_bundle_fails_clearly_and_touches_nothing_outside(
    case: Case, tmp_path: Path
) -> None:
    places = Places(tmp_path, DEFAULT_DEPLOYMENT_GROUP_ID)
    make_canary(places)
    run_setup(case, places)
    bundle = build(case, places)
    before = snapshot(tmp_path)

    message = deploy(case, places, bundle)

    assert re.search(places.fill(case.expect), message, re.DOTALL), message
    leaked = PYTHON_TEXT.search(message)
    assert leaked is None, f"Python exception text {leaked.group()!r} in: {message}"
    assert snapshot(tmp_path) == before
    assert not (places.canary / "ran").exists()


def test_the_corpus_is_large_and_names_are_unique() -> None:
    assert len(CASES) >= 300
    assert len({case.id for case in CASES}) == len(CASES)
    kinds = {case.kind for case in CASES}
    assert kinds == {"zip", "tar", "tgz", "directory"}


CLI_SAMPLE = ("deep-flow-list-zip", "dotdot-file-tgz", "hook-location-dotdot-directory")


@pytest.mark.parametrize("name", CLI_SAMPLE)
def test_the_command_line_reports_a_hostile_bundle_in_one_clear_line(
    name: str, tmp_path: Path
) -> None:
    # The same cases through the real `opendeploy local` process: exit status 1, the error on
    # stderr, no traceback anywhere.
    case = next(case for case in CASES if case.id == name)
    places = Places(tmp_path, DEFAULT_DEPLOYMENT_GROUP_ID)
    make_canary(places)
    bundle = build(case, places)
    config = tmp_path / "codedeployagent.yml"
    config.write_text(f":root_dir: {places.root}\n:log_dir: {tmp_path / 'logs'}\n")
    before = snapshot(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    done = subprocess.run(
        [sys.executable, "-m", "opendeploy", "local", "-c", str(config)]
        + ["--bundle-location", str(bundle), "--type", case.kind],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1, done
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert re.search(places.fill(case.expect), done.stderr), done.stderr
    assert PYTHON_TEXT.search(output) is None, output
    assert {k: v for k, v in snapshot(tmp_path).items() if k != "codedeployagent.yml"} == {
        k: v for k, v in before.items() if k != "codedeployagent.yml"
    }
