"""Run the scripts of one lifecycle event, as the official CodeDeploy agent does, minus its traps.

Compatible with the official agent (``hook_executor.rb``): scripts run in order from the
deployment archive, each in its own process group, with stdin closed (``/dev/null``), the agent's
environment plus the deployment variables, the agent's working directory, and one deadline per
script; output goes line by line to ``scripts.log``; failures carry the official error codes and
message texts.

Where the official agent hurts users, we do better (each choice is a :class:`HookSettings` field):

* at the deadline the process group gets SIGTERM and, after ``kill_grace_seconds``, SIGKILL (the
  official agent only sends TERM, so a script that ignores it runs on);
* a script that backgrounds a process without redirecting its output no longer hangs the
  deployment until the timeout (the official agent waits the full timeout and then fails with
  OutputsLeftOpen): we wait ``output_close_grace_seconds`` after the script exits, then continue
  with a warning in ``scripts.log`` (``"warn"``) or fail at once (``"fail"``). The leftover process
  is not killed; its output is drained in the background until the script's own deadline (start
  + ``timeout``), when the official agent would give up too, and then the pipes are closed: a
  daemon that still writes to them gets SIGPIPE/EPIPE then, and the agent does not drain it
  forever;
* ``runas`` switches user directly (setuid/setgid/initgroups) instead of ``su <user> -c``, so it
  needs no terminal and no sudo. By default (``login_environment``) the script gets what
  ``su - <user>`` / ``runuser -l <user>`` gives: it runs through the user's login shell
  (``<shell> -l``, which reads ``/etc/profile`` and ``~/.profile``) in a fresh environment of
  HOME, USER, LOGNAME, SHELL, PATH (and TERM and the locale variables) plus the deployment
  variables, none of the agent's own. Without it, the environment is the official agent's
  (``su <user> -c``): the agent's, with HOME, USER, LOGNAME and SHELL of the user;
* a ``runas`` user who cannot reach the script (e.g. a deployment root under root's private
  home) gets a clear ScriptFailed naming the directory in the way, not an exec error;
* a script without a ``#!`` line that is not a binary (ENOEXEC) is run with ``/bin/sh``, as a
  shell would, instead of failing to spawn;
* inherited ``BUNDLE_*`` variables of the agent's own environment never leak into a script: the
  revision variables are exactly the ones the caller passes.

What is killed, and when (the official agent: ``kill -TERM -<pgid>`` at the deadline, nothing
else). Each script runs in a new session and process group, which its children inherit:

* at the deadline, the whole group: SIGTERM, then SIGKILL after ``kill_grace_seconds`` -- the
  script, everything it forked that stayed in the group, a fork loop included;
* when an error of ours (or of ``on_output``) interrupts a script: the whole group, SIGKILL;
* when the script exits, by itself, successfully or not: nothing. What it left running is
  taken to be on purpose (ApplicationStart starting a daemon is the common case);
* a process that left the group (``setsid``, a double fork into a new session) is out of
  reach: the agent does not track it and never kills it. Its hold on the script's output ends
  at the deadline, as above.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import logging
import os
import pwd
import selectors
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Literal

from opendeploy.agent.script_log import ScriptLog
from opendeploy.appspec.model import Script
from opendeploy.domain.status import LifecycleErrorCode
from opendeploy.errors import ScriptError

__all__ = [
    "DEPLOYMENT_VARIABLES",
    "REVISION_VARIABLES",
    "HookSettings",
    "hook_environment",
    "run_scripts",
]

logger = logging.getLogger(__name__)

#: The variables the official agent sets for every hook.
DEPLOYMENT_VARIABLES = (
    "LIFECYCLE_EVENT",
    "DEPLOYMENT_ID",
    "APPLICATION_NAME",
    "DEPLOYMENT_GROUP_NAME",
    "DEPLOYMENT_GROUP_ID",
)
#: The revision variables: S3 revisions set the first four, GitHub revisions ``BUNDLE_COMMIT``.
REVISION_VARIABLES = (
    "BUNDLE_BUCKET",
    "BUNDLE_KEY",
    "BUNDLE_VERSION",
    "BUNDLE_ETAG",
    "BUNDLE_COMMIT",
)

#: Output lines longer than this many characters are split into several lines.
MAX_LINE_CHARS = 64 * 1024
_READ_SIZE = 64 * 1024
#: How often to look at a process when no event can wake us (no pidfd, or waiting for a group).
_POLL_SECONDS = 0.05
# The PATH ``su -`` starts a login shell with (login.defs ENV_SUPATH / ENV_PATH defaults);
# /etc/profile and ~/.profile then adjust it.
_ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_USER_PATH = "/usr/local/bin:/usr/bin:/bin"
# What ``su -`` keeps of the caller's environment (TERM), plus the locale, so output stays legible.
_LOGIN_KEPT = ("TERM", "LANG", "LANGUAGE", "LC_ALL")
# Run the script from the login shell without the shell parsing its path: $0 is the script.
_LOGIN_EXEC = 'exec "$0"'
_NO_LOGIN_SHELLS = ("nologin", "false")
_NO_REVISION_ENV: Mapping[str, str | None] = MappingProxyType({})

OnOutput = Callable[[str, str], None]


@dataclass(frozen=True, kw_only=True)
class HookSettings:
    """How hooks are run where we deliberately differ from the official agent.

    ``kill_grace_seconds``: at a script's deadline its process group gets SIGTERM, and SIGKILL this
    many seconds later if anything in the group is still alive.
    ``outputs_left_open``: what to do when the script exited but a process it started still holds
    its stdout/stderr open after ``output_close_grace_seconds``: ``"warn"`` continues (the exit
    code decides), ``"fail"`` fails the script with OutputsLeftOpen.
    ``login_environment``: for ``runas``, run the script as ``su - <user>`` would: through the
    user's login shell (``-l``: ``/etc/profile``, ``~/.profile``), with a fresh environment
    (HOME, USER, LOGNAME, SHELL, PATH, TERM, locale) plus the deployment variables. Off: the
    official agent's ``su <user> -c`` environment (the agent's, with the user's HOME, USER,
    LOGNAME and SHELL).
    """

    kill_grace_seconds: float = 5.0
    outputs_left_open: Literal["warn", "fail"] = "warn"
    output_close_grace_seconds: float = 1.0
    login_environment: bool = True

    def __post_init__(self) -> None:
        for name in ("kill_grace_seconds", "output_close_grace_seconds"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"{name}: {value} must not be negative")
        if self.outputs_left_open not in ("warn", "fail"):
            raise ValueError(
                f"outputs_left_open: {self.outputs_left_open!r} must be 'warn' or 'fail'"
            )


def hook_environment(
    *,
    event: str,
    deployment_id: str,
    application_name: str,
    deployment_group_name: str,
    deployment_group_id: str,
    revision_env: Mapping[str, str | None] = _NO_REVISION_ENV,
) -> dict[str, str]:
    """The deployment variables the official agent gives every hook script, and no others.

    ``revision_env`` holds the revision variables (``BUNDLE_BUCKET``, ``BUNDLE_KEY``,
    ``BUNDLE_VERSION``, ``BUNDLE_ETAG`` for S3; ``BUNDLE_COMMIT`` for GitHub); a ``None`` value
    means "unset" and leaves the variable out.
    """
    env = {
        "LIFECYCLE_EVENT": event,
        "DEPLOYMENT_ID": deployment_id,
        "APPLICATION_NAME": application_name,
        "DEPLOYMENT_GROUP_NAME": deployment_group_name,
        "DEPLOYMENT_GROUP_ID": deployment_group_id,
    }
    for name, value in revision_env.items():
        if name not in REVISION_VARIABLES:
            raise ValueError(
                f"revision_env: {name!r} is not a revision variable "
                f"(one of {', '.join(REVISION_VARIABLES)})"
            )
        if value is not None:
            env[name] = value
    return env


def run_scripts(
    scripts: Sequence[Script],
    *,
    event: str,
    archive_dir: Path,
    env: Mapping[str, str],
    script_log: ScriptLog,
    on_output: OnOutput | None = None,
    settings: HookSettings = HookSettings(),
) -> None:
    """Run the scripts of lifecycle ``event`` in order; stop at the first failure.

    Scripts are found under ``archive_dir`` and get ``os.environ`` plus ``env`` (the deployment
    variables, see :func:`hook_environment`). Every output line goes to ``script_log`` and, as it
    arrives, to ``on_output(stream, line)`` (``"stdout"``/``"stderr"``, no trailing newline).

    Raises :class:`ScriptError` with the official code (``LifecycleErrorCode`` value) and message,
    ``script`` set to the location and ``log_tail`` to the tail of ``script_log``.
    """
    if not scripts:
        return
    inherited = {k: v for k, v in os.environ.items() if k not in REVISION_VARIABLES}
    location = ""
    try:
        with script_log.batch():
            script_log.event(event)
            for script in scripts:
                location = script.location.strip()
                _run_script(
                    script,
                    location,
                    archive_dir=Path(archive_dir),
                    inherited=inherited,
                    deployment_env=env,
                    script_log=script_log,
                    on_output=on_output,
                    settings=settings,
                )
    except ScriptError:
        raise
    except Exception as exc:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        raise ScriptError(
            LifecycleErrorCode.UNKNOWN_ERROR.value,
            message,
            script=location,
            log_tail=script_log.tail,
        ) from exc


# --- one script ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Launch:
    """How to start one script: command line, environment and the identity to switch to."""

    argv: list[str]
    env: dict[str, str]
    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


@dataclass(frozen=True)
class _Outcome:
    """How a script ended: exit status (None if it timed out), and streams left open."""

    returncode: int | None
    timed_out: bool = False
    left_open: tuple[str, ...] = field(default=())


def _run_script(
    script: Script,
    location: str,
    *,
    archive_dir: Path,
    inherited: Mapping[str, str],
    deployment_env: Mapping[str, str],
    script_log: ScriptLog,
    on_output: OnOutput | None,
    settings: HookSettings,
) -> None:
    def fail(code: LifecycleErrorCode, message: str) -> ScriptError:
        return ScriptError(code.value, message, script=location, log_tail=script_log.tail)

    def emit(stream: str, text: str, newline: bool) -> None:
        script_log.output(stream, text + "\n" if newline else text)
        if on_output is not None:
            on_output(stream, text.removesuffix("\r"))

    runas = (script.runas or "").strip() or None
    subject = f"Script at specified location: {location}"
    failed = f"{subject} run as user {runas} failed" if runas else f"{subject} failed"

    script_log.script(location)
    path = _script_path(archive_dir, location)
    if path is None:
        raise fail(
            LifecycleErrorCode.SCRIPT_MISSING,
            f"Script location {location!r} points outside the revision "
            f"({os.path.realpath(os.path.join(archive_dir, location.lstrip('/')))} is not under "
            f"{archive_dir}); a hook script must be a file of the bundle",
        )
    if not os.path.exists(path):  # False, not an error, for a name too long as well
        raise fail(
            LifecycleErrorCode.SCRIPT_MISSING,
            f"Script does not exist at specified location: {path}",
        )
    if path.is_dir():
        raise fail(
            LifecycleErrorCode.SCRIPT_FAILED,
            f"{failed}: {path} is a directory, not a script",
        )
    if not os.access(path, os.X_OK):
        logger.warning("script %s is not executable; setting its execute bits", path)
        try:
            path.chmod(path.stat().st_mode | 0o111)
        except OSError as exc:
            raise fail(
                LifecycleErrorCode.SCRIPT_NOT_EXECUTABLE,
                f"Unable to set script at specified location: {location} as executable",
            ) from exc

    launch = _plan(script, path, runas, inherited, deployment_env, settings, failed, fail)
    try:
        proc = _spawn(launch)
    except OSError as exc:
        # The official wording, with the errno's name where the official agent has Ruby's
        # exception class (Errno::EACCES).
        name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        where = f": {exc.filename}" if exc.filename else ""
        raise fail(
            LifecycleErrorCode.SCRIPT_FAILED,
            f"{failed} with error {name} with message {exc.strerror or exc}{where}",
        ) from exc

    outcome = _supervise(proc, float(script.timeout), emit, settings, script_log.flush)

    if outcome.timed_out:
        raise fail(
            LifecycleErrorCode.SCRIPT_TIMED_OUT,
            f"{subject} failed to complete in {script.timeout} seconds",
        )
    if outcome.left_open:
        if settings.outputs_left_open == "fail":
            raise fail(
                LifecycleErrorCode.OUTPUTS_LEFT_OPEN,
                f"{subject} failed to close {outcome.left_open[0].upper()}",
            )
        streams = " and ".join(outcome.left_open)
        emit(
            "stderr",
            f"OpenDeploy: the script exited but a process it started still holds its {streams} "
            "open; continuing without waiting (the official agent would wait for the full "
            "timeout and fail with OutputsLeftOpen). Redirect the output of background "
            "processes, e.g. `cmd > /dev/null 2>&1 &`.",
            True,
        )
    returncode = outcome.returncode
    if returncode is not None and returncode < 0:
        raise fail(
            LifecycleErrorCode.SCRIPT_FAILED,
            f"{failed}: killed by signal {_signal_name(-returncode)}",
        )
    if returncode:
        raise fail(LifecycleErrorCode.SCRIPT_FAILED, f"{failed} with exit code {returncode}")


def _script_path(archive_dir: Path, location: str) -> Path | None:
    """The script's path under ``archive_dir``; None if it, symlinks resolved, leaves it.

    As the official agent (``File.join``), an absolute location is joined under the archive;
    unlike it, ``..`` or a link that climbs out is refused, so no file outside the revision is
    run or made executable.
    """
    path = os.path.abspath(os.path.join(archive_dir, location.lstrip("/")))
    root = os.path.realpath(archive_dir)
    real = os.path.realpath(path)
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        return None
    return Path(path)


def _plan(
    script: Script,
    path: Path,
    runas: str | None,
    inherited: Mapping[str, str],
    deployment_env: Mapping[str, str],
    settings: HookSettings,
    failed: str,
    fail: Callable[[LifecycleErrorCode, str], ScriptError],
) -> _Launch:
    """Decide the command line, environment and identity for one script."""
    euid = os.geteuid()
    if runas is None:
        argv = [str(path)]
        if script.sudo and euid != 0:
            sudo = shutil.which("sudo")
            if sudo is None:
                raise fail(
                    LifecycleErrorCode.SCRIPT_FAILED,
                    f"{failed}: sudo: true needs the sudo command, which is not installed "
                    f"(the agent runs as uid {euid}, not root)",
                )
            # -n: fail at once instead of waiting for a password nobody can type.
            argv = [sudo, "-n", "--", str(path)]
        return _Launch(argv, {**inherited, **deployment_env})

    try:
        account = pwd.getpwnam(runas)
    except KeyError:
        raise fail(
            LifecycleErrorCode.SCRIPT_FAILED,
            f"{failed}: runas: user {runas!r} does not exist on this host",
        ) from None
    if account.pw_uid != euid and euid != 0:
        raise fail(
            LifecycleErrorCode.SCRIPT_FAILED,
            f"{failed}: the agent runs as uid {euid}, and only an agent running as root can "
            f"run a script as another user",
        )
    groups = os.getgrouplist(account.pw_name, account.pw_gid)
    obstacle = _obstacle(path, account.pw_uid, groups)
    if obstacle is not None:
        raise fail(
            LifecycleErrorCode.SCRIPT_FAILED,
            f"{failed}: user {runas} cannot reach the script {path}: {obstacle}. Put the "
            "deployment root (root_dir in the agent configuration) where every runas user can "
            "enter it, such as the official /opt/codedeploy-agent/deployment-root",
        )
    identity = {"HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name}
    if settings.login_environment:
        shell = _login_shell(account.pw_shell)
        kept = {name: inherited[name] for name in _LOGIN_KEPT if name in inherited}
        kept |= {name: value for name, value in inherited.items() if name.startswith("LC_")}
        path_var = _ROOT_PATH if account.pw_uid == 0 else _USER_PATH
        env = {**kept, **identity, "SHELL": shell, "PATH": path_var, **deployment_env}
        argv = [shell, "-l", "-c", _LOGIN_EXEC, str(path)]
    else:
        identity["SHELL"] = account.pw_shell or "/bin/sh"
        env = {**inherited, **identity, **deployment_env}
        argv = [str(path)]
    if account.pw_uid == euid:
        return _Launch(argv, env)
    return _Launch(argv, env, user=account.pw_uid, group=account.pw_gid, extra_groups=groups)


def _login_shell(shell: str) -> str:
    """The user's shell if it can run a script, else ``/bin/sh`` (service accounts: nologin)."""
    if shell and os.path.basename(shell) not in _NO_LOGIN_SHELLS and os.access(shell, os.X_OK):
        return shell
    return "/bin/sh"


