"""How far behind this server process is: what the dead-agent rule must allow for.

An agent's sign of life is recorded when its call is *handled*. A server with more work than it
can do (a fleet of thousands reporting at once on a small machine) handles calls late: they wait
for a worker thread, or for the event loop to read them at all. Had the engine gone on counting
from the last *handled* call, it would have taken its own backlog for dead agents, and failed
every host of a large deployment as "not polling" (seen at 10,000 hosts).

:class:`Backlog` measures that lateness two ways: the age of the oldest call that has arrived and
is not being handled yet, and how late the event loop runs its timers (a loop too busy to read
the sockets leaves calls waiting where no one can count them). :meth:`Backlog.delay` is the
larger of the two, and stays at the largest delay seen for ``memory`` seconds: a late call's
sign of life is written by the next batched write, a little after it was handled. The engine adds
it to ``agent_dead_after_seconds``. A forged call cannot keep a dead agent alive this way: it
only makes the server more patient with every agent while it is overloaded.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["Backlog", "watch_event_loop"]

#: How long the largest delay seen is remembered.
MEMORY_SECONDS = 10.0

#: How often the event loop's lateness is sampled.
LOOP_SAMPLE_SECONDS = 0.25


class Backlog:
    """Calls waiting to be handled, and the recent worst delay (thread-safe)."""

    def __init__(
        self,
        *,
        memory: float = MEMORY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._memory = memory
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = itertools.count()
        #: token -> arrival time, oldest first (arrivals are appended in time order).
        self._waiting: OrderedDict[int, float] = OrderedDict()
        self._worst = 0.0
        self._worst_at = float("-inf")

    def arrived(self) -> int:
        """A call came in; returns the token to pass to :meth:`started`."""
        with self._lock:
            token = next(self._tokens)
            self._waiting[token] = self._clock()
        return token

    def started(self, token: int) -> None:
        """The call is being handled now (idempotent; unknown tokens are ignored)."""
        now = self._clock()
        with self._lock:
            arrived = self._waiting.pop(token, None)
        if arrived is not None:
            self.observe(now - arrived)

    def observe(self, delay: float) -> None:
        """Record that something ran ``delay`` seconds later than it should have."""
        now = self._clock()
        with self._lock:
            if delay >= self._worst or now - self._worst_at > self._memory:
                self._worst, self._worst_at = delay, now

    def delay(self) -> float:
        """Seconds by which this process is behind now (0 when it keeps up)."""
        now = self._clock()
        with self._lock:
            oldest = next(iter(self._waiting.values()), None)
            recent = self._worst if now - self._worst_at <= self._memory else 0.0
        waiting = now - oldest if oldest is not None else 0.0
        return max(waiting, recent)


async def watch_event_loop(backlog: Backlog, *, every: float = LOOP_SAMPLE_SECONDS) -> None:
    """Sample how late the running event loop wakes a sleeper, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + every
        await asyncio.sleep(every)
        backlog.observe(max(0.0, loop.time() - due))
