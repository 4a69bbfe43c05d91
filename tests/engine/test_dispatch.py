"""The long poll's wake-ups: a held poll answers when its own host gets a command, not others'."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any

from opendeploy.engine.dispatch import HostNotifier, Sweeper, Wakeup, long_poll_async


def test_a_notify_from_another_thread_wakes_only_that_hosts_waiter() -> None:
    notifier = HostNotifier()

    async def scenario() -> tuple[bool, bool]:
        mine = asyncio.create_task(notifier.wait_async("a", notifier.generation("a"), 30))
        other = asyncio.create_task(notifier.wait_async("b", notifier.generation("b"), 0.2))
        await asyncio.sleep(0)  # both are registered before the notify
        threading.Thread(target=notifier.notify, args=(["a"],)).start()
        return await mine, await other

    assert asyncio.run(scenario()) == (True, False)


def test_a_generation_that_already_moved_returns_at_once() -> None:
    notifier = HostNotifier()
    seen = notifier.generation("a")
    notifier.notify(["a"])
    assert asyncio.run(notifier.wait_async("a", seen, 30)) is True


def test_close_releases_every_held_poll_with_nothing() -> None:
    notifier = HostNotifier()
    claims: list[int] = []

    async def claim(_woken: bool) -> object | None:
        claims.append(1)
        return None

    async def scenario() -> object | None:
        poll = asyncio.create_task(long_poll_async(notifier, "a", timeout=30, claim=claim))
        while not claims:  # the poll has made its first claim and is waiting now
            await asyncio.sleep(0.01)
        notifier.close()
        return await asyncio.wait_for(poll, 5)

    assert asyncio.run(scenario()) is None


def test_a_poll_returns_what_the_claim_finds_after_the_wake_up() -> None:
    notifier = HostNotifier()
    ready: list[str] = []
    claims: list[int] = []

    async def claim(_woken: bool) -> object | None:
        claims.append(1)
        return ready[0] if ready else None

    async def scenario() -> object | None:
        poll = asyncio.create_task(long_poll_async(notifier, "a", timeout=30, claim=claim))
        while not claims:  # the first claim found nothing; the poll is held now
            await asyncio.sleep(0.01)
        ready.append("command-1")
        notifier.notify(["a"])
        return await asyncio.wait_for(poll, 5)

    assert asyncio.run(scenario()) == "command-1"


def test_a_woken_poll_still_claiming_counts_as_polling() -> None:
    """Woken, a poll is no longer waiting; until its claim is done (it may queue for a worker
    thread for seconds under load) its host must still count as alive."""
    import threading

    notifier = HostNotifier()
    claiming = threading.Event()
    release = asyncio.Event()
    calls: list[bool] = []

    async def claim(woken: bool) -> object | None:
        calls.append(woken)
        if woken:
            claiming.set()
            await asyncio.wait_for(release.wait(), 5)
            return "command-1"
        return None

    async def scenario() -> tuple[list[str], list[str], list[str], object | None]:
        poll = asyncio.create_task(long_poll_async(notifier, "a", timeout=30, claim=claim))
        while not notifier.waiting():
            await asyncio.sleep(0.01)
        notifier.notify(["a"])
        while not claiming.is_set():
            await asyncio.sleep(0.01)
        during = (notifier.waiting(), notifier.polling())
        release.set()
        found = await asyncio.wait_for(poll, 5)
        return during[0], during[1], notifier.polling(), found

    assert asyncio.run(scenario()) == ([], ["a"], [], "command-1")


def test_a_poll_whose_client_is_gone_ends_at_once() -> None:
    notifier = HostNotifier()

    async def scenario() -> tuple[object | None, float, list[str]]:
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        poll = asyncio.create_task(
            long_poll_async(notifier, "a", timeout=30, claim=_nothing, gone=gone)
        )
        while not notifier.waiting():
            await asyncio.sleep(0.01)
        started = time.monotonic()
        gone.set_result(None)
        found = await asyncio.wait_for(poll, 5)
        return found, time.monotonic() - started, notifier.polling()

    found, took, polling = asyncio.run(scenario())
    assert found is None and took < 1.0 and polling == []


def test_waiting_lists_the_hosts_holding_a_poll() -> None:
    notifier = HostNotifier()

    async def scenario() -> tuple[list[str], list[str]]:
        held = asyncio.create_task(notifier.wait_async("a", notifier.generation("a"), 30))
        while not notifier.waiting():
            await asyncio.sleep(0.01)
        during = notifier.waiting()
        notifier.notify(["a"])
        await held
        return during, notifier.waiting()

    assert asyncio.run(scenario()) == (["a"], [])


def test_a_sweeper_runs_periodically_and_once_more_when_the_notifier_closes() -> None:
    notifier = HostNotifier()
    runs: list[float] = []
    twice = threading.Event()

    def sweep() -> None:
        runs.append(time.monotonic())
        if len(runs) >= 2:
            twice.set()
        if len(runs) == 1:
            raise RuntimeError("a failing sweep is logged, not fatal")

    sweeper = Sweeper(sweep, 0.05, name="test-sweep")
    notifier.on_close(sweeper.stop)
    sweeper.start()
    assert twice.wait(10), "the sweeper did not run again after a failed run"
    notifier.close()  # stops the sweeper and waits for its last run
    after_close = len(runs)
    assert after_close >= 3  # two periodic runs, and the last one at stop
    time.sleep(0.2)  # would be several more runs if it were still going
    assert len(runs) == after_close
    # Registered after the close: the callback runs at once.
    late: list[int] = []
    notifier.on_close(lambda: late.append(1))
    assert late == [1]


def test_a_drained_host_polls_again_without_claiming_until_a_command_is_made() -> None:
    # After a claim left nothing deliverable, the host's next poll waits at once (no database
    # read): only a notification for the host (a command made here, or the sweep finding one)
    # makes it claim again. A claim that says more is waiting keeps the next poll claiming.
    notifier = HostNotifier()
    queue: list[tuple[str, bool]] = [("command-1", True), ("command-2", False)]
    claims: list[bool] = []

    async def claim(woken: bool) -> object | None:
        claims.append(woken)
        return queue.pop(0) if queue else None

    def poll() -> Coroutine[Any, Any, object | None]:
        return long_poll_async(
            notifier,
            "a",
            timeout=30,
            claim=claim,
            drained=lambda found: isinstance(found, tuple) and not found[1],
        )

    async def scenario() -> tuple[object | None, ...]:
        first = await asyncio.wait_for(poll(), 5)  # more waiting: the next poll claims
        second = await asyncio.wait_for(poll(), 5)  # the last one: drained from here on
        assert claims == [False, False]
        held = asyncio.create_task(poll())
        while not notifier.waiting():
            await asyncio.sleep(0.01)
        assert claims == [False, False]  # held without a claim
        queue.append(("command-3", False))
        notifier.notify(["a"])
        third = await asyncio.wait_for(held, 5)
        assert claims == [False, False, True]
        return first, second, third

    assert asyncio.run(scenario()) == (
        ("command-1", True),
        ("command-2", False),
        ("command-3", False),
    )


def test_a_claim_that_finds_nothing_marks_the_host_drained_at_that_generation() -> None:
    notifier = HostNotifier()
    assert not notifier.drained("a", 0)
    notifier.mark_drained("a", 0)
    assert notifier.drained("a", 0)
    notifier.notify(["a"])  # a command made for it since: no longer known to be drained
    assert not notifier.drained("a", 0) and not notifier.drained("a", 1)


def test_a_wakeup_asked_for_soon_ends_the_wait_by_its_deadline() -> None:
    wakeup = Wakeup()
    wakeup.set_soon(60.0)
    wakeup.set_soon(0.02)  # the earliest deadline wins
    started = time.monotonic()
    assert wakeup.wait(30.0) is True
    assert time.monotonic() - started < 10.0
    # Both deadlines are spent: the next wait times out.
    assert wakeup.wait(0.01) is False


def test_a_wakeup_set_before_its_deadline_clears_the_deadline_too() -> None:
    wakeup = Wakeup()
    wakeup.set_soon(0.05)
    wakeup.set()
    assert wakeup.wait(30.0) is True
    assert wakeup.wait(0.1) is False


def test_a_wakeup_asked_for_soon_while_the_waiter_sleeps_cuts_its_sleep_short() -> None:
    wakeup = Wakeup()
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(wakeup.wait(60.0)))
    started = time.monotonic()
    waiter.start()
    time.sleep(0.05)  # let the waiter fall asleep on its 60 s timeout first
    wakeup.set_soon(0.01)
    waiter.join(30.0)
    assert woken == [True]
    assert time.monotonic() - started < 30.0


def test_a_command_made_between_polls_is_claimed_as_expected() -> None:
    """A poll that starts after a command was made for its host here (the agent was between
    polls) claims with ``woken`` True: no read first. A poll with nothing new made claims
    nothing at all; the first poll ever reads first."""
    notifier = HostNotifier()
    claims: list[bool] = []

    async def claim(woken: bool) -> object | None:
        claims.append(woken)
        return None

    async def poll() -> object | None:
        return await long_poll_async(notifier, "a", timeout=0.05, claim=claim)

    asyncio.run(poll())
    assert claims == [False]  # the first poll ever: nothing known
    asyncio.run(poll())
    assert claims == [False]  # drained, nothing made since: no claim
    notifier.notify(["a"])  # a command made while no poll was held
    asyncio.run(poll())
    assert claims == [False, True]


async def _nothing(_woken: bool) -> object | None:
    return None
