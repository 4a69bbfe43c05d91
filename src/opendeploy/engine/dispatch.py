"""Wake-ups between the parts of one server process: the engine and the agents' long polls.

Two in-process signals. The store and the worker are synchronous, so the worker's is
``threading`` based; a held long poll waits on the event loop (:func:`long_poll_async`), because
a thread per held poll does not scale to a fleet of thousands of hosts:

- :class:`HostNotifier`: a long PollHostCommand waits on its host's name and is woken the moment
  the worker creates a command for that host (only that host's waiters are woken: no thundering
  herd). With several replicas the command may be created by another process: one
  :class:`Sweeper` thread per process asks the database every ``SWEEP_SECONDS`` which of the
  hosts waiting here have a deliverable command and wakes those (the only cross-process path; no
  broker needed). One query per process and interval, not one per held poll: a fleet of
  thousands of idle held polls then costs next to nothing.
- :class:`Wakeup`: the worker sleeps on it between ticks; CreateDeployment, StopDeployment and
  every agent completion (and streamed hook output) set it, so the engine reacts at once. An
  acknowledgement only asks for a pass soon (:meth:`Wakeup.set_soon`): it changes no decision,
  only the event's recorded progress, and a short hook's completion then arrives first and both
  are taken in one pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger("opendeploy.dispatch")

#: How often a process looks at the database for commands created by another replica (the most
#: a command created elsewhere waits before a poll held here answers with it).
SWEEP_SECONDS = 1.0


class Wakeup:
    """A level-triggered flag with a timeout wait (``threading.Event`` that clears on wait), and
    a deadline by which a wait ends even if nobody sets the flag (:meth:`set_soon`)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._flag = False
        self._due: float | None = None

    def set(self) -> None:
        with self._changed:
            self._flag = True
            self._changed.notify_all()

    def set_soon(self, delay: float) -> None:
        """Wake the waiter within ``delay`` seconds (earlier if :meth:`set` comes first)."""
        due = time.monotonic() + delay
        with self._changed:
            if self._due is None or due < self._due:
                self._due = due
                # A waiter already asleep recomputes how long it may sleep.
                self._changed.notify_all()

    def wait(self, timeout: float) -> bool:
        """Sleep until set, the earliest :meth:`set_soon` deadline, or ``timeout``; True when
        woken before ``timeout`` (the flag and the deadline are cleared again)."""
        end = time.monotonic() + timeout
        with self._changed:
            while not self._flag:
                now = time.monotonic()
                if self._due is not None and self._due <= now:
                    self._flag = True
                    break
                until = end if self._due is None else min(end, self._due)
                if until <= now:
                    break
                self._changed.wait(until - now)
            woken, self._flag = self._flag, False
            if woken:
                self._due = None
            return woken


def count_in(counts: dict[str, int], key: str) -> None:
    """One more of ``key`` in progress (the caller holds the lock guarding ``counts``)."""
    counts[key] = counts.get(key, 0) + 1


def count_out(counts: dict[str, int], key: str) -> None:
    """One fewer of ``key`` in progress; a key with none left is dropped."""
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