def _obstacle(path: Path, uid: int, groups: Sequence[int]) -> str | None:
    """What keeps ``uid`` (in ``groups``) from running ``path``, judged by mode bits; or None.

    Only a diagnosis ahead of the exec error: an object with a POSIX ACL is given the benefit
    of the doubt (its ACL may let the user in), and root is never stopped.
    """
    if uid == 0:
        return None
    needs = [(parent, os.X_OK, "enter") for parent in reversed(path.parents)]
    needs.append((path, os.R_OK, "read"))
    for target, bit, verb in needs:
        try:
            info = target.stat()
        except OSError:
            return None  # let the exec report it
        if info.st_uid == uid:
            allowed = info.st_mode & (bit << 6)
        elif info.st_gid in groups:
            allowed = info.st_mode & (bit << 3)
        else:
            allowed = info.st_mode & bit
        if allowed or _has_acl(target):
            continue
        try:
            owner = pwd.getpwuid(info.st_uid).pw_name
        except KeyError:
            owner = str(info.st_uid)
        kind = "directory" if target.is_dir() else "file"
        return (
            f"the {kind} {target} (mode {stat.S_IMODE(info.st_mode):04o}, owner {owner}) "
            f"does not let the user {verb} it"
        )
    return None


def _has_acl(path: Path) -> bool:
    try:
        return "system.posix_acl_access" in os.listxattr(path)
    except OSError:
        return False


