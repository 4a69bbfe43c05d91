"""The official ``codedeploy-local`` cucumber scenarios, run against the real ``opendeploy local``.

Black-box: each test starts ``python -m opendeploy local`` as a subprocess with a tmp agent
configuration (its own deployment root), then checks the exit status, what it printed, the
events the hooks recorded (in order, and from which revision), the installed files and the
deployment root on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tarfile
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from opendeploy.agent.config import DEFAULT_AGENT_CONFIG_PATH, OFFICIAL_LOG_DIR, OFFICIAL_ROOT_DIR
from tests._users import throwaway_user

pytestmark = pytest.mark.e2e

# -- bundles: the official sample app, re-created --------------------------------------------------
#
# Every hook script appends ``<event> <tag>`` to ``$PROOF_FILE`` (inherited from the
# ``opendeploy local`` process), so a test reads back which events ran, in which order, and from
# which revision. The appspec is written per test: its destination is in the test's tmp dir.

FIXTURES = Path(__file__).parent / "fixtures" / "local"

#: Events a bundle has hooks for by default (all hook events of the official sample app).
HOOK_EVENTS = (
    "BeforeBlockTraffic",
    "AfterBlockTraffic",
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
)


def make_bundle(
    directory: Path,
    *,
    destination: Path,
    tag: str = "v1",
    events: Iterable[str] = HOOK_EVENTS,
    scripts: Mapping[str, str] | None = None,
    files: Mapping[str, str] | None = None,
    file_exists_behavior: str | None = None,
    appspec_name: str = "appspec.yml",
    mode: str | None = "640",
) -> Path:
    """Write a bundle directory: content files, hook scripts and an appspec.

    ``scripts`` maps an event to a script *body* that replaces the recording script for that
    event (e.g. ``"exit 3"``). ``files`` maps content paths to their text.
    """
    directory.mkdir(parents=True, exist_ok=True)
    content = files if files is not None else {"hello.txt": f"hello {tag}\n", "sub/data.txt": tag}
    for name, text in content.items():
        path = directory / "content" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    scripts_dir = directory / "scripts"
    scripts_dir.mkdir(exist_ok=True)
    record = (FIXTURES / "scripts" / "record.sh").read_text().replace("@TAG@", tag)
    hooks = []
    for event in events:
        script = scripts_dir / f"{event}.sh"
        body = (scripts or {}).get(event)
        script.write_text(record if body is None else f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
        hooks.append(f"  {event}:\n    - location: scripts/{event}.sh\n      timeout: 30\n")
    lines = ["version: 0.0", "os: linux"]
    if file_exists_behavior:
        lines.append(f"file_exists_behavior: {file_exists_behavior}")
    lines += ["files:", "  - source: content", f"    destination: {destination}"]
    if mode and "hello.txt" in content:
        lines += [
            "permissions:",
            f"  - object: {destination}/hello.txt",
            f'    mode: "{mode}"',
        ]
    text = "\n".join(lines) + "\n"
    if hooks:
        text += "hooks:\n" + "".join(hooks)
    (directory / appspec_name).write_text(text)
    return directory


def archive(bundle_dir: Path, out: Path, kind: str, *, nested: str | None = None) -> Path:
    """Pack ``bundle_dir`` as ``kind`` (zip, tar, tgz); ``nested`` puts it under one directory."""
    prefix = f"{nested}/" if nested else ""
    entries = sorted(p for p in bundle_dir.rglob("*"))
    if kind == "zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in entries:
                name = prefix + path.relative_to(bundle_dir).as_posix()
                if path.is_dir():
                    zf.write(path, name + "/")
                else:
                    zf.write(path, name)
        return out
    mode: Literal["w:gz", "w"] = "w:gz" if kind == "tgz" else "w"
    with tarfile.open(out, mode) as tf:
        for path in entries:
            tf.add(path, prefix + path.relative_to(bundle_dir).as_posix(), recursive=False)
    return out


def corrupt_zip(out: Path) -> Path:
    """A file with a zip name and no zip inside: DownloadBundle fails on it."""
    out.write_bytes(b"PK\x03\x04 not really a zip archive\n")
    return out


GROUP = "default-local-deployment-group"

FIRST_DEPLOYMENT = [
    "BeforeInstall v1",
    "AfterInstall v1",
    "ApplicationStart v1",
    "ValidateService v1",
    "BeforeAllowTraffic v1",
    "AfterAllowTraffic v1",
]


@dataclass
class Host:
    """One machine's worth of state: a deployment root, a proof file and a target dir."""

    tmp: Path

    @property
    def root(self) -> Path:
        return self.tmp / "root"

    @property
    def config(self) -> Path:
        return self.tmp / "codedeployagent.yml"

    @property
    def proof(self) -> Path:
        return self.tmp / "proof.txt"

    @property
    def target(self) -> Path:
        return self.tmp / "target"

    def events(self) -> list[str]:
        return self.proof.read_text().splitlines() if self.proof.exists() else []

    def deployments(self, group: str = GROUP) -> list[Path]:
        return sorted((self.root / group).iterdir(), key=lambda p: p.stat().st_mtime)

    def local(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
        env["PROOF_FILE"] = str(self.proof)
        return subprocess.run(
            [sys.executable, "-m", "opendeploy", "local", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd or self.tmp,
            timeout=120,
        )


@pytest.fixture
def host(tmp_path: Path) -> Host:
    h = Host(tmp_path)
    h.config.write_text(f":root_dir: {h.root}\n:log_dir: {tmp_path / 'log'}\nmax_revisions: 5\n")
    return h


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "AppSpec file valid. Local deployment successful" in result.stdout
    return result


def bundle(host: Host, name: str = "bundle", **kwargs: object) -> Path:
    return make_bundle(host.tmp / name, destination=host.target, **kwargs)  # type: ignore[arg-type]


def assert_layout(host: Host, count: int = 1) -> None:
    """The on-disk facts the cucumber scenarios check."""
    assert {p.name for p in host.root.iterdir()} >= {"deployment-instructions", "deployment-logs"}
    assert [p.name for p in (host.root / "deployment-logs").iterdir()] == [
        "codedeploy-agent-deployments.log"
    ]
    deployments = host.deployments()
    assert len(deployments) == count
    for deployment in deployments:
        assert (deployment / "deployment-archive").is_dir()
        assert (deployment / "logs" / "scripts.log").is_file()
        assert not (deployment / "bundle.tar").exists()  # no retained copy of the bundle
    instructions = {p.name for p in (host.root / "deployment-instructions").iterdir()}
    assert instructions == {
        f"{GROUP}-cleanup",
        f"{GROUP}-install.json",
        f"{GROUP}_last_successful_install",
        f"{GROUP}_most_recent_install",
    }


def assert_installed(host: Host, tag: str = "v1") -> None:
    assert (host.target / "hello.txt").read_text() == f"hello {tag}\n"
    assert (host.target / "sub" / "data.txt").read_text() == tag
    assert stat.S_IMODE((host.target / "hello.txt").stat().st_mode) == 0o640


# -- bundle types ----------------------------------------------------------------------------------


def test_directory_bundle_runs_every_hook_in_order_and_installs_files(host: Host) -> None:
    result = ok(host.local("--bundle-location", str(bundle(host))))
    assert host.events() == FIRST_DEPLOYMENT
    assert_installed(host)
    assert_layout(host)
    assert "Starting to execute deployment from within folder" in result.stdout
    assert "See the deployment log at" in result.stdout


def test_relative_directory_bundle(host: Host) -> None:
    bundle(host)
    ok(host.local("-l", "bundle", cwd=host.tmp))
    assert host.events() == FIRST_DEPLOYMENT
    assert_installed(host)


@pytest.mark.parametrize("kind", ["zip", "tar", "tgz"])
def test_archive_bundles(host: Host, kind: str) -> None:
    source = archive(bundle(host), host.tmp / f"bundle.{kind}", kind)
    ok(host.local("-l", str(source), "-t", kind))
    assert host.events() == FIRST_DEPLOYMENT
    assert_installed(host)
    assert_layout(host)
    assert source.exists()  # unpacked where it lies, not moved


def test_zip_with_a_leading_directory_is_stripped(host: Host) -> None:
    source = archive(bundle(host), host.tmp / "nested.zip", "zip", nested="my-app")
    ok(host.local("-l", f"file://{source}", "-t", "zip"))
    archive_dir = host.deployments()[0] / "deployment-archive"
    assert (archive_dir / "appspec.yml").is_file()
    assert host.events() == FIRST_DEPLOYMENT


# -- consecutive deployments -----------------------------------------------------------------------


def test_second_deployment_runs_the_previous_revisions_stop_and_block_traffic_hooks(
    host: Host,
) -> None:
    ok(host.local("-l", str(bundle(host, "v1", tag="v1"))))
    host.proof.unlink()
    ok(host.local("-l", str(bundle(host, "v2", tag="v2"))))
    assert host.events() == [
        "BeforeBlockTraffic v1",
        "AfterBlockTraffic v1",
        "ApplicationStop v1",
        *[line.replace("v1", "v2") for line in FIRST_DEPLOYMENT],
    ]
    assert_installed(host, "v2")
    assert_layout(host, count=2)


def test_redeploy_after_a_failed_deployment_removes_its_files(host: Host) -> None:
    failing = bundle(
        host,
        "v1",
        tag="v1",
        files={"old.txt": "old\n"},
        scripts={"ApplicationStart": "exit 7"},
    )
    assert host.local("-l", str(failing)).returncode == 1
    assert (host.target / "old.txt").exists()
    ok(host.local("-l", str(bundle(host, "v2", tag="v2"))))
    assert not (host.target / "old.txt").exists()
    assert_installed(host, "v2")


# -- events ----------------------------------------------------------------------------------------


def test_custom_events_run_in_the_given_order(host: Host) -> None:
    source = bundle(host, events=["BeforeInstall", "ApplicationStart", "CustomEvent"])
    ok(host.local("-l", str(source), "-e", "ApplicationStart,CustomEvent"))
    assert host.events() == ["ApplicationStart v1", "CustomEvent v1"]


def test_subset_of_events(host: Host) -> None:
    ok(host.local("-l", str(bundle(host)), "--events", "ValidateService,ApplicationStart"))
    assert host.events() == ["ValidateService v1", "ApplicationStart v1"]
    assert_installed(host)  # DownloadBundle and Install were added


def test_custom_event_missing_from_the_appspec_fails(host: Host) -> None:
    result = host.local("-l", str(bundle(host)), "-e", "ApplicationStart,NoSuchHook")
    assert result.returncode == 1
    assert "doesn't exist in your appspec.yml file: NoSuchHook" in result.stderr


def test_events_in_an_impossible_order_are_refused(host: Host) -> None:
    result = host.local("-l", str(bundle(host)), "-e", "ApplicationStart,DownloadBundle")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "ERROR: The only events that can be specified before DownloadBundle are "
        "BeforeBlockTraffic,AfterBlockTraffic,ApplicationStop."
    )
    assert not host.root.exists()


# -- file_exists_behavior --------------------------------------------------------------------------


def _existing_file(host: Host) -> Path:
    host.target.mkdir()
    existing = host.target / "hello.txt"
    existing.write_text("mine\n")
    return existing


def test_disallow_fails_when_a_file_exists(host: Host) -> None:
    existing = _existing_file(host)
    result = host.local("-l", str(bundle(host)))
    assert result.returncode == 1
    assert "failed at event Install: UnknownError" in result.stderr
    assert "a specified file already exists at this location" in result.stderr
    assert existing.read_text() == "mine\n"


@pytest.mark.parametrize(
    ("cli", "appspec", "expected"),
    [
        ("OVERWRITE", None, "hello v1\n"),
        ("RETAIN", None, "mine\n"),
        ("DISALLOW", "OVERWRITE", "hello v1\n"),
        ("OVERWRITE", "RETAIN", "mine\n"),  # the appspec's setting wins
    ],
)
def test_file_exists_behavior_from_cli_and_appspec(
    host: Host, cli: str, appspec: str | None, expected: str
) -> None:
    existing = _existing_file(host)
    source = bundle(host, file_exists_behavior=appspec, mode=None)
    ok(host.local("-l", str(source), "-b", cli))
    assert existing.read_text() == expected


# -- appspec file name -----------------------------------------------------------------------------


def test_custom_appspec_filename(host: Host) -> None:
    source = bundle(host, appspec_name="custom-appspec.yml")
    ok(host.local("-l", str(source), "-A", "custom-appspec.yml"))
    assert host.events() == FIRST_DEPLOYMENT


def test_missing_appspec_fails(host: Host) -> None:
    source = bundle(host, appspec_name="other.yml")
    result = host.local("-l", str(source))
    assert result.returncode == 1
    assert "ERROR: Expecting appspec file at location" in result.stderr
    result = host.local("-l", str(source), "-A", "nope.yml")
    assert result.returncode == 1
    assert f"{source}/nope.yml but it is not found there" in result.stderr


def test_missing_appspec_in_an_archive_fails_at_the_first_event_that_reads_it(host: Host) -> None:
    source = archive(bundle(host, appspec_name="other.yml"), host.tmp / "b.zip", "zip")
    result = host.local("-l", str(source), "-t", "zip")
    assert result.returncode == 1
    assert "failed at event BeforeInstall: UnknownError" in result.stderr
    assert "The CodeDeploy agent did not find an AppSpec file" in result.stderr


# -- failures --------------------------------------------------------------------------------------


def test_failing_hook_stops_the_deployment_with_script_failed(host: Host) -> None:
    source = bundle(host, scripts={"AfterInstall": "echo about to fail; exit 3"})
    result = host.local("-l", str(source))
    assert result.returncode == 1
    assert host.events() == ["BeforeInstall v1"]
    assert "failed at event AfterInstall, script scripts/AfterInstall.sh: ScriptFailed" in (
        result.stderr
    )
    assert "failed with exit code 3" in result.stderr
    deployment = host.deployments()[0]
    assert (
        "Your local deployment failed while trying to execute your script at "
        f"{deployment}/deployment-archive/scripts/AfterInstall.sh"
    ) in result.stdout
    assert "[stdout]about to fail" in (deployment / "logs" / "scripts.log").read_text()


def test_broken_application_stop_names_the_way_out_and_the_ignore_flag_gets_past_it(
    host: Host,
) -> None:
    ok(host.local("-l", str(bundle(host, "v1", tag="v1", scripts={"ApplicationStop": "exit 1"}))))
    fixed = bundle(host, "v2", tag="v2")
    result = host.local("-l", str(fixed))
    assert result.returncode == 1
    assert "failed at event ApplicationStop" in result.stderr
    assert "--ignore-application-stop-failures" in result.stderr
    assert "ignoreApplicationStopFailures" in result.stderr
    assert f"{GROUP}_last_successful_install" in result.stderr
    host.proof.unlink()
    result = ok(host.local("-l", str(fixed), "--ignore-application-stop-failures"))
    assert host.events()[:2] == ["BeforeBlockTraffic v1", "AfterBlockTraffic v1"]
    assert "ApplicationStart v2" in host.events()
    assert_installed(host, "v2")


def test_max_revisions_keeps_n_and_never_the_last_successful(host: Host) -> None:
    host.config.write_text(
        f"root_dir: {host.root}\nlog_dir: {host.tmp / 'log'}\nmax_revisions: 2\n"
    )
    ok(host.local("-l", str(bundle(host))))
    first = host.deployments()[0]
    broken = corrupt_zip(host.tmp / "broken.zip")
    for _ in range(3):
        result = host.local("-l", str(broken), "-t", "zip")
        assert result.returncode == 1
        assert "failed at event DownloadBundle" in result.stderr
    deployments = host.deployments()
    assert len(deployments) == 2
    assert first in deployments  # the last successful one, though the oldest


# -- output ----------------------------------------------------------------------------------------


def test_output_in_a_pipe_has_no_escape_codes(host: Host) -> None:
    result = ok(host.local("-l", str(bundle(host))))
    assert "\x1b" not in result.stdout + result.stderr
    assert "ApplicationStart [stdout] running ApplicationStart of v1" in result.stdout


# -- runas -----------------------------------------------------------------------------------------


@pytest.fixture
def runas_user() -> Iterator[str]:
    """A user created for the test, as a runas target."""
    with throwaway_user("odlocal", home=True) as name:
        yield name


def runas_bundle(directory: Path, user: str) -> Path:
    """A bundle with one ApplicationStart hook run as ``user``, printing who and where it is."""
    (directory / "scripts").mkdir(parents=True)
    script = directory / "scripts" / "whoami.sh"
    script.write_text('#!/bin/sh\necho "I am $(id -un) home=$HOME shell=$SHELL"\n')
    script.chmod(0o755)
    for made in (directory, directory / "scripts"):
        made.chmod(0o755)  # whatever the umask: the archive keeps these modes
    (directory / "appspec.yml").write_text(
        "version: 0.0\nos: linux\nhooks:\n  ApplicationStart:\n"
        f"    - location: scripts/whoami.sh\n      runas: {user}\n      timeout: 30\n"
    )
    return directory


@contextlib.contextmanager
def removed_afterwards(*paths: Path) -> Iterator[None]:
    """Remove each of ``paths`` at the end unless it existed before (a test's traces on /opt)."""
    existed = {path: path.exists() for path in paths}
    try:
        yield
    finally:
        for path, was_there in existed.items():
            if not was_there:
                shutil.rmtree(path, ignore_errors=True)


def test_runas_hook_as_root_with_no_configuration_file(tmp_path: Path, runas_user: str) -> None:
    # The reported bug: as root with no codedeployagent.yml, the deployment root was under
    # /root/.local/share (mode 0700) and the runas user could not read its script. Now root
    # gets the official /opt/codedeploy-agent/deployment-root, as the official agent.
    if DEFAULT_AGENT_CONFIG_PATH.exists():
        pytest.fail(f"{DEFAULT_AGENT_CONFIG_PATH} exists: this test needs a host without it")
    group = f"runas-{uuid.uuid4().hex[:8]}"
    root = OFFICIAL_ROOT_DIR
    source = runas_bundle(tmp_path / "bundle", runas_user)
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["HOME"] = "/root"
    with removed_afterwards(root.parent, OFFICIAL_LOG_DIR.parent):
        try:
            result = subprocess.run(
                [sys.executable, "-m", "opendeploy", "local", "-l", str(source), "-g", group],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=120,
                # A root shell's usual umask: under CI's 077 the directories made on /opt would
                # be 0700, which no runas user enters (the next test's case).
                umask=0o022,
            )
            home = pwd.getpwnam(runas_user).pw_dir
            assert result.returncode == 0, result.stdout + result.stderr
            assert (
                f"ApplicationStart [stdout] I am {runas_user} home={home} shell=/bin/sh"
                in result.stdout
            )
            assert f"from within folder {root / group}/d-" in result.stdout
            assert len(list((root / group).iterdir())) == 1
            local_log = OFFICIAL_LOG_DIR / "codedeploy-local.log"
            assert "ApplicationStart: Succeeded in" in local_log.read_text()
        finally:
            shutil.rmtree(root / group, ignore_errors=True)
            for record in (root / "deployment-instructions").glob(f"{group}[-_]*"):
                record.unlink()


def test_runas_user_who_cannot_reach_the_deployment_root_gets_a_clear_error(
    host: Host, runas_user: str
) -> None:
    # host.root is under pytest's private tmp dir, as a root_dir under /root would be.
    result = host.local("-l", str(runas_bundle(host.tmp / "bundle", runas_user)))
    assert result.returncode == 1
    assert "failed at event ApplicationStart, script scripts/whoami.sh: ScriptFailed" in (
        result.stderr
    )
    assert f"user {runas_user} cannot reach the script {host.root}/{GROUP}/d-" in result.stderr
    assert "Put the deployment root (root_dir in the agent configuration) where" in result.stderr


# -- the bundled sample app and deployment groups --------------------------------------------------

SAMPLE_APP = Path(__file__).resolve().parents[2] / "examples" / "sample-app"
SAMPLE_TARGET = Path("/tmp/opendeploy-sample")


def test_the_bundled_sample_app_deploys_twice(host: Host) -> None:
    # What the README tells a new user to type, with the deployment root of a tmp config.
    with removed_afterwards(SAMPLE_TARGET):
        # Another host on this machine (another deployment root) installed the sample first:
        # the appspec's file_exists_behavior OVERWRITE takes its files over.
        (SAMPLE_TARGET / "app" / "bin").mkdir(parents=True)
        (SAMPLE_TARGET / "app" / "index.html").write_text("another host's copy\n")
        (SAMPLE_TARGET / "app" / "bin" / "status.sh").write_text("#!/bin/sh\n")
        first = ok(host.local("--bundle-location", str(SAMPLE_APP)))
        assert "ValidateService [stdout] service is valid" in first.stdout
        assert (SAMPLE_TARGET / "app" / "index.html").read_text() == (
            SAMPLE_APP / "app" / "index.html"
        ).read_text()
        second = ok(host.local("--bundle-location", str(SAMPLE_APP)))
        assert "ApplicationStop [stdout] stopped the previous revision" in second.stdout
        ids = [p.name for p in host.deployments()]
        logged = (SAMPLE_TARGET / "events.log").read_text().splitlines()
        # The sample app has a hook for every event, as our default bundle does.
        assert [line.split()[1:] for line in logged if line.endswith(ids[1])] == [
            [event, ids[1]] for event in HOOK_EVENTS
        ]
        app = SAMPLE_TARGET / "app"
        assert stat.S_IMODE((app / "config.json").stat().st_mode) == 0o640
        assert stat.S_IMODE((app / "bin" / "status.sh").stat().st_mode) == 0o755


def test_a_named_deployment_group_has_its_own_directory_and_records(host: Host) -> None:
    ok(host.local("-l", str(bundle(host, "v1", tag="v1")), "--deployment-group", "my-group"))
    ok(host.local("-l", str(bundle(host, "v2", tag="v2")), "-g", "my-group"))
    assert not (host.root / GROUP).exists()
    first, second = host.deployments("my-group")
    instructions = host.root / "deployment-instructions"
    assert {p.name for p in instructions.iterdir()} == {
        "my-group-cleanup",
        "my-group-install.json",
        "my-group_last_successful_install",
        "my-group_most_recent_install",
    }
    assert (instructions / "my-group_last_successful_install").read_text() == str(second)
    assert (instructions / "my-group_most_recent_install").read_text() == str(second)
    assert f"{host.target}/hello.txt" in (instructions / "my-group-cleanup").read_text()
    assert json.loads((instructions / "my-group-install.json").read_text())["instructions"]
    # The second deployment stopped the first revision of the same group.
    assert "ApplicationStop v1" in host.events()
    assert (first / "deployment-archive" / "scripts").is_dir()
    assert_installed(host, "v2")


def test_a_windows_appspec_is_refused_before_anything_runs(host: Host) -> None:
    ok(host.local("-l", str(bundle(host, "v1", tag="v1"))))
    host.proof.unlink()
    windows = bundle(host, "v2", tag="v2")
    text = (windows / "appspec.yml").read_text()
    (windows / "appspec.yml").write_text(text.replace("os: linux", "os: windows"))
    result = host.local("-l", str(windows))
    assert result.returncode == 1
    assert result.stderr.startswith(
        'ERROR: os: "windows": this host runs Linux, and an appspec with os: windows deploys '
        "only to Windows instances; set os: linux to deploy this revision here"
    )
    assert host.events() == []  # not even the previous revision's ApplicationStop
    assert len(host.deployments()) == 1
    # An archive is refused by DownloadBundle, the first event that sees the revision.
    source = archive(windows, host.tmp / "windows.zip", "zip")
    result = host.local("-l", str(source), "-t", "zip")
    assert result.returncode == 1
    assert "failed at event DownloadBundle: UnknownError" in result.stderr
    assert 'os: "windows": this host runs Linux' in result.stderr
    assert_installed(host, "v1")
