"""The dashboard's pure formatting rules (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opendeploy.web.present import agent_state

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_agent_state_follows_the_engine_dead_after_rule() -> None:
    def state(**row: object) -> str:
        return agent_state(row, dead_after_seconds=15, now=NOW).status

    assert state(last_seen_at=None) == "never polled"
    assert state(last_seen_at=NOW - timedelta(seconds=15)) == "polling"
    assert state(last_seen_at=NOW - timedelta(seconds=16)) == "not polling"
    # The engine's mark wins even while the last poll is recent enough.
    assert state(last_seen_at=NOW, unreachable_since=NOW) == "not polling"
    assert state(last_seen_at=NOW, deregister_time=NOW) == "deregistered"


def test_agent_state_says_how_long_and_since_when() -> None:
    seen = NOW - timedelta(hours=2)
    text = agent_state(
        {"last_seen_at": seen.replace(tzinfo=None), "unreachable_since": seen},
        dead_after_seconds=2.5,
        now=NOW,
    ).text
    assert text.startswith("the agent has not polled for 2 h (limit 2.5 s); unreachable since ")