def _spawn(launch: _Launch) -> subprocess.Popen[bytes]:
    """Start the script in its own session and process group, stdin from /dev/null."""

    def popen(argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=launch.env,
            start_new_session=True,
            close_fds=True,
            user=launch.user,
            group=launch.group,
            extra_groups=launch.extra_groups,
        )

    try:
        return popen(launch.argv)
    except OSError as exc:
        # No "#!" line and not a binary: run it with /bin/sh, as a shell would.
        if exc.errno != errno.ENOEXEC or len(launch.argv) != 1:
            raise
        return popen(["/bin/sh", *launch.argv])


def _supervise(
    proc: subprocess.Popen[bytes],
    timeout: float,
    emit: Callable[[str, str, bool], None],
    settings: HookSettings,
    flush_log: Callable[[], None] = lambda: None,
) -> _Outcome:
    """Stream the output of ``proc`` until it ends, times out, or leaves its output open.

    ``flush_log`` is called after each read of output has been emitted, line by line."""
    deadline = time.monotonic() + timeout
    exited_at: float | None = None
    pump: _OutputPump | None = None
    flush = True
    try:
        pump = _OutputPump(proc, emit, flush_log)
        while True:
            now = time.monotonic()
            returncode = proc.poll()
            if returncode is not None:
                if not pump.open_streams:
                    return _Outcome(returncode)
                if exited_at is None:
                    exited_at = now
                limit = min(exited_at + settings.output_close_grace_seconds, deadline)
                if now >= limit:
                    left_open = pump.open_streams
                    pump.hand_off(until=deadline)
                    return _Outcome(returncode, left_open=left_open)
            elif now >= deadline:
                _terminate_group(proc, pump, settings)
                return _Outcome(None, timed_out=True)
            else:
                limit = deadline
            pump.wait(limit - now)
    except BaseException:
        # Never leave a hook running behind an error of ours (or a raising on_output).
        flush = False
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        if pump is not None:
            pump.close(flush=flush)


