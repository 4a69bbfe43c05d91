"""The long poll's wake-ups: a held poll answers when its own host gets a command, not others'."""

from __future__ import annotations

import asyncio
import threading

from opendeploy.engine.dispatch import HostNotifier, long_poll_async


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
    notifier = HostNotifier(recheck_seconds=30)
    claims: list[int] = []

    def claim() -> object | None:
        claims.append(1)
        return None

    async def scenario() -> object | None:
        poll = asyncio.create_task(
            long_poll_async(
                notifier, "a", timeout=30, claim=claim, heartbeat=lambda: None, heartbeat_every=30
            )
        )
        while not claims:  # the poll has made its first claim and is waiting now
            await asyncio.sleep(0.01)
        notifier.close()
        return await asyncio.wait_for(poll, 5)

    assert asyncio.run(scenario()) is None


def test_a_poll_returns_what_the_claim_finds_after_the_wake_up() -> None:
    notifier = HostNotifier(recheck_seconds=30)
    ready: list[str] = []
    claims: list[int] = []

    def claim() -> object | None:
        claims.append(1)
        return ready[0] if ready else None

    async def scenario() -> object | None:
        poll = asyncio.create_task(
            long_poll_async(
                notifier, "a", timeout=30, claim=claim, heartbeat=lambda: None, heartbeat_every=30
            )
        )
        while not claims:  # the first claim found nothing; the poll is held now
            await asyncio.sleep(0.01)
        ready.append("command-1")
        notifier.notify(["a"])
        return await asyncio.wait_for(poll, 5)

    assert asyncio.run(scenario()) == "command-1"
