"""HAProxy as the load balancer of BlockTraffic and AllowTraffic, through its runtime API.

BlockTraffic puts the instance's server in ``drain`` (no new requests; those in flight finish),
polls ``show stat`` until its current sessions (``scur``) are 0 or the target group's drain
timeout runs out, then sets it to ``maint`` (out of rotation, as a deregistered target); a drain
the engine gave up (a stop, a timeout) sets it back to ``ready`` instead (see ``given_up``).
AllowTraffic sets it ``ready`` and polls until HAProxy reports it ``UP`` (a server without health
checks is up at once), bounded by the healthy timeout. Weights are ``set server … weight N``
(0..256); the state read back is ``show stat``. Every call is idempotent: draining a drained
server, or readying a ready one, changes nothing. Commands go to the runtime API's unix
socket one per connection (HAProxy answers and closes), with no ``socat``.
"""

from __future__ import annotations

import csv
import io
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from opendeploy.engine.effectors import EffectorError, StepProgress, given_up
from opendeploy.engine.effectors.load_balancers import HAProxyPool, TargetGroup
from opendeploy.engine.effectors.traffic import HostTraffic

#: HAProxy's largest server weight.
MAX_WEIGHT = 256

#: How often a drain or a health wait asks HAProxy again.
POLL_SECONDS = 0.05
#: How long to wait before connecting again to a runtime API that is busy.
CONNECT_RETRY_SECONDS = 0.02
#: A progress line (which also renews the step's lease) at most this often.
PROGRESS_EVERY_SECONDS = 2.0