class HostNotifier:
    """Per-host generations: a poll waits until its host's generation moves (or a timeout)."""

    def __init__(self) -> None:
        # Guards the generations and waiters: notify() comes from the worker's thread.
        self._lock = threading.Lock()
        self._generation: dict[str, int] = {}
        # Polls waiting on an event loop: host -> futures, each resolved on its own loop.
        self._async_waiters: dict[str, set[_LoopWaiter]] = {}
        #: host -> number of its polls in progress here (held, or woken and claiming).
        self._polling: dict[str, int] = {}
        #: host -> the generation at which a claim found nothing (more) to deliver to it.
        self._drained_at: dict[str, int] = {}
        self._closed = False
        # Run (once, in order) when the notifier closes: background sweeps stop with it.
        self._on_close: list[Callable[[], None]] = []

    @property
    def closed(self) -> bool:
        return self._closed

    def generation(self, host: str) -> int:
        with self._lock:
            return self._generation.get(host, 0)

    def waiting(self) -> list[str]:
        """The hosts with a poll held right now (what a sweep looks for and keeps alive)."""
        with self._lock:
            return list(self._async_waiters)

    def polling(self) -> list[str]:
        """The hosts with a poll in progress here: held, or woken and still claiming its command.

        What the engine counts as alive now. A woken poll is no longer waiting, but its claim
        may queue for a worker thread for seconds under a fleet's load; the host has not gone
        quiet meanwhile."""
        with self._lock:
            return list(self._polling)

    def mark_drained(self, host: str, generation: int) -> None:
        """A claim read after ``generation`` left nothing deliverable for ``host``."""
        with self._lock:
            self._drained_at[host] = generation

    def drained(self, host: str, generation: int) -> bool:
        """Whether nothing was deliverable to ``host`` at ``generation``, its current one: no
        command was created for it here since (that would have moved its generation)."""
        with self._lock:
            return self._drained_at.get(host) == generation == self._generation.get(host, 0)

    def notified_since_drained(self, host: str, generation: int) -> bool:
        """Whether a command was made for ``host`` here (its generation moved to ``generation``)
        since a claim last found nothing for it: a claim now expects one."""
        with self._lock:
            drained = self._drained_at.get(host)
        return drained is not None and drained != generation

    def poll_started(self, host: str) -> None:
        with self._lock:
            count_in(self._polling, host)

    def poll_ended(self, host: str) -> None:
        with self._lock:
            count_out(self._polling, host)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the notifier closes (at once when it is closed already)."""
        with self._lock:
            if not self._closed:
                self._on_close.append(callback)
                return
        callback()

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
            callbacks, self._on_close = self._on_close, []
        # Outside the lock: a stopping sweep may still be calling waiting() or notify().
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one failing callback must not keep the others from running
                log.exception("notifier close callback failed")

    async def wait_async(
        self, host: str, seen: int, timeout: float, *, gone: asyncio.Future[None] | None = None
    ) -> bool:
        """Wait until ``host``'s generation differs from ``seen``; False on timeout or close, or
        as soon as ``gone`` (the caller's client went away) is done.

        No thread is held while it waits."""
        waiter = _LoopWaiter(asyncio.get_running_loop())
        with self._lock:
            if self._generation.get(host, 0) != seen or self._closed:
                return not self._closed
            self._async_waiters.setdefault(host, set()).add(waiter)
        try:
            waits: set[asyncio.Future[None]] = {waiter.future}
            if gone is not None:
                waits.add(gone)
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
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


class Sweeper:
    """A daemon thread that runs ``sweep`` every ``interval`` s, and once more when stopped.

    The Command API's per-process chores live here (waking polls for commands created by another
    replica, writing the batched signs of life). :meth:`stop` waits for the last run, so that it
    finishes before the store it writes to is closed; errors are logged, never fatal (a database
    that is briefly unreachable must not end the sweeps for good).
    """

    def __init__(self, sweep: Callable[[], None], interval: float, *, name: str) -> None:
        self._sweep = sweep
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._run_once()
        self._run_once()

    def _run_once(self) -> None:
        try:
            self._sweep()
        except Exception:
            log.exception("sweep failed name=%s", self._thread.name)


async def long_poll_async(
    notifier: HostNotifier,
    host: str,
    *,
    timeout: float,
    claim: Callable[[bool], Awaitable[object | None]],
    gone: asyncio.Future[None] | None = None,
    drained: Callable[[object], bool] | None = None,
) -> object | None:
    """Hold a poll for ``host`` up to ``timeout`` s; return what ``claim`` finds, or None.

    ``claim(woken)`` is tried at once (``woken`` False) and after every wake-up of ``host``
    (``woken`` True: a command is expected): by the engine in this process or by the process's
    sweep (a command created by another replica). While it waits the poll is
    listed in :meth:`HostNotifier.waiting`, which is how the sweep also records a host that holds
    a poll as seen (a live agent always holds a poll and must never look dead). Waits hold no
    thread; ``claim`` is awaited (the Command API's runs its read in the thread pool and joins
    the group commit for its write).

    ``gone``: done when the client has gone away (its connection closed). The poll ends then,
    and with it the "alive while holding a poll" rule: a SIGKILLed agent is judged by
    ``agent_dead_after`` from that moment, not after its orphaned poll times out.

    A poll that starts when the last claim for its host left nothing deliverable, and no command
    was made for the host here since, waits at once without claiming: what an agent polls again
    for after each command, one database read and thread hop fewer per lifecycle event.
    ``drained(found)`` says whether a claimed command was the last one deliverable. A command
    this process did not make (another replica's, or a delivery gone stale) is then found by
    the sweep, within a sweep interval, as for a poll already held."""
    deadline = time.monotonic() + timeout
    woken = False
    notifier.poll_started(host)
    try:
        while True:
            seen = notifier.generation(host)
            if not woken and notifier.drained(host, seen):
                found = None
            else:
                # A command made here since the last empty claim (the agent was between polls
                # when it was made): claim it at once, without a read first.
                expected = woken or notifier.notified_since_drained(host, seen)
                found = await claim(expected)
                if found is None or (drained is not None and drained(found)):
                    notifier.mark_drained(host, seen)
            if found is not None or notifier.closed:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (gone is not None and gone.done()):
                return None
            woken = await notifier.wait_async(host, seen, remaining, gone=gone)
    finally:
        notifier.poll_ended(host)
