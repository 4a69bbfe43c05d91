"""Wake-ups between the parts of one server process: the engine and the agents' long polls.

Two in-process signals. The store and the worker are synchronous, so the worker's is
``threading`` based; a held long poll waits on the event loop (:func:`long_poll_async`), because
a thread per held poll does not scale to a fleet of thousands of hosts:

- :class:`HostNotifier`: a long PollHostCommand waits on its host's name and is woken the moment
  the worker creates a command for that host (only that host's waiters are woken: no thundering
  herd). With several replicas the command may be created by another process, so a waiting poll
  also re-checks the database every ``recheck_seconds`` (the only cross-process path; no broker
  needed).
- :class:`Wakeup`: the worker sleeps on it between ticks; CreateDeployment, StopDeployment and
  every agent acknowledgement or completion set it, so the engine reacts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable

import anyio.to_thread

#: How often a held poll looks at the database for commands created by another replica.
RECHECK_SECONDS = 1.0


class Wakeup:
    """A level-triggered flag with a timeout wait (``threading.Event`` that clears on wait)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Sleep until set or ``timeout``; True when set (the flag is cleared again)."""
        woken = self._event.wait(timeout)
        self._event.clear()
        return woken


class HostNotifier:
    """Per-host generations: a poll waits until its host's generation moves (or a timeout)."""

    def __init__(self, *, recheck_seconds: float = RECHECK_SECONDS) -> None:
        # Guards the generations and waiters: notify() comes from the worker's thread.
        self._lock = threading.Lock()
        self._generation: dict[str, int] = {}
        # Polls waiting on an event loop: host -> futures, each resolved on its own loop.
        self._async_waiters: dict[str, set[_LoopWaiter]] = {}
        self._closed = False
        self.recheck_seconds = recheck_seconds

    @property
    def closed(self) -> bool:
        return self._closed

    def generation(self, host: str) -> int:
        with self._lock:
            return self._generation.get(host, 0)

    def notify(self, hosts: Iterable[str]) -> None:
        """Wake every poll waiting for any of ``hosts``."""
        with self._lock:
            for host in hosts:
                self._generation[host] = self._generation.get(host, 0) + 1
                for waiter in self._async_waiters.pop(host, ()):
                    waiter.wake()

    def close(self) -> None:
        """Release every waiting poll (server shutdown): they answer "no command" at once."""
        with self._lock:
            self._closed = True
            for waiters in self._async_waiters.values():
                for waiter in waiters:
                    waiter.wake()
            self._async_waiters.clear()

    async def wait_async(self, host: str, seen: int, timeout: float) -> bool:
        """Wait until ``host``'s generation differs from ``seen``; False on timeout or close.

        No thread is held while it waits."""
        waiter = _LoopWaiter(asyncio.get_running_loop())
        with self._lock:
            if self._generation.get(host, 0) != seen or self._closed:
                return not self._closed
            self._async_waiters.setdefault(host, set()).add(waiter)
        try:
            await asyncio.wait({waiter.future}, timeout=timeout)
        finally:
            with self._lock:
                waiters = self._async_waiters.get(host)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._async_waiters[host]
            waiter.future.cancel()
        with self._lock:
            return self._generation.get(host, 0) != seen and not self._closed


class _LoopWaiter:
    """A future on one event loop that any thread may resolve."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> None:
        def resolve() -> None:
            if not self.future.done():
                self.future.set_result(None)

        # A closed loop raises RuntimeError: nobody is waiting there any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(resolve)


async def long_poll_async(
    notifier: HostNotifier,
    host: str,
    *,
    timeout: float,
    claim: Callable[[], object | None],
    heartbeat: Callable[[], None],
    heartbeat_every: float,
) -> object | None:
    """Hold a poll for ``host`` up to ``timeout`` s; return what ``claim`` finds, or None.

    ``claim`` is tried at once, after every wake-up and every ``notifier.recheck_seconds``;
    ``heartbeat`` (recording the host as seen) runs every ``heartbeat_every`` seconds while the
    poll is held, because a live agent always holds a poll and must never look dead. Waits hold
    no thread; ``claim`` and ``heartbeat`` (database calls) run in the worker thread pool."""
    deadline = time.monotonic() + timeout
    last_beat = time.monotonic()
    while True:
        seen = notifier.generation(host)
        found = await anyio.to_thread.run_sync(claim)
        if found is not None or notifier.closed:
            return found
        now = time.monotonic()
        if now >= deadline:
            return None
        if now - last_beat >= heartbeat_every:
            await anyio.to_thread.run_sync(heartbeat)
            last_beat = now
        step = min(deadline - now, notifier.recheck_seconds, heartbeat_every)
        await notifier.wait_async(host, seen, step)