def _terminate_group(
    proc: subprocess.Popen[bytes], pump: _OutputPump, settings: HookSettings
) -> None:
    """SIGTERM the script's process group, SIGKILL it after the grace, collect what it wrote."""
    pgid = proc.pid
    _signal_group(pgid, signal.SIGTERM)
    grace_end = time.monotonic() + settings.kill_grace_seconds
    while True:
        proc.poll()
        remaining = grace_end - time.monotonic()
        if remaining <= 0 or not _group_alive(pgid):
            break
        # Keep reading: a TERM handler's last words belong in scripts.log.
        pump.wait(min(remaining, _POLL_SECONDS))
    if _group_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)
    proc.wait()
    drain_end = time.monotonic() + settings.output_close_grace_seconds
    while pump.open_streams and (remaining := drain_end - time.monotonic()) > 0:
        pump.wait(remaining)
    if pump.open_streams:
        # Held by a process that left the group (setsid): the deadline has passed, so close
        # the pipes now, as the official agent does once it gives up.
        pump.hand_off(until=time.monotonic())


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is left in process group ``pgid``.

    Zombies count as dead: in containers whose PID 1 does not reap orphans they stay forever.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        pids = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_name(signum: int) -> str:
    try:
        return f"{signal.Signals(signum).name} ({signum})"
    except ValueError:
        return str(signum)


