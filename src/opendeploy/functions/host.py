"""Function processes: warm pools per (function, version), timeouts, memory bounds, invocation.

Each process is ``python -m awslambdaric <handler>`` (AWS's runtime interface client, run by the
server's own interpreter, so boto3 is importable as in AWS's Python runtimes), in the function's
unpacked code directory, talking to a :class:`~opendeploy.functions.runtime_api.RuntimeApi` of
its own that listens before the process starts (the client exits at once if it cannot connect).

- **Pools**: processes are kept warm per (function, version, code revision) and reused; at most
  ``max_concurrency`` run at once per pool and ``max_processes`` in all (the longest idle one
  of another pool is stopped to make room); an invocation that finds them all busy waits for one
  (up to ``queue_timeout_seconds``, then TooManyRequestsException). Idle ones are stopped after
  ``idle_seconds``. A changed ``$LATEST`` (new revision id) gets new processes.
- **Timeout**: counted from the moment the process takes the invocation (initialisation has its
  own ``init_timeout_seconds``, as Lambda's init phase). At the timeout the whole process group
  is killed and the caller gets Lambda's ``Sandbox.Timedout`` error.
- **Memory**: ``RLIMIT_AS`` of ``MemorySize`` MiB plus ``memory_headroom_mib`` (thread stacks,
  allocator arenas: address space is more than resident memory); past it allocations fail
  (``MemoryError`` in the function). ``MALLOC_ARENA_MAX=2`` keeps the allocator's reservations
  small.
- **Cleanup**: each process is in its own process group, dies with the server
  (``PR_SET_PDEATHSIG``, also when the server is SIGKILLed) and is killed by :meth:`close`.
- **Identity**: the environment gives boto3 what it needs to call this server (endpoint,
  region, the function host's own access key), as Lambda gives a function its role.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opendeploy.functions.errors import TooManyRequestsError
from opendeploy.functions.runtime_api import Invocation, RuntimeApi
from opendeploy.revisions.archive import unpack_bundle
from opendeploy.revisions.blobstore import BlobStore
from opendeploy.store.functions import FunctionVersion

log = logging.getLogger("opendeploy.functions")

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, kw_only=True)
class HostSettings:
    """How the host runs function processes. Defaults are visible here and nowhere else."""

    #: Unpacked code (``code/<sha256>/``) and each function's output (``logs/<name>.log``).
    root: Path
    #: What function processes reach this server with (``AWS_ENDPOINT_URL``, region, key).
    endpoint: str
    region: str
    access_key_id: str
    secret_access_key: str
    ca_bundle: Path | None = None
    python: str = sys.executable
    #: Processes running at once per (function, version).
    max_concurrency: int = 4
    #: Processes of all functions together; the longest idle one is stopped to make room.
    max_processes: int = 32
    #: How long an invocation waits for a busy pool before TooManyRequestsException.
    queue_timeout_seconds: float = 30.0
    #: A warm process idle this long is stopped.
    idle_seconds: float = 300.0
    #: A process that has not asked for its first invocation after this long is given up on.
    init_timeout_seconds: float = 10.0
    #: Address space allowed beyond the function's MemorySize (see the module docstring).
    memory_headroom_mib: int = 64


@dataclass(frozen=True)
class InvokeResult:
    """What an invocation produced: the payload, Lambda's ``X-Amz-Function-Error`` (or None) and
    the version that ran."""

    payload: bytes
    function_error: str | None
    executed_version: str


#: How often an invocation waiting for room on a full host looks again.
_FULL_HOST_POLL = 0.05

_PoolKey = tuple[str, str, str]  # function name, version, revision id


@dataclass(eq=False)
class _Process:
    key: _PoolKey
    api: RuntimeApi
    process: asyncio.subprocess.Process | None = None
    init_error: bytes | None = None
    last_used: float = field(default_factory=time.monotonic)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    #: Killed (a timeout, shutdown): never handed another invocation, even before it is reaped.
    killed: bool = False

    @property
    def alive(self) -> bool:
        return (
            not self.killed
            and not self.api.broken
            and self.process is not None
            and self.process.returncode is None
        )


@dataclass
class _Pool:
    idle: list[_Process] = field(default_factory=list)
    running: int = 0  # processes in the pool (idle or busy)
    freed: asyncio.Condition = field(default_factory=asyncio.Condition)


class FunctionHost:
    """Runs invocations in warm function processes (see the module docstring)."""

    def __init__(self, settings: HostSettings, blobs: BlobStore) -> None:
        self.settings = settings
        self._blobs = blobs
        self._pools: dict[_PoolKey, _Pool] = {}
        self._processes: set[_Process] = set()
        self._code_locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[object]] = set()
        #: One per process until it exits (and is reaped: no zombie, no open transport).
        self._watchers: set[asyncio.Future[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # -- invocation ------------------------------------------------------------------------

    async def invoke(
        self,
        record: FunctionVersion,
        payload: bytes,
        *,
        invoked_arn: str,
        client_context: str | None = None,
        queue_timeout: float | None = -1.0,
    ) -> InvokeResult:
        """Run one invocation of ``record`` and return its result (errors of the function are
        results too: Lambda's payload with ``function_error`` set).

        ``queue_timeout``: how long to wait for a busy pool (default: the settings'; None:
        as long as it takes)."""
        self._start_reaper()
        key = (record.function_name, record.version, record.revision_id)
        pool = self._pools.setdefault(key, _Pool())
        timeout = float(record.config.get("Timeout", 3))
        invocation = Invocation(
            request_id=str(uuid.uuid4()),
            payload=payload,
            invoked_arn=invoked_arn,
            timeout_seconds=timeout,
            client_context=client_context,
        )
        if queue_timeout is not None and queue_timeout < 0:
            queue_timeout = self.settings.queue_timeout_seconds
        for attempt in (1, 2):
            proc = await self._acquire(record, pool, queue_timeout)
            try:
                outcome = await self._run(proc, invocation)
            finally:
                await self._release(proc, pool)
            if outcome is not None:
                return InvokeResult(outcome[0], outcome[1], record.version)
            # A warm process that died before taking the invocation: it never ran, so another
            # process may run it (once).
            log.info(
                "function process gone before its invocation function=%s version=%s attempt=%d",
                record.function_name,
                record.version,
                attempt,
            )
            invocation = Invocation(
                request_id=invocation.request_id,
                payload=payload,
                invoked_arn=invoked_arn,
                timeout_seconds=timeout,
                client_context=client_context,
            )
        body, error = self._exit_result(proc, invocation)
        return InvokeResult(body, error, record.version)

    def invoke_later(self, record: FunctionVersion, payload: bytes, *, invoked_arn: str) -> None:
        """An ``Event`` invocation: run in the background, its result only logged."""

        async def run() -> None:
            try:
                # Queued as Lambda queues events: a busy pool delays them, never drops them
                # (deployment hooks come this way).
                result = await self.invoke(
                    record, payload, invoked_arn=invoked_arn, queue_timeout=None
                )
            except Exception as exc:
                log.warning(
                    "event invocation failed function=%s version=%s error=%s",
                    record.function_name,
                    record.version,
                    exc,
                )
                return
            if result.function_error:
                log.info(
                    "event invocation function=%s version=%s function_error=%s payload=%s",
                    record.function_name,
                    record.version,
                    result.function_error,
                    result.payload[:1000].decode("utf-8", "replace"),
                )

        task: asyncio.Task[object] = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run(self, proc: _Process, invocation: Invocation) -> tuple[bytes, str | None] | None:
        """(payload, function error) of the invocation in ``proc``; None when ``proc`` was a
        warm process that exited before taking it (it may run elsewhere)."""
        proc.api.submit(invocation)
        exited = asyncio.ensure_future(proc.exited.wait())
        try:
            delivered = asyncio.ensure_future(invocation.delivered.wait())
            await asyncio.wait(
                {delivered, exited},
                timeout=self.settings.init_timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            delivered.cancel()
            if not invocation.delivered.is_set():
                if proc.exited.is_set():
                    if proc.api.asked.is_set() and proc.init_error is None:
                        return None  # it had run before: a warm process that went away
                    return self._exit_result(proc, invocation)
                self._kill(proc)
                return _error_payload(
                    "Runtime.InitTimeout",
                    f"RequestId: {invocation.request_id} Error: the function's runtime did not "
                    f"start within {self.settings.init_timeout_seconds:.0f} seconds",
                )
            answered: set[asyncio.Future[Any]] = {invocation.result, exited}
            await asyncio.wait(
                answered,
                timeout=invocation.timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if invocation.result.done():
                return invocation.result.result()
            if proc.exited.is_set():
                return self._exit_result(proc, invocation)
            self._kill(proc)
            return _error_payload(
                "Sandbox.Timedout",
                f"RequestId: {invocation.request_id} Error: Task timed out after "
                f"{invocation.timeout_seconds:.2f} seconds",
            )
        finally:
            exited.cancel()
            if not invocation.result.done():
                invocation.result.cancel()

    def _exit_result(self, proc: _Process, invocation: Invocation) -> tuple[bytes, str | None]:
        if proc.init_error is not None:
            return proc.init_error, "Unhandled"
        code = proc.process.returncode if proc.process is not None else None
        how = (
            f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}"
            if code is not None and code < 0
            else f"exit status {code}"
        )
        return _error_payload(
            "Runtime.ExitError",
            f"RequestId: {invocation.request_id} Error: Runtime exited with error: {how}",
        )

    # -- pools -----------------------------------------------------------------------------

    async def _acquire(
        self, record: FunctionVersion, pool: _Pool, queue_timeout: float | None
    ) -> _Process:
        if self._closed:
            raise TooManyRequestsError("The function host is stopping with the server.")
        deadline = None if queue_timeout is None else time.monotonic() + queue_timeout
        async with pool.freed:
            while True:
                while pool.idle:
                    proc = pool.idle.pop()
                    if proc.alive:
                        return proc
                    pool.running -= 1  # died while idle
                    await self._discard(proc)
                room = pool.running < self.settings.max_concurrency
                if room and self._total() >= self.settings.max_processes:
                    room = await self._evict_idle()
                if room:
                    pool.running += 1
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TooManyRequestsError(
                        f"Rate Exceeded. All {self.settings.max_concurrency} execution "
                        f"environments of {record.function_name}:{record.version} (or all "
                        f"{self.settings.max_processes} of the host) stayed busy."
                    )
                # Woken when a process of this pool is released; other pools' releases are
                # not announced here, hence the short wait while the host is full.
                wait = _FULL_HOST_POLL if pool.running < self.settings.max_concurrency else None
                if remaining is not None:
                    wait = remaining if wait is None else min(wait, remaining)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pool.freed.wait(), wait)
        try:
            return await self._spawn(record)
        except BaseException:
            async with pool.freed:
                pool.running -= 1
                pool.freed.notify()
            raise

    def _total(self) -> int:
        return sum(p.running for p in self._pools.values())

    async def _evict_idle(self) -> bool:
        """Stop the longest idle process of any pool to make room; False if none is idle."""
        candidates = [(proc.last_used, key) for key, p in self._pools.items() for proc in p.idle]
        if not candidates:
            return False
        _, key = min(candidates)
        pool = self._pools[key]
        oldest = min(pool.idle, key=lambda proc: proc.last_used)
        # No await between the choice and these changes: no other task sees a half-evicted pool.
        pool.idle.remove(oldest)
        pool.running -= 1
        await self._discard(oldest)
        return True

    async def _release(self, proc: _Process, pool: _Pool) -> None:
        async with pool.freed:
            if proc.alive and not self._closed:
                proc.last_used = time.monotonic()
                pool.idle.append(proc)
            else:
                pool.running -= 1
                await self._discard(proc)
            pool.freed.notify()

    async def _spawn(self, record: FunctionVersion) -> _Process:
        code_dir = await self._code_dir(record.code_sha256)
        key = (record.function_name, record.version, record.revision_id)

        def init_error(body: bytes) -> None:
            proc.init_error = body

        proc = _Process(key=key, api=RuntimeApi(on_init_error=init_error))
        port = await proc.api.start()
        log_dir = self.settings.root / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        memory = int(record.config.get("MemorySize", 128))
        with open(log_dir / f"{record.function_name}.log", "ab") as output:
            proc.process = await asyncio.create_subprocess_exec(
                self.settings.python,
                "-m",
                "awslambdaric",
                str(record.config.get("Handler")),
                cwd=code_dir,
                env=self._environment(record, code_dir, port),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
                preexec_fn=_limits((memory + self.settings.memory_headroom_mib) * 1024 * 1024),
            )
        self._processes.add(proc)
        watcher = asyncio.ensure_future(self._watch(proc))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        log.info(
            "function process started function=%s version=%s pid=%d",
            record.function_name,
            record.version,
            proc.process.pid,
        )
        return proc

    async def _watch(self, proc: _Process) -> None:
        assert proc.process is not None
        code = await proc.process.wait()
        proc.exited.set()
        if not self._closed:
            log.info(
                "function process exited function=%s version=%s pid=%d status=%s",
                proc.key[0],
                proc.key[1],
                proc.process.pid,
                code,
            )

    def _environment(self, record: FunctionVersion, code_dir: Path, port: int) -> dict[str, str]:
        s = self.settings
        env = {str(k): str(v) for k, v in (record.config.get("Environment") or {}).items()}
        env.update(
            {
                "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                "LANG": "C.UTF-8",
                "TZ": ":UTC",
                "PYTHONPATH": str(code_dir),
                "MALLOC_ARENA_MAX": "2",
                "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
                "AWS_LAMBDA_FUNCTION_NAME": record.function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": record.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(record.config.get("MemorySize", 128)),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{record.function_name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[{record.version}]"
                f"{uuid.uuid4().hex}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{record.config.get('Runtime', 'python3')}",
                "_HANDLER": str(record.config.get("Handler")),
                "LAMBDA_TASK_ROOT": str(code_dir),
                "AWS_REGION": s.region,
                "AWS_DEFAULT_REGION": s.region,
                "AWS_ACCESS_KEY_ID": s.access_key_id,
                "AWS_SECRET_ACCESS_KEY": s.secret_access_key,
                "AWS_ENDPOINT_URL": s.endpoint,
                # The server user's own AWS files must not reach the function.
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            }
        )
        if s.ca_bundle is not None:
            env["AWS_CA_BUNDLE"] = str(s.ca_bundle)
        return env

    async def _code_dir(self, sha256: str) -> Path:
        """The function zip unpacked once under ``code/<sha256>`` (shared by its versions)."""
        target = self.settings.root / "code" / sha256
        lock = self._code_locks.setdefault(sha256, asyncio.Lock())
        async with lock:
            if not target.is_dir():
                await asyncio.get_running_loop().run_in_executor(None, self._unpack, sha256, target)
        return target

    def _unpack(self, sha256: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        path = self._blobs.path_for(sha256)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            if path is None:  # a blob store without local files: copy the zip here first
                path = Path(tmp) / "code.zip"
                with self._blobs.open(sha256) as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            staging = Path(tmp) / "unpacked"
            unpack_bundle(path, "zip", staging)
            os.replace(staging, target)

    # -- stopping --------------------------------------------------------------------------

    def _kill(self, proc: _Process) -> None:
        if proc.alive and proc.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.process.pid, signal.SIGKILL)
        proc.killed = True

    async def _discard(self, proc: _Process) -> None:
        self._kill(proc)
        self._processes.discard(proc)
        await proc.api.close()

    def _start_reaper(self) -> None:
        if self._reaper is None and not self._closed:
            self._reaper = asyncio.ensure_future(self._reap())

    async def _reap(self) -> None:
        """Stop processes idle for ``idle_seconds``."""
        while not self._closed:
            await asyncio.sleep(min(self.settings.idle_seconds / 2, 30.0))
            now = time.monotonic()
            for key, pool in list(self._pools.items()):
                async with pool.freed:
                    stale = [
                        p for p in pool.idle if now - p.last_used >= self.settings.idle_seconds
                    ]
                    for proc in stale:
                        pool.idle.remove(proc)
                        pool.running -= 1
                        await self._discard(proc)
                    if not pool.running:
                        del self._pools[key]

    async def close(self) -> None:
        """Kill every function process and close their Runtime APIs (server shutdown)."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        for proc in list(self._processes):
            await self._discard(proc)
        # Reaped before the loop ends (their watchers see them exit), so that nothing is left
        # a zombie or an open transport.
        if self._watchers:
            await asyncio.wait(set(self._watchers), timeout=2.0)
        for task in list(self._background):
            task.cancel()

    def process_ids(self) -> list[int]:
        """The pids of the running function processes (for tests and benchmarks)."""
        return [p.process.pid for p in self._processes if p.alive and p.process is not None]


def _error_payload(kind: str, message: str) -> tuple[bytes, str]:
    return json.dumps({"errorType": kind, "errorMessage": message}).encode(), "Unhandled"


def _limits(address_space: int) -> Callable[[], None]:
    """What runs in the child before exec: the memory bound, and death with the server."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return apply
