"""What the Command API tells its engine about when each agent was last heard from."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from opendeploy.api.commands.handlers import _SeenLog


def test_a_call_being_handled_counts_as_heard_now_until_it_ends() -> None:
    seen = _SeenLog()
    seen.record("web-1", None, every=60)
    first = seen.heard()["web-1"]
    seen.call_started("web-1")
    time.sleep(0.01)
    during = seen.heard()["web-1"]
    assert during > first  # heard "now" while the call waits (for the database, say)
    time.sleep(0.01)
    seen.call_ended("web-1")
    ended = seen.heard()["web-1"]
    assert ended > during
    time.sleep(0.01)
    # Once the call has ended, the time stays what it was when it ended.
    assert seen.heard()["web-1"] == ended < datetime.now(UTC)


def test_overlapping_calls_of_one_agent_keep_it_busy_until_the_last_ends() -> None:
    seen = _SeenLog()
    seen.call_started("web-1")
    seen.call_started("web-1")
    seen.call_ended("web-1")
    time.sleep(0.01)
    before = datetime.now(UTC)
    assert seen.heard()["web-1"] >= before  # one call is still being handled
    seen.call_ended("web-1")
    ended = seen.heard()["web-1"]
    time.sleep(0.01)
    assert seen.heard()["web-1"] == ended