# --- output ----------------------------------------------------------------------------------


class _LineSplitter:
    """Turns the bytes of one stream into lines, bounded to :data:`MAX_LINE_CHARS` each."""

    def __init__(self, name: str, emit: Callable[[str, str, bool], None]) -> None:
        self.name = name
        self._emit = emit
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        self._split(self._decoder.decode(data))

    def finish(self) -> None:
        """End of stream: a last line without newline is passed on without one."""
        self._split(self._decoder.decode(b"", final=True))
        if self._parts:
            self._line("".join(self._parts), terminated=False)
            self._parts.clear()
            self._size = 0

    def _split(self, text: str) -> None:
        # The unfinished line is kept as a list of parts: a script writing one character at a
        # time must not cost a copy of the whole line per character.
        *complete, rest = text.split("\n")
        for line in complete:
            self._parts.append(line)
            self._line("".join(self._parts), terminated=True)
            self._parts.clear()
            self._size = 0
        if not rest:
            return
        self._parts.append(rest)
        self._size += len(rest)
        if self._size >= MAX_LINE_CHARS:
            pending = "".join(self._parts)
            while len(pending) >= MAX_LINE_CHARS:
                self._emit(self.name, pending[:MAX_LINE_CHARS], True)
                pending = pending[MAX_LINE_CHARS:]
            self._parts = [pending] if pending else []
            self._size = len(pending)

    def _line(self, text: str, *, terminated: bool) -> None:
        while len(text) > MAX_LINE_CHARS:
            self._emit(self.name, text[:MAX_LINE_CHARS], True)
            text = text[MAX_LINE_CHARS:]
        self._emit(self.name, text, terminated)


