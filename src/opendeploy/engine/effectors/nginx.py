"""nginx as the load balancer of BlockTraffic and AllowTraffic: an upstream block, rewritten.

nginx has no runtime API: a pool is an ``upstream`` block in a file OpenDeploy owns (included by
nginx's configuration), and every change is a rewrite of that block's ``server`` lines, checked
with ``nginx -t`` (a refusal puts the old file back and names it), then ``nginx -s reload``.
A reload is graceful: the master starts new workers with the new configuration and tells the old
ones to stop accepting and exit once their in-flight requests are done.

- BlockTraffic marks the server ``down`` and reloads. nginx counts no in-flight requests per
  server, so the drain waits for what it can see: the worker processes that ran before the
  reload (children of the master, from its pid file) exiting, which they do once every request
  they were serving has finished. That covers requests to every server of that nginx, not only
  the drained one, so it is a conservative wait, bounded by the drain timeout (after which the
  old workers go on finishing their requests: nginx cuts nothing).
- AllowTraffic removes ``down``, reloads, then plays the health check nginx OSS lacks: it GETs
  the server's address (``health_path``) until it answers 2xx/3xx, bounded by the healthy timeout.
- Weights are ``weight=N``; 0 is ``down`` (nginx refuses ``weight=0``).
- The state read back is the file's ``server`` lines (what nginx serves after its last reload).

A change nginx does not take (``nginx -t`` refuses it, nginx is not running, the reload fails)
puts the file back as it was, so that the file keeps saying what nginx serves. Writers are
serialised per file: a lock in this process and an ``flock`` on ``FILE.lock`` for other server
replicas. The file is written atomically (a temporary file renamed over it).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from opendeploy.engine.effectors import EffectorError, StepProgress, given_up
from opendeploy.engine.effectors.load_balancers import NginxPool, TargetGroup
from opendeploy.engine.effectors.traffic import HostTraffic

#: Debian's pid file, when the configuration has no ``pid`` directive.
DEFAULT_PID_FILE = Path("/run/nginx.pid")
#: How often a drain or a health wait looks again.
POLL_SECONDS = 0.05
#: A progress line (which also renews the step's lease) at most this often.
PROGRESS_EVERY_SECONDS = 2.0
#: How long ``nginx -t`` or ``nginx -s reload`` may take.
COMMAND_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class UpstreamServer:
    """One ``server`` line of an upstream block."""

    address: str
    down: bool
    weight: int


_SERVER = re.compile(r"(?m)^(?P<indent>[ \t]*)server\s+(?P<address>[^\s;]+)(?P<params>[^;]*);")


def _block(text: str, upstream: str, where: Path) -> tuple[int, int]:
    """The start and end offsets of ``upstream``'s body (between its braces) in ``text``."""
    m = re.search(rf"(?m)^\s*upstream\s+{re.escape(upstream)}\s*\{{", text)
    if m is None:
        raise EffectorError(f"{where} has no 'upstream {upstream} {{ … }}' block")
    end = text.find("}", m.end())
    if end < 0:
        raise EffectorError(f"{where}: the upstream {upstream} block is not closed")
    return m.end(), end


def parse_servers(text: str, upstream: str, where: Path) -> list[UpstreamServer]:
    """The ``server`` lines of ``upstream`` in ``text`` (a config file's content)."""
    start, end = _block(text, upstream, where)
    out = []
    for m in _SERVER.finditer(text, start, end):
        params = m["params"].split()
        weights = [p.removeprefix("weight=") for p in params if p.startswith("weight=")]
        out.append(
            UpstreamServer(m["address"], "down" in params, int(weights[-1]) if weights else 1)
        )
    return out


def rewrite(
    text: str, upstream: str, where: Path, changes: Mapping[str, tuple[bool, int | None]]
) -> str:
    """``text`` with the ``server`` lines of ``changes`` (address -> (down, weight or None to
    keep)) rewritten; their other parameters are kept. A missing address is an EffectorError."""
    start, end = _block(text, upstream, where)
    seen: set[str] = set()

    def edit(m: re.Match[str]) -> str:
        change = changes.get(m["address"])
        if change is None:
            return m[0]
        seen.add(m["address"])
        down, weight = change
        params = m["params"].split()
        kept = [p for p in params if p != "down" and not (weight is not None and "weight=" in p)]
        if weight is not None and weight != 1:
            kept.append(f"weight={weight}")
        if down:
            kept.append("down")
        return f"{m['indent']}server {m['address']}{''.join(' ' + p for p in kept)};"

    body = _SERVER.sub(edit, text[start:end])
    missing = sorted(set(changes) - seen)
    if missing:
        raise EffectorError(f"upstream {upstream} in {where} has no server {', '.join(missing)}")
    return text[:start] + body + text[end:]


