"""The server's backlog: what the engine adds to the dead-agent window while it runs late."""

from __future__ import annotations

import asyncio

from opendeploy.api.backlog import Backlog, watch_event_loop


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_waiting_call_counts_from_its_arrival() -> None:
    clock = _Clock()
    backlog = Backlog(clock=clock)
    assert backlog.delay() == 0.0
    first = backlog.arrived()
    clock.now += 3.0
    backlog.arrived()
    clock.now += 4.0
    # The oldest call still waiting sets the delay.
    assert backlog.delay() == 7.0
    backlog.started(first)
    # Handled 7 s late: remembered although nothing older waits any more.
    assert backlog.delay() == 7.0


def test_the_worst_delay_is_forgotten_after_its_memory() -> None:
    clock = _Clock()
    backlog = Backlog(memory=10.0, clock=clock)
    token = backlog.arrived()
    clock.now += 5.0
    backlog.started(token)
    clock.now += 9.0
    assert backlog.delay() == 5.0
    clock.now += 2.0
    assert backlog.delay() == 0.0


def test_a_smaller_delay_does_not_hide_a_larger_recent_one() -> None:
    clock = _Clock()
    backlog = Backlog(memory=10.0, clock=clock)
    backlog.observe(6.0)
    clock.now += 1.0
    backlog.observe(0.5)
    assert backlog.delay() == 6.0


def test_started_twice_or_unknown_is_harmless() -> None:
    clock = _Clock()
    backlog = Backlog(clock=clock)
    token = backlog.arrived()
    clock.now += 1.0
    backlog.started(token)
    backlog.started(token)
    backlog.started(12345)
    assert backlog.delay() == 1.0


def test_a_blocked_event_loop_is_measured() -> None:
    import time

    backlog = Backlog()

    async def main() -> None:
        watcher = asyncio.create_task(watch_event_loop(backlog, every=0.01))
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # the loop cannot run its timers meanwhile
        await asyncio.sleep(0.05)
        watcher.cancel()

    asyncio.run(main())
    assert backlog.delay() >= 0.25