class RuntimeApi:
    """One HAProxy's runtime API on a unix socket."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def command(self, line: str) -> str:
        """Send one command; HAProxy's answer (an error answer raises EffectorError)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                answer = self._exchange(line)
                break
            except BlockingIOError as e:
                # A full accept backlog (EAGAIN on a unix socket): HAProxy is there but busy
                # (many steps at once), so ask again for a little while. A refusal is a dead
                # HAProxy and fails at once.
                if time.monotonic() >= deadline:
                    raise EffectorError(
                        f"cannot reach HAProxy's runtime API at {self.path}: {e.strerror or e}"
                    ) from None
                time.sleep(CONNECT_RETRY_SECONDS)
            except OSError as e:
                raise EffectorError(
                    f"cannot reach HAProxy's runtime API at {self.path}: {e.strerror or e}"
                ) from None
        lowered = answer.lower()
        if lowered.startswith(("no such", "unknown command", "permission denied")) or (
            "require" in lowered and "level" in lowered
        ):
            raise EffectorError(f"HAProxy at {self.path} refused '{line}': {answer.strip()}")
        return answer

    def _exchange(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(self.timeout)
            s.connect(str(self.path))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def stat_rows(self, backend: str) -> list[dict[str, str]]:
        """The ``show stat`` rows of ``backend``'s servers (not its FRONTEND/BACKEND rows)."""
        text = self.command("show stat").lstrip("# ")
        return [
            row
            for row in csv.DictReader(io.StringIO(text))
            if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")
        ]

    def server_stat(self, backend: str, server: str) -> dict[str, str]:
        """The server's row of ``show stat`` (scur, status …); EffectorError if it has none."""
        for row in self.stat_rows(backend):
            if row.get("svname") == server:
                return row
        raise EffectorError(f"HAProxy at {self.path} has no server {backend}/{server}")


class HAProxyDriver:
    """The :class:`~opendeploy.engine.effectors.traffic.PoolDriver` of HAProxy target groups."""

    def __init__(self) -> None:
        # One step per server at a time: a rerun racing a late original must not interleave.
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def drain(self, group: TargetGroup, host: str, progress: StepProgress) -> str:
        return self._drain(group, host, progress)

    def ready(self, group: TargetGroup, host: str, progress: StepProgress) -> str:
        return self._ready(group, host, progress)

    def set_weights(
        self, group: TargetGroup, weights: Mapping[str, int], progress: StepProgress
    ) -> str:
        pool = _pool(group)
        api = RuntimeApi(pool.socket)
        done = []
        for host, weight in weights.items():
            if not 0 <= weight <= MAX_WEIGHT:
                raise EffectorError(f"weight {weight} of {host} is outside 0..{MAX_WEIGHT}")
            where = f"{pool.backend}/{group.server_of(host)}"
            api.command(f"set server {where} weight {weight}")
            done.append(f"{host} {weight}")
        return f"weights in target group {group.name} (HAProxy {pool.backend}): " + ", ".join(done)

    def state(self, group: TargetGroup) -> list[HostTraffic]:
        pool = _pool(group)
        return [
            HostTraffic(
                target_group=group.name,
                host=group.instance_of(row.get("svname", "")),
                serving=_healthy(row.get("status", "")) and int(row.get("weight") or 0) > 0,
                state=row.get("status") or "unknown",
                weight=int(row.get("weight") or 0),
                sessions=_sessions(row),
            )
            for row in RuntimeApi(pool.socket).stat_rows(pool.backend)
        ]

    def _lock(self, group: TargetGroup, server: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((group.name, server), threading.Lock())

    def _drain(self, group: TargetGroup, host: str, progress: StepProgress) -> str:
        pool, server = _pool(group), group.server_of(host)
        api = RuntimeApi(pool.socket)
        where = f"{pool.backend}/{server}"
        with self._lock(group, server):
            started = time.monotonic()
            api.command(f"set server {where} state drain")
            try:
                row, _ = _wait_for(
                    api,
                    pool.backend,
                    server,
                    ok=lambda r: _sessions(r) == 0,
                    seconds=group.drain_timeout_seconds,
                    progress=progress,
                    waiting=lambda r: f"{where}: {_sessions(r)} sessions still open",
                    what=f"draining {where}",
                )
                given_up(progress, f"{where}: drained", f"draining {where}")
            except EffectorError:
                if progress.cancelled():
                    api.command(f"set server {where} state ready")
                raise
            # Past the drain timeout (a deregistration delay), what is still open is cut here.
            api.command(f"set server {where} state maint")
            took = time.monotonic() - started
        left = _sessions(row)
        cut = f", {left} sessions cut after the drain timeout" if left else ""
        return (
            f"{host} out of target group {group.name} "
            f"(HAProxy {where}, drained in {took:.1f} s{cut})"
        )

    def _ready(self, group: TargetGroup, host: str, progress: StepProgress) -> str:
        pool, server = _pool(group), group.server_of(host)
        api = RuntimeApi(pool.socket)
        where = f"{pool.backend}/{server}"
        with self._lock(group, server):
            started = time.monotonic()
            api.command(f"set server {where} state ready")
            row, healthy = _wait_for(
                api,
                pool.backend,
                server,
                ok=lambda r: _healthy(r.get("status", "")),
                seconds=group.healthy_timeout_seconds,
                progress=progress,
                waiting=lambda r: f"{where}: {r.get('status')}, waiting for the health check",
                what=f"waiting for {where} to turn healthy",
            )
            took = time.monotonic() - started
        status = row.get("status") or "unknown"
        if not healthy:
            raise EffectorError(
                f"HAProxy did not report {where} healthy within "
                f"{group.healthy_timeout_seconds:g} s (its status: {status})"
            )
        return f"{host} in target group {group.name} (HAProxy {where}, {status} after {took:.1f} s)"


def _wait_for(
    api: RuntimeApi,
    backend: str,
    server: str,
    *,
    ok: Callable[[dict[str, str]], bool],
    seconds: float,
    progress: StepProgress,
    waiting: Callable[[dict[str, str]], str],
    what: str,
) -> tuple[dict[str, str], bool]:
    """Poll the server's ``show stat`` row until ``ok`` (True), ``seconds`` pass (False) or the
    step is given up (EffectorError); a progress line now and then. Returns the last row."""
    started = reported = time.monotonic()
    while not ok(row := api.server_stat(backend, server)):
        now = time.monotonic()
        if now - started > seconds:
            return row, False
        if progress.cancelled():
            raise EffectorError(f"{what} was given up")
        if now - reported >= PROGRESS_EVERY_SECONDS:
            progress.report(waiting(row))
            reported = now
        time.sleep(POLL_SECONDS)
    return row, True


def _pool(group: TargetGroup) -> HAProxyPool:
    if not isinstance(group.pool, HAProxyPool):
        raise EffectorError(f"target group {group.name} is not an HAProxy pool")
    return group.pool


def _sessions(row: dict[str, str]) -> int:
    """The server's current sessions (``scur``)."""
    return int(row.get("scur") or 0)


def _healthy(status: str) -> bool:
    """HAProxy's ``status`` of a server taking traffic (``no check``: no health checks)."""
    return status.startswith(("UP", "no check"))