class NginxDriver:
    """The :class:`~opendeploy.engine.effectors.traffic.PoolDriver` of nginx target groups."""

    def __init__(self) -> None:
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def drain(self, group: TargetGroup, host: str, progress: StepProgress) -> str:
        pool, address = _pool(group), group.server_of(host)
        started = time.monotonic()
        old = self._change(pool, {address: (True, None)})
        what = f"draining {address} of {pool.describe()}"
        try:
            left = _wait(
                lambda: not _alive(old, pool),
                group.drain_timeout_seconds,
                progress,
                lambda: f"{pool.describe()}: old workers still finishing requests",
                what,
            )
            given_up(progress, f"{pool.describe()}: {address} drained", what)
        except EffectorError:
            if progress.cancelled():
                self._change(pool, {address: (False, None)})  # see effectors.given_up
            raise
        took = time.monotonic() - started
        note = "" if left else ", old workers still finishing requests after the drain timeout"
        return (
            f"{host} out of target group {group.name} (nginx upstream {pool.upstream} server "
            f"{address} down, drained in {took:.1f} s{note})"
        )

    def ready(self, group: TargetGroup, host: str, progress: StepProgress) -> str:
        pool, address = _pool(group), group.server_of(host)
        started = time.monotonic()
        self._change(pool, {address: (False, None)})
        answer: list[str] = ["no answer yet"]
        healthy = _wait(
            lambda: _probe(address, pool.health_path, answer),
            group.healthy_timeout_seconds,
            progress,
            lambda: f"{address}{pool.health_path}: {answer[0]}, waiting for it to answer",
            f"waiting for {address} of {pool.describe()} to turn healthy",
        )
        if not healthy:
            raise EffectorError(
                f"{address} ({host}) of {pool.describe()} did not answer GET {pool.health_path} "
                f"with 2xx/3xx within {group.healthy_timeout_seconds:g} s (last: {answer[0]})"
            )
        took = time.monotonic() - started
        return (
            f"{host} in target group {group.name} (nginx upstream {pool.upstream} server "
            f"{address}, answering after {took:.1f} s)"
        )

    def set_weights(
        self, group: TargetGroup, weights: Mapping[str, int], progress: StepProgress
    ) -> str:
        pool = _pool(group)
        changes: dict[str, tuple[bool, int | None]] = {}
        for host, weight in weights.items():
            if not 0 <= weight <= 256:
                raise EffectorError(f"weight {weight} of {host} is outside 0..256")
            # nginx refuses weight=0: a host of weight 0 is ``down``.
            changes[group.server_of(host)] = (weight == 0, weight or None)
        self._change(pool, changes)
        done = ", ".join(f"{h} {w}" for h, w in weights.items())
        return f"weights in target group {group.name} (nginx upstream {pool.upstream}): {done}"

    def state(self, group: TargetGroup) -> list[HostTraffic]:
        pool = _pool(group)
        text = _read(pool.file)
        return [
            HostTraffic(
                target_group=group.name,
                host=group.instance_of(s.address),
                serving=not s.down,
                state="down" if s.down else "up",
                weight=0 if s.down else s.weight,
            )
            for s in parse_servers(text, pool.upstream, pool.file)
        ]

    # --- the rewrite ------------------------------------------------------------------------

    def _change(self, pool: NginxPool, changes: Mapping[str, tuple[bool, int | None]]) -> set[int]:
        """Rewrite the servers of ``changes``, check and reload; the workers before the reload.

        Always reloads, even when the file already says so: a step run again after a crash
        between its write and its reload must still get nginx to apply it."""
        with self._lock(pool.file), _flock(pool.file):
            before = _read(pool.file)
            after = rewrite(before, pool.upstream, pool.file, changes)
            if after != before:
                _write_atomically(pool.file, after)
            # Whatever stops the change from reaching nginx (a refused configuration, nginx not
            # running, a failed reload) puts the file back: it says what nginx serves.
            try:
                _nginx(pool, "-t")
                workers = _children(_master_pid(pool))
                _nginx(pool, "-s", "reload")
            except EffectorError:
                if after != before:
                    _write_atomically(pool.file, before)
                raise
        return workers

    def _lock(self, path: Path) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(path.resolve(), threading.Lock())


