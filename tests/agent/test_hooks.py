from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendeploy.agent.hooks import HookSettings, hook_environment, run_scripts
from opendeploy.agent.script_log import TAIL_LIMIT, ScriptLog
from opendeploy.appspec.model import Script
from opendeploy.errors import ScriptError
from tests._users import throwaway_user

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
FAST = HookSettings(kill_grace_seconds=0.5, output_close_grace_seconds=0.3)
ENV = hook_environment(
    event="AfterInstall",
    deployment_id="d-TEST12345",
    application_name="app",
    deployment_group_name="dg",
    deployment_group_id="11111111-2222-3333-4444-555555555555",
)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "deployment-archive"
    path.mkdir()
    return path


@pytest.fixture
def script_log(tmp_path: Path) -> ScriptLog:
    return ScriptLog(tmp_path / "logs" / "scripts.log")


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids a test's scripts leave running on purpose; killed at teardown."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def write(archive: Path, location: str, body: str, *, mode: int = 0o755) -> Path:
    path = archive / location
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(mode)
    return path


def run(
    archive: Path,
    script_log: ScriptLog,
    *scripts: Script,
    env: dict[str, str] | None = None,
    settings: HookSettings = FAST,
) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    run_scripts(
        scripts,
        event="AfterInstall",
        archive_dir=archive,
        env=ENV if env is None else env,
        script_log=script_log,
        on_output=lambda stream, line: seen.append((stream, line)),
        settings=settings,
    )
    return seen


def alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (our PID 1 may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


# --- environment -------------------------------------------------------------------------------


def test_hook_environment_is_exactly_the_official_set() -> None:
    env = hook_environment(
        event="BeforeInstall",
        deployment_id="d-1",
        application_name="a",
        deployment_group_name="g",
        deployment_group_id="gid",
        revision_env={"BUNDLE_BUCKET": "b", "BUNDLE_KEY": "k", "BUNDLE_VERSION": None},
    )
    assert env == {
        "LIFECYCLE_EVENT": "BeforeInstall",
        "DEPLOYMENT_ID": "d-1",
        "APPLICATION_NAME": "a",
        "DEPLOYMENT_GROUP_NAME": "g",
        "DEPLOYMENT_GROUP_ID": "gid",
        "BUNDLE_BUCKET": "b",
        "BUNDLE_KEY": "k",
    }


def test_hook_environment_rejects_unknown_revision_variables() -> None:
    with pytest.raises(ValueError, match="revision_env: 'BUNDLE_TYPE' is not a revision variable"):
        hook_environment(
            event="e",
            deployment_id="d",
            application_name="a",
            deployment_group_name="g",
            deployment_group_id="i",
            revision_env={"BUNDLE_TYPE": "zip"},
        )


def test_script_sees_agent_env_and_deployment_variables_but_no_stale_bundle_vars(
    archive: Path, script_log: ScriptLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_SETTING", "inherited")
    monkeypatch.setenv("BUNDLE_ETAG", "from-the-agent-itself")
    write(
        archive,
        "env.sh",
        "#!/bin/sh\n"
        'echo "$LIFECYCLE_EVENT $DEPLOYMENT_ID $APPLICATION_NAME $DEPLOYMENT_GROUP_NAME"\n'
        'echo "$DEPLOYMENT_GROUP_ID $BUNDLE_BUCKET ${BUNDLE_ETAG-unset} $AGENT_SETTING"\n',
    )
    env = {**ENV, "BUNDLE_BUCKET": "bucket"}
    seen = run(archive, script_log, Script("env.sh"), env=env)
    assert seen == [
        ("stdout", "AfterInstall d-TEST12345 app dg"),
        ("stdout", "11111111-2222-3333-4444-555555555555 bucket unset inherited"),
    ]


def test_working_directory_is_inherited_and_stdin_is_devnull(
    archive: Path, script_log: ScriptLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(archive, "where.sh", "#!/bin/sh\npwd\nreadlink /proc/self/fd/0\n")
    seen = run(archive, script_log, Script("where.sh"))
    assert seen == [("stdout", str(tmp_path)), ("stdout", "/dev/null")]


# --- scripts.log and streaming -----------------------------------------------------------------


def test_scripts_log_records_event_scripts_and_output_in_the_official_format(
    archive: Path, script_log: ScriptLog
) -> None:
    write(archive, "scripts/one.sh", "#!/bin/sh\necho out\necho err >&2\n")
    write(archive, "two.sh", "#!/bin/sh\nprintf 'no newline'\n")
    run(archive, script_log, Script(" scripts/one.sh "), Script("two.sh"))

    text = script_log.path.read_text()
    lines = text.splitlines(keepends=True)
    patterns = [
        "LifecycleEvent - AfterInstall\n",
        "Script - scripts/one.sh\n",
        r"\[(stdout\]out|stderr\]err)\n",
        r"\[(stdout\]out|stderr\]err)\n",
        "Script - two.sh\n",
        r"\[stdout\]no newline",
    ]
    assert len(lines) == len(patterns), text
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(STAMP + pattern, line), line


def test_no_scripts_writes_nothing(archive: Path, script_log: ScriptLog) -> None:
    assert run(archive, script_log) == []
    assert not script_log.path.exists()


def test_output_reaches_the_caller_while_the_script_runs(
    archive: Path, script_log: ScriptLog, tmp_path: Path
) -> None:
    # The script blocks on a FIFO after its first line; only a live on_output can release it.
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    write(archive, "live.sh", f'#!/bin/sh\necho first\nread reply < "{fifo}"\necho "$reply"\n')
    seen: list[tuple[str, str]] = []

    def on_output(stream: str, line: str) -> None:
        seen.append((stream, line))
        if line == "first":
            with fifo.open("w") as pipe:
                pipe.write("second\n")

    run_scripts(
        [Script("live.sh", timeout=5)],
        event="AfterInstall",
        archive_dir=archive,
        env=ENV,
        script_log=script_log,
        on_output=on_output,
        settings=FAST,
    )
    assert seen == [("stdout", "first"), ("stdout", "second")]


def test_very_long_lines_are_split(archive: Path, script_log: ScriptLog) -> None:
    write(archive, "long.sh", "#!/bin/sh\nhead -c 200000 /dev/zero | tr '\\0' x\necho\necho end\n")
    seen = run(archive, script_log, Script("long.sh"))
    pieces = [line for _, line in seen[:-1]]
    assert all(len(piece) <= 64 * 1024 for piece in pieces)
    assert "".join(pieces) == "x" * 200_000
    assert seen[-1] == ("stdout", "end")


# --- failures ----------------------------------------------------------------------------------


def test_missing_script_reports_the_absolute_path(archive: Path, script_log: ScriptLog) -> None:
    # As the official agent: an absolute location is looked up under the archive.
    with pytest.raises(ScriptError) as caught:
        run(archive, script_log, Script("/opt/app/start.sh"))
    error = caught.value
    assert error.code == "ScriptMissing"
    assert (
        error.message == f"Script does not exist at specified location: {archive}/opt/app/start.sh"
    )
    assert error.script == "/opt/app/start.sh"
    assert error.log_tail.endswith("Script - /opt/app/start.sh\n")


@pytest.mark.parametrize("location", ["../outside.sh", "/../outside.sh", "a/../../outside.sh"])
def test_a_location_outside_the_bundle_is_refused_and_not_touched(
    archive: Path, script_log: ScriptLog, location: str
) -> None:
    outside = archive.parent / "outside.sh"
    outside.write_text("#!/bin/sh\ntouch ran\n")
    outside.chmod(0o644)
    (archive / "a").mkdir()
    with pytest.raises(ScriptError) as caught:
        run(archive, script_log, Script(location))
    assert caught.value.code == "ScriptMissing"
    assert f"Script location {location!r} points outside the revision" in caught.value.message
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # never chmod +x outside the bundle
    assert not (archive / "ran").exists()


def test_a_link_in_the_bundle_to_a_script_outside_is_refused(
    archive: Path, script_log: ScriptLog
) -> None:
    outside = archive.parent / "outside.sh"
    outside.write_text("#!/bin/sh\nexit 0\n")
    outside.chmod(0o644)
    (archive / "link.sh").symlink_to(outside)
    with pytest.raises(ScriptError, match="points outside the revision"):
        run(archive, script_log, Script("link.sh"))
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644


def test_a_link_inside_the_bundle_still_runs(archive: Path, script_log: ScriptLog) -> None:
    write(archive, "real/start.sh", "#!/bin/sh\necho linked\n")
    (archive / "start.sh").symlink_to("real/start.sh")
    assert run(archive, script_log, Script("start.sh")) == [("stdout", "linked")]


def test_script_without_execute_bit_is_made_executable_and_runs(
    archive: Path, script_log: ScriptLog
) -> None:
    path = write(archive, "plain.sh", "#!/bin/sh\necho ran\n", mode=0o644)
    assert run(archive, script_log, Script("plain.sh")) == [("stdout", "ran")]
    assert path.stat().st_mode & 0o111 == 0o111


@pytest.fixture
def read_only_archive(tmp_path: Path) -> Iterator[Path]:
    """A deployment archive on a read-only bind mount, holding ``plain.sh`` without execute bits.

    A read-only file system is where chmod fails even for root, the agent's usual user.
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only bind mount needs root")
    source = tmp_path / "source"
    write(source, "plain.sh", "#!/bin/sh\necho never\n", mode=0o644)
    mount_point = tmp_path / "read-only-archive"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(source), str(mount_point)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, f"mount --bind -o ro failed: {mounted.stderr}"
    try:
        # Older util-linux ignores ro on the first bind; remounting makes sure.
        subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(mount_point)], check=True, capture_output=True
        )
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True, capture_output=True)


def test_script_that_cannot_be_made_executable_is_script_not_executable(
    read_only_archive: Path, script_log: ScriptLog
) -> None:
    with pytest.raises(ScriptError) as caught:
        run(read_only_archive, script_log, Script("plain.sh"))
    assert caught.value.code == "ScriptNotExecutable"
    assert caught.value.message == (
        "Unable to set script at specified location: plain.sh as executable"
    )
    assert caught.value.script == "plain.sh"
    assert (read_only_archive / "plain.sh").stat().st_mode & 0o111 == 0


def test_script_without_shebang_runs_with_bin_sh(archive: Path, script_log: ScriptLog) -> None:
    write(archive, "bare", "echo from sh\n")
    assert run(archive, script_log, Script("bare")) == [("stdout", "from sh")]


def test_non_zero_exit_fails_with_code_and_tail_and_stops_the_event(
    archive: Path, script_log: ScriptLog
) -> None:
    write(archive, "bad.sh", "#!/bin/sh\necho working\necho 'disk full' >&2\nexit 3\n")
    write(archive, "never.sh", "#!/bin/sh\necho should not run\n")
    with pytest.raises(ScriptError) as caught:
        run(archive, script_log, Script("bad.sh"), Script("never.sh"))
    error = caught.value
    assert error.code == "ScriptFailed"
    assert error.message == "Script at specified location: bad.sh failed with exit code 3"
    assert error.script == "bad.sh"
    assert error.log_tail.endswith("[stdout]working\n[stderr]disk full\n")
    assert "never.sh" not in script_log.path.read_text()


def test_death_by_signal_names_the_signal(archive: Path, script_log: ScriptLog) -> None:
    write(archive, "die.sh", "#!/bin/sh\nkill -KILL $$\n")
    with pytest.raises(ScriptError) as caught:
        run(archive, script_log, Script("die.sh"))
    assert caught.value.code == "ScriptFailed"
    assert caught.value.message == (
        "Script at specified location: die.sh failed: killed by signal SIGKILL (9)"
    )


def test_log_tail_is_bounded(archive: Path, script_log: ScriptLog) -> None:
    write(archive, "chatty.sh", '#!/bin/sh\nseq 1 2000 | sed "s/^/line /"\nexit 1\n')
    with pytest.raises(ScriptError) as caught:
        run(archive, script_log, Script("chatty.sh"))
    tail = caught.value.log_tail
    assert TAIL_LIMIT - 20 < len(tail) <= TAIL_LIMIT
    assert tail.endswith("[stdout]line 2000\n")


def test_an_error_in_on_output_is_unknown_error_and_kills_the_script(
    archive: Path, script_log: ScriptLog, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    write(archive, "loop.sh", f'#!/bin/sh\necho $$ > "{pidfile}"\necho hi\nexec sleep 30\n')

    def on_output(stream: str, line: str) -> None:
        raise RuntimeError("viewer went away")

    with pytest.raises(ScriptError) as caught:
        run_scripts(
            [Script("loop.sh")],
            event="AfterInstall",
            archive_dir=archive,
            env=ENV,
            script_log=script_log,
            on_output=on_output,
            settings=FAST,
        )
    assert caught.value.code == "UnknownError"
    assert caught.value.message == "viewer went away"
    assert not alive(read_pid(pidfile))


# --- timeouts ----------------------------------------------------------------------------------


def test_timeout_terminates_the_whole_process_group(
    archive: Path, script_log: ScriptLog, tmp_path: Path
) -> None:
    pidfile = tmp_path / "child.pid"
    write(archive, "slow.sh", f'#!/bin/sh\nsleep 30 &\necho $! > "{pidfile}"\nsleep 30\n')
    started = time.monotonic()
    with pytest.raises(ScriptError) as caught:
        run(archive, script_log, Script("slow.sh", timeout=1))
    # Well short of the 30 s the script would take, with room for a loaded machine.
    assert time.monotonic() - started < 1 + FAST.kill_grace_seconds + 8
    assert caught.value.code == "ScriptTimedOut"
    assert caught.value.message == (
        "Script at specified location: slow.sh failed to complete in 1 seconds"
    )
    assert not alive(read_pid(pidfile))


def test_output_of_a_term_handler_is_kept(archive: Path, script_log: ScriptLog) -> None:
    write(
        archive, "trap.sh", "#!/bin/bash\ntrap 'echo cleaning up; exit 0' TERM\nsleep 30 &\nwait\n"
    )
    with pytest.raises(ScriptError, match="failed to complete in 1 seconds"):
        run(archive, script_log, Script("trap.sh", timeout=1))
    assert "[stdout]cleaning up\n" in script_log.tail


def test_a_script_ignoring_sigterm_is_killed_after_the_grace(
    archive: Path, script_log: ScriptLog, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    write(archive, "stubborn.sh", f"#!/bin/sh\ntrap '' TERM\necho $$ > \"{pidfile}\"\nsleep 30\n")
    started = time.monotonic()
    with pytest.raises(ScriptError) as caught:
        run(archive, script_log, Script("stubborn.sh", timeout=1))
    elapsed = time.monotonic() - started
    assert caught.value.code == "ScriptTimedOut"
    assert 1 + FAST.kill_grace_seconds <= elapsed < 1 + FAST.kill_grace_seconds + 8  # not 30 s
    assert not alive(read_pid(pidfile))


# --- outputs left open -------------------------------------------------------------------------

BACKGROUNDS = '#!/bin/sh\nsleep 30 &\necho $! > "{pidfile}"\necho started\n'


def test_backgrounded_process_holding_output_does_not_hang_in_warn_mode(
    archive: Path, script_log: ScriptLog, tmp_path: Path, leftovers: list[int]
) -> None:
    pidfile = tmp_path / "daemon.pid"
    write(archive, "daemon.sh", BACKGROUNDS.format(pidfile=pidfile))
    write(archive, "after.sh", "#!/bin/sh\necho next script\n")
    started = time.monotonic()
    seen = run(archive, script_log, Script("daemon.sh", timeout=10), Script("after.sh"))
    leftovers.append(read_pid(pidfile))
    assert time.monotonic() - started < 10  # not the 30 s the background process lives
    assert seen[0] == ("stdout", "started")
    assert seen[1][0] == "stderr"
    assert "still holds its stdout and stderr open" in seen[1][1]
    assert seen[2] == ("stdout", "next script")
    assert "[stderr]OpenDeploy: the script exited" in script_log.path.read_text()
    assert alive(leftovers[0])  # user daemons are started this way on purpose


def test_backgrounded_process_holding_output_fails_in_fail_mode(
    archive: Path, script_log: ScriptLog, tmp_path: Path, leftovers: list[int]
) -> None:
    pidfile = tmp_path / "daemon.pid"
    write(archive, "daemon.sh", BACKGROUNDS.format(pidfile=pidfile))
    settings = HookSettings(output_close_grace_seconds=0.3, outputs_left_open="fail")
    started = time.monotonic()
    with pytest.raises(ScriptError) as caught:
        run(archive, script_log, Script("daemon.sh", timeout=10), settings=settings)
    leftovers.append(read_pid(pidfile))
    assert time.monotonic() - started < 10  # not the 30 s the background process lives
    assert caught.value.code == "OutputsLeftOpen"
    assert caught.value.message == (
        "Script at specified location: daemon.sh failed to close STDOUT"
    )
    assert caught.value.log_tail.endswith("[stdout]started\n")


# --- runas -------------------------------------------------------------------------------------


@pytest.fixture
def hook_user() -> Iterator[str]:
    with throwaway_user("odhook", home="/home/{name}") as name:
        yield name


@pytest.fixture
def shared_archive() -> Iterator[Path]:
    """An archive another user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="opendeploy-hooks-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def login_user() -> Iterator[str]:
    """A user with a home directory and a ~/.profile that extends PATH, like a real account."""
    with throwaway_user("odlogin", home=True) as name:
        home = Path(pwd.getpwnam(name).pw_dir)
        profile = home / ".profile"
        profile.write_text('PATH="$HOME/bin:$PATH"\nexport FROM_PROFILE=yes\n')
        os.chown(profile, pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid)
        yield name


ENV_PROBE = (
    "#!/bin/sh\nid -u\n"
    'echo "HOME=$HOME USER=$USER LOGNAME=$LOGNAME SHELL=$SHELL"\n'
    'echo "PATH=$PATH"\n'
    'echo "PROFILE=${FROM_PROFILE-unset} AGENT=${AGENT_ONLY-unset} ID=$DEPLOYMENT_ID"\n'
)


def test_runas_runs_as_that_user_with_a_login_environment(
    shared_archive: Path,
    script_log: ScriptLog,
    login_user: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As `su - user`: the user's login shell reads ~/.profile, the agent's own variables stay
    # behind, the deployment variables come along.
    monkeypatch.setenv("AGENT_ONLY", "leaked")
    write(shared_archive, "who.sh", ENV_PROBE)
    seen = run(shared_archive, script_log, Script("who.sh", runas=login_user))
    account = pwd.getpwnam(login_user)
    home = account.pw_dir
    lines = [line for _stream, line in seen]
    assert lines[0] == str(account.pw_uid)
    assert lines[1] == f"HOME={home} USER={login_user} LOGNAME={login_user} SHELL=/bin/sh"
    path = lines[2].removeprefix("PATH=").split(":")
    assert path[0] == f"{home}/bin"  # from ~/.profile
    assert "/usr/bin" in path and "/bin" in path
    assert "/usr/sbin" not in path  # not root's PATH
    assert lines[3] == "PROFILE=yes AGENT=unset ID=d-TEST12345"


def test_runas_without_login_environment_is_the_official_su_environment(
    shared_archive: Path,
    script_log: ScriptLog,
    login_user: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_ONLY", "kept")
    write(shared_archive, "who.sh", ENV_PROBE)
    settings = dataclasses.replace(FAST, login_environment=False)
    seen = run(shared_archive, script_log, Script("who.sh", runas=login_user), settings=settings)
    home = pwd.getpwnam(login_user).pw_dir
    lines = [line for _stream, line in seen]
    assert lines[1] == f"HOME={home} USER={login_user} LOGNAME={login_user} SHELL=/bin/sh"
    assert lines[2] == f"PATH={os.environ['PATH']}"
    assert lines[3] == "PROFILE=unset AGENT=kept ID=d-TEST12345"


def test_runas_user_with_a_nologin_shell_runs_through_bin_sh(
    shared_archive: Path, script_log: ScriptLog, hook_user: str
) -> None:
    # Service accounts (www-data, nobody) have nologin as their shell; `su -` fails for them.
    subprocess.run(["usermod", "--shell", "/usr/sbin/nologin", hook_user], check=True)
    write(shared_archive, "who.sh", '#!/bin/sh\necho "$SHELL $USER"\n')
    seen = run(shared_archive, script_log, Script("who.sh", runas=hook_user))
    assert seen == [("stdout", f"/bin/sh {hook_user}")]


def test_runas_user_who_cannot_reach_the_script_gets_a_clear_error(
    archive: Path, script_log: ScriptLog, hook_user: str
) -> None:
    # pytest's tmp dir is private to root, as root's home is: the user can't enter it.
    write(archive, "x.sh", "#!/bin/sh\necho never\n")
    private = next(p for p in reversed(archive.parents) if not p.stat().st_mode & 0o001)
    with pytest.raises(ScriptError) as caught:
        run(archive, script_log, Script("x.sh", runas=hook_user))
    assert caught.value.code == "ScriptFailed"
    mode = private.stat().st_mode & 0o7777
    assert caught.value.message == (
        f"Script at specified location: x.sh run as user {hook_user} failed: user {hook_user} "
        f"cannot reach the script {archive / 'x.sh'}: the directory {private} (mode {mode:04o}, "
        "owner root) does not let the user enter it. Put the deployment root (root_dir in the "
        "agent configuration) where every runas user can enter it, such as the official "
        "/opt/codedeploy-agent/deployment-root"
    )


def test_runas_user_let_in_by_an_acl_is_not_stopped(
    shared_archive: Path, script_log: ScriptLog, hook_user: str
) -> None:
    private = shared_archive / "private"
    private.mkdir(mode=0o700)
    write(private, "x.sh", '#!/bin/sh\necho "in by acl"\n')
    subprocess.run(["setfacl", "-m", f"u:{hook_user}:x", str(private)], check=True)
    seen = run(shared_archive, script_log, Script("private/x.sh", runas=hook_user))
    assert seen == [("stdout", "in by acl")]


def test_runas_failure_names_the_user(
    shared_archive: Path, script_log: ScriptLog, hook_user: str
) -> None:
    write(shared_archive, "fail.sh", "#!/bin/sh\nexit 4\n")
    with pytest.raises(ScriptError) as caught:
        run(shared_archive, script_log, Script("fail.sh", runas=hook_user))
    assert caught.value.message == (
        f"Script at specified location: fail.sh run as user {hook_user} failed with exit code 4"
    )


def test_runas_unknown_user_is_a_clear_script_failure(archive: Path, script_log: ScriptLog) -> None:
    write(archive, "x.sh", "#!/bin/sh\necho never\n")
    with pytest.raises(ScriptError) as caught:
        run(archive, script_log, Script("x.sh", runas="no-such-user-here"))
    assert caught.value.code == "ScriptFailed"
    assert caught.value.message == (
        "Script at specified location: x.sh run as user no-such-user-here failed: "
        "runas: user 'no-such-user-here' does not exist on this host"
    )


def test_sudo_as_root_runs_the_script_directly(archive: Path, script_log: ScriptLog) -> None:
    if os.geteuid() != 0:
        pytest.skip("checks the root case: no sudo prefix")
    write(archive, "root.sh", "#!/bin/sh\nid -u\n")
    assert run(archive, script_log, Script("root.sh", sudo=True)) == [("stdout", "0")]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="kill_grace_seconds: -1 must not be negative"):
        HookSettings(kill_grace_seconds=-1)
    with pytest.raises(ValueError, match="outputs_left_open: 'ignore' must be"):
        HookSettings(outputs_left_open="ignore")  # type: ignore[arg-type]


def test_warn_mode_still_judges_by_the_exit_code(
    archive: Path, script_log: ScriptLog, tmp_path: Path, leftovers: list[int]
) -> None:
    pidfile = tmp_path / "daemon.pid"
    write(archive, "daemon.sh", BACKGROUNDS.format(pidfile=pidfile) + "exit 2\n")
    with pytest.raises(ScriptError) as caught:
        run(archive, script_log, Script("daemon.sh", timeout=10))
    leftovers.append(read_pid(pidfile))
    assert caught.value.message == "Script at specified location: daemon.sh failed with exit code 2"
    assert "[stderr]OpenDeploy: the script exited" in caught.value.log_tail


# --- platform fallbacks ------------------------------------------------------------------------


def test_works_without_pidfd(
    archive: Path, script_log: ScriptLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kernels older than 5.3 have no pidfd_open: the process is polled instead.
    monkeypatch.delattr(os, "pidfd_open")
    write(archive, "ok.sh", "#!/bin/sh\necho fine\n")
    assert run(archive, script_log, Script("ok.sh")) == [("stdout", "fine")]
    pidfile = tmp_path / "pid"
    write(archive, "slow.sh", f'#!/bin/sh\necho $$ > "{pidfile}"\nexec sleep 30\n')
    with pytest.raises(ScriptError, match="failed to complete in 1 seconds"):
        run(archive, script_log, Script("slow.sh", timeout=1))
    assert not alive(read_pid(pidfile))


def test_a_line_written_one_character_at_a_time_is_one_line(
    archive: Path, script_log: ScriptLog
) -> None:
    write(archive, "trickle.sh", "#!/bin/bash\nfor i in {1..200}; do printf x; done\necho\n")
    assert run(archive, script_log, Script("trickle.sh")) == [("stdout", "x" * 200)]


# --- the log: written in blocks, visible as it comes, a full disk named ------------------------


def test_output_reaches_scripts_log_while_the_script_runs(archive: Path, tmp_path: Path) -> None:
    path = tmp_path / "logs" / "scripts.log"
    log = ScriptLog(path, deployments_log=tmp_path / "deployments.log", deployment_id="d-1")
    write(archive, "slow.sh", "#!/bin/sh\necho ready\nsleep 0.3\necho done\n")
    on_disk: list[str] = []

    def on_output(stream: str, line: str) -> None:
        if line == "done":  # by then "ready" must have been flushed, a read earlier
            on_disk.append(path.read_text())
            on_disk.append((tmp_path / "deployments.log").read_text())

    run_scripts(
        [Script("slow.sh", timeout=30)],
        event="ApplicationStart",
        archive_dir=archive,
        env=ENV,
        script_log=log,
        on_output=on_output,
        settings=FAST,
    )
    assert "[stdout]ready\n" in on_disk[0]
    assert "[d-1][stdout]ready\n" in on_disk[1]
    assert path.read_text().endswith("[stdout]done\n")


def test_many_lines_arrive_complete_and_in_order(archive: Path, script_log: ScriptLog) -> None:
    write(archive, "chatty.sh", "#!/bin/sh\nseq 1 50000\n")
    seen = run(archive, script_log, Script("chatty.sh"))
    assert [line for _, line in seen] == [str(n) for n in range(1, 50001)]
    logged = [
        line.split("[stdout]", 1)[1]
        for line in script_log.path.read_text().splitlines()
        if "[stdout]" in line
    ]
    assert logged == [str(n) for n in range(1, 50001)]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_while_logging_names_the_log_file(archive: Path, tmp_path: Path) -> None:
    log = ScriptLog(tmp_path / "scripts.log", deployments_log=Path("/dev/full"))
    write(archive, "talk.sh", "#!/bin/sh\necho hello\n")
    with pytest.raises(ScriptError) as caught:
        run(archive, log, Script("talk.sh"))
    assert caught.value.code == "UnknownError"
    assert caught.value.message == ("cannot write the hook log /dev/full: No space left on device")


# --- what is killed when (see the module docstring of opendeploy.agent.hooks) -----------------


def test_a_fork_loop_is_killed_whole_at_the_deadline(
    archive: Path, script_log: ScriptLog, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    write(
        archive,
        "forks.sh",
        f'#!/bin/sh\ni=0\nwhile [ $i -lt 40 ]; do sleep 60 & echo $! >> "{pids}"; '
        "i=$((i+1)); done\nwhile :; do sleep 60; done\n",
    )
    with pytest.raises(ScriptError, match="failed to complete in 1 seconds"):
        run(archive, script_log, Script("forks.sh", timeout=1))
    children = [int(line) for line in pids.read_text().split()]
    assert len(children) == 40
    assert not any(alive(pid) for pid in children)


@pytest.mark.parametrize("exit_code", [0, 3])
def test_what_a_script_leaves_running_when_it_exits_is_kept(
    archive: Path, script_log: ScriptLog, tmp_path: Path, leftovers: list[int], exit_code: int
) -> None:
    pidfile = tmp_path / "daemon.pid"
    write(
        archive,
        "start.sh",
        f'#!/bin/sh\nsleep 60 > /dev/null 2>&1 &\necho $! > "{pidfile}"\nexit {exit_code}\n',
    )
    if exit_code:
        with pytest.raises(ScriptError, match="exit code 3"):
            run(archive, script_log, Script("start.sh", timeout=10))
    else:
        run(archive, script_log, Script("start.sh", timeout=10))
    leftovers.append(read_pid(pidfile))
    assert alive(leftovers[0])


def test_a_daemon_holding_output_is_drained_until_the_deadline_then_cut_off(
    archive: Path, script_log: ScriptLog, tmp_path: Path, leftovers: list[int]
) -> None:
    pidfile = tmp_path / "daemon.pid"
    write(
        archive,
        "chatty.sh",
        f'#!/bin/sh\n(while :; do echo tick; sleep 0.05; done) &\necho $! > "{pidfile}"\n',
    )
    started = time.monotonic()
    run(archive, script_log, Script("chatty.sh", timeout=2))
    leftovers.append(read_pid(pidfile))
    assert time.monotonic() - started < 1.5
    assert alive(leftovers[0])  # drained, not killed, while the script's time lasts
    while alive(leftovers[0]) and time.monotonic() - started < 6:
        time.sleep(0.05)
    # At the deadline the pipe is closed: the next write of the daemon ends it (SIGPIPE).
    assert not alive(leftovers[0])
    assert time.monotonic() - started >= 2


def test_a_process_that_left_the_group_does_not_keep_a_timed_out_script_open(
    archive: Path, script_log: ScriptLog, tmp_path: Path, leftovers: list[int]
) -> None:
    pidfile = tmp_path / "escaped.pid"
    write(
        archive,
        "escape.sh",
        f'#!/bin/sh\nsetsid sh -c \'echo $$ > "{pidfile}"; while :; do echo x; sleep 0.05; '
        "done' &\nsleep 60\n",
    )
    started = time.monotonic()
    with pytest.raises(ScriptError, match="failed to complete in 1 seconds"):
        run(archive, script_log, Script("escape.sh", timeout=1))
    leftovers.append(read_pid(pidfile))
    assert (
        time.monotonic() - started
        < 1 + FAST.kill_grace_seconds + FAST.output_close_grace_seconds + 1
    )
    while alive(leftovers[0]) and time.monotonic() - started < 5:
        time.sleep(0.05)
    assert not alive(leftovers[0])  # its pipe was closed; it died writing to it
