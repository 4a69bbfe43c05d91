"""HAProxy as the load balancer of BlockTraffic and AllowTraffic, through its runtime API.

BlockTraffic puts the instance's server in ``drain`` (no new requests; those in flight finish),
polls ``show stat`` until its current sessions (``scur``) are 0 or the target group's drain
timeout runs out, then sets it to ``maint`` (out of rotation, as a deregistered target).
AllowTraffic sets it ``ready`` and polls until HAProxy reports it ``UP`` (a server without health
checks is up at once), bounded by the healthy timeout. Every call is idempotent: draining a
drained server, or readying a ready one, changes nothing. Commands go to the runtime API's unix
socket one per connection (HAProxy answers and closes), with no ``socat``.
"""

from __future__ import annotations

import csv
import io
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from opendeploy.domain.records import LoadBalancerInfo
from opendeploy.engine.effectors import EffectorError, StepProgress
from opendeploy.engine.effectors.load_balancers import LoadBalancerDeclarations, TargetGroup

#: How often a drain or a health wait asks HAProxy again.
POLL_SECONDS = 0.05
#: A progress line (which also renews the step's lease) at most this often.
PROGRESS_EVERY_SECONDS = 2.0


class RuntimeApi:
    """One HAProxy's runtime API on a unix socket."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def command(self, line: str) -> str:
        """Send one command; HAProxy's answer (an error answer raises EffectorError)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(str(self.path))
                s.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as e:
            raise EffectorError(
                f"cannot reach HAProxy's runtime API at {self.path}: {e.strerror or e}"
            ) from None
        answer = b"".join(chunks).decode(errors="replace")
        lowered = answer.lower()
        if lowered.startswith(("no such", "unknown command", "permission denied")) or (
            "require" in lowered and "level" in lowered
        ):
            raise EffectorError(f"HAProxy at {self.path} refused '{line}': {answer.strip()}")
        return answer

    def server_stat(self, backend: str, server: str) -> dict[str, str]:
        """The server's row of ``show stat`` (scur, status …); EffectorError if it has none."""
        text = self.command("show stat").lstrip("# ")
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") == backend and row.get("svname") == server:
                return row
        raise EffectorError(f"HAProxy at {self.path} has no server {backend}/{server}")


class HAProxyTrafficController:
    """The :class:`~opendeploy.engine.effectors.traffic.TrafficController` over the declared
    HAProxy target groups."""

    def __init__(self, declarations: LoadBalancerDeclarations) -> None:
        self.declarations = declarations
        # One step per server at a time: a rerun racing a late original must not interleave.
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def block(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        done = [self._drain(group, host, progress) for group in self._groups(lb)]
        return "; ".join(done)

    def allow(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        done = [self._ready(group, host, progress) for group in self._groups(lb)]
        return "; ".join(done)

    def _groups(self, lb: LoadBalancerInfo) -> list[TargetGroup]:
        if lb.elb_names:
            raise EffectorError(
                f"Classic load balancers ({', '.join(lb.elb_names)}) are not declared on this "
                "server; name target groups in targetGroupInfoList"
            )
        unknown = self.declarations.unknown(list(lb.target_groups))
        if unknown:
            raise EffectorError(
                f"target group {', '.join(unknown)} is not declared on this server "
                f"(declared: {', '.join(sorted(self.declarations.target_groups)) or 'none'})"
            )
        return [self.declarations.target_groups[n] for n in lb.target_groups]

    def _lock(self, group: TargetGroup, server: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((group.name, server), threading.Lock())

    def _drain(self, group: TargetGroup, host: str, progress: StepProgress) -> str:
        api, pool, server = RuntimeApi(group.haproxy.socket), group.haproxy, group.server_of(host)
        where = f"{pool.backend}/{server}"
        with self._lock(group, server):
            started = time.monotonic()
            api.command(f"set server {where} state drain")
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
        api, pool, server = RuntimeApi(group.haproxy.socket), group.haproxy, group.server_of(host)
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


def _sessions(row: dict[str, str]) -> int:
    """The server's current sessions (``scur``)."""
    return int(row.get("scur") or 0)


def _healthy(status: str) -> bool:
    """HAProxy's ``status`` of a server taking traffic (``no check``: no health checks)."""
    return status.startswith(("UP", "no check"))