def _pool(group: TargetGroup) -> NginxPool:
    if not isinstance(group.pool, NginxPool):
        raise EffectorError(f"target group {group.name} is not an nginx pool")
    return group.pool


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise EffectorError(f"cannot read nginx upstream file {path}: {e.strerror}") from None


def _write_atomically(path: Path, text: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, path.stat().st_mode & 0o7777)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise EffectorError(f"cannot write nginx upstream file {path}: {e.strerror}") from None


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Exclusive across processes (another server replica rewriting the same file)."""
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise EffectorError(f"cannot lock nginx upstream file {path}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _nginx(pool: NginxPool, *args: str) -> None:
    """Run ``nginx [-p PREFIX] -c CONFIG -e stderr ARGS``; its refusal is an EffectorError
    naming the upstream file and what nginx said."""
    command = [pool.binary, *(["-p", str(pool.prefix)] if pool.prefix else [])]
    command += ["-c", str(pool.config), "-e", "stderr", *args]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EffectorError(f"cannot run {' '.join(command)}: {e}") from None
    if done.returncode != 0:
        said = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        what = "refused the configuration" if args == ("-t",) else "refused to reload"
        raise EffectorError(
            f"nginx ({pool.config}) {what} after OpenDeploy changed {pool.file}: {said}"
        )


def _master_pid(pool: NginxPool) -> int:
    path = pool.pid_file or _pid_file_of(pool)
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError) as e:
        why = e.strerror if isinstance(e, OSError) else "no pid in it"
        raise EffectorError(f"cannot reach nginx ({pool.config}): pid file {path}: {why}") from None


def _pid_file_of(pool: NginxPool) -> Path:
    """The ``pid`` directive of nginx's main configuration, relative to its prefix."""
    try:
        text = pool.config.read_text()
    except OSError as e:
        raise EffectorError(
            f"cannot read nginx's configuration {pool.config}: {e.strerror}"
        ) from None
    m = re.search(r"(?m)^\s*pid\s+([^;\s]+)\s*;", text)
    if m is None:
        return DEFAULT_PID_FILE
    path = Path(m[1])
    return path if path.is_absolute() else (pool.prefix or pool.config.parent) / path


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` now (the master's workers)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _parent(int(entry)) == pid:
            out.add(int(entry))
    return out


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (in parentheses) may hold spaces: the fields after it are fixed.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def _alive(workers: set[int], pool: NginxPool) -> bool:
    """Whether any of the workers before the reload still runs (under the same master)."""
    master = _master_pid(pool)
    return any(_parent(pid) == master for pid in workers)


def _probe(address: str, path: str, answer: list[str]) -> bool:
    """One health check of an upstream server: GET ``path``; 2xx/3xx is healthy."""
    try:
        if address.startswith("unix:"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(address.removeprefix("unix:"))
            answer[0] = "accepts connections"
            return True
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "80")
        conn = http.client.HTTPConnection(host.strip("[]"), int(port or 80), timeout=2)
        try:
            conn.request("GET", path)
            status = conn.getresponse().status
        finally:
            conn.close()
    except (OSError, ValueError, http.client.HTTPException) as e:
        answer[0] = str(e) or type(e).__name__
        return False
    answer[0] = f"HTTP {status}"
    return 200 <= status < 400


def _wait(
    ok: Callable[[], bool],
    seconds: float,
    progress: StepProgress,
    waiting: Callable[[], str],
    what: str,
) -> bool:
    """Poll ``ok`` until it holds (True) or ``seconds`` pass (False); EffectorError when the
    step is given up; a progress line now and then."""
    started = reported = time.monotonic()
    while not ok():
        now = time.monotonic()
        if now - started > seconds:
            return False
        if progress.cancelled():
            raise EffectorError(f"{what} was given up")
        if now - reported >= PROGRESS_EVERY_SECONDS:
            progress.report(waiting())
            reported = now
        time.sleep(POLL_SECONDS)
    return True