class _OutputPump:
    """Reads a process's stdout and stderr as they come, waking up when the process exits."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        emit: Callable[[str, str, bool], None],
        flush: Callable[[], None] = lambda: None,
    ):
        self._flush = flush
        self._selector = selectors.DefaultSelector()
        self._files: dict[int, IO[bytes]] = {}
        for name, file in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            assert file is not None
            os.set_blocking(file.fileno(), False)
            self._files[file.fileno()] = file
            self._selector.register(file.fileno(), selectors.EVENT_READ, _LineSplitter(name, emit))
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            pass  # no pidfd (old kernel, other OS): poll the process instead
        else:
            self._selector.register(self._pidfd, selectors.EVENT_READ, None)
        self._exited = False

    @property
    def open_streams(self) -> tuple[str, ...]:
        """Names of the streams not at end-of-file yet, stdout first."""
        names = [
            key.data.name
            for key in self._selector.get_map().values()
            if isinstance(key.data, _LineSplitter)
        ]
        return tuple(sorted(names, key=("stdout", "stderr").index))

    def wait(self, timeout: float) -> None:
        """Handle output for up to ``timeout`` seconds; return early when the process exits."""
        if self._pidfd is None and not self._exited:
            timeout = min(timeout, _POLL_SECONDS)
        fed = False
        for key, _events in self._selector.select(max(timeout, 0.0)):
            if key.data is None:
                self._close_pidfd()
                self._exited = True
                continue
            splitter: _LineSplitter = key.data
            try:
                data = os.read(key.fd, _READ_SIZE)
            except BlockingIOError:
                continue
            fed = True
            if data:
                splitter.feed(data)
            else:
                splitter.finish()
                self._selector.unregister(key.fd)
                self._files.pop(key.fd).close()
        if fed:
            self._flush()

    def hand_off(self, *, until: float) -> None:
        """Stop reading the open streams; a daemon thread drains them until their holder ends
        or ``until`` (a ``time.monotonic()`` value) passes, then closes them."""
        keys = [self._selector.unregister(fd) for fd in list(self._files)]
        files = [self._files.pop(key.fd) for key in keys]
        if files and until <= time.monotonic():
            for file in files:
                file.close()
        elif files:
            threading.Thread(
                target=_discard_until_eof,
                args=(files, until),
                name="hook-output-drain",
                daemon=True,
            ).start()
        for key in keys:
            key.data.finish()

    def close(self, *, flush: bool = True) -> None:
        """Release everything; with ``flush``, partial lines still buffered are passed on."""
        keys = [self._selector.unregister(fd) for fd in list(self._files)]
        files = [self._files.pop(key.fd) for key in keys]
        try:
            if flush:
                for key in keys:
                    key.data.finish()
        finally:
            for file in files:
                file.close()
            self._close_pidfd()
            self._selector.close()

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            self._selector.unregister(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None


def _discard_until_eof(files: list[IO[bytes]], until: float) -> None:
    """Read and drop the output of a process a script left behind until it closes it or
    ``until`` passes; then close what is left (its next write gets SIGPIPE/EPIPE)."""
    with selectors.DefaultSelector() as selector:
        for file in files:
            selector.register(file.fileno(), selectors.EVENT_READ, file)
        try:
            while selector.get_map() and (remaining := until - time.monotonic()) > 0:
                for key, _events in selector.select(remaining):
                    try:
                        data = os.read(key.fd, _READ_SIZE)
                    except BlockingIOError:
                        continue
                    if not data:
                        selector.unregister(key.fd)
                        key.data.close()
        finally:
            for key in list(selector.get_map().values()):
                selector.unregister(key.fd)
                key.data.close()
