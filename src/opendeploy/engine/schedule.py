"""When traffic moves to the new version, and how much: the traffic-shift schedule (pure).

Lambda aliases, ECS task sets and load-balanced server fleets shift traffic the same way, by a
deployment configuration's ``trafficRoutingConfig`` (a :class:`TrafficRouting`). Counting from
``t0``, the start of AllowTraffic, with ``p`` the percentage and ``I`` the interval (AWS user
guide, "Working with deployment configurations"; ``shared/reference/platforms.md`` §3.4):

- ``AllAtOnce``: 100 % at ``t0``;
- ``TimeBasedCanary``: ``p`` % at ``t0``, 100 % at ``t0 + I``;
- ``TimeBasedLinear``: step ``k`` (1 … ``n``, ``n = ⌈100/p⌉``) sets ``min(k·p, 100)`` % at
  ``t0 + (k−1)·I``, so 100 % arrives ``(n−1)·I`` after the first shift (10 %/1 min: 10, 20, …,
  100 % over 9 minutes). When ``p`` does not divide 100 the last step jumps to 100 %.

The API counts intervals in whole minutes. Every function takes the length of a minute
(``minute``, default 60 s), so a server started with ``--minute-seconds 0.1`` runs a
10 %-every-minute deployment in under a second: for tests, demos and benchmarks.

Nothing here reads a clock or does I/O: callers pass the time elapsed since ``t0``. An
effector (re)starting at ``elapsed`` sets :func:`weight_at` (which covers every shift due by
then, so a resumed or repeated run catches up in one step), then sleeps until the offset of
:func:`next_shift_after` and repeats, until that is None.

Example::

    canary = {"canaryPercentage": 10, "canaryInterval": 5}
    routing = TrafficRouting.from_wire({"type": "TimeBasedCanary", "timeBasedCanary": canary})
    shifts(routing)  # (Shift(offset=0:00:00, percent=10), Shift(offset=0:05:00, percent=100))
    weight_at(routing, timedelta(minutes=3))  # 10
    next_shift_after(routing, timedelta(minutes=3))  # Shift(offset=0:05:00, percent=100)
"""

from __future__ import annotations

import bisect
from datetime import timedelta
from typing import NamedTuple

from opendeploy.domain.configs import (
    MAX_SHIFT_SPAN_MINUTES,
    InvalidTrafficRouting,
    TrafficRouting,
    TrafficRoutingType,
)

__all__ = [
    "MAX_SHIFT_SPAN_MINUTES",
    "MINUTE",
    "InvalidTrafficRouting",
    "Shift",
    "TrafficRouting",
    "TrafficRoutingType",
    "finish_offset",
    "next_shift_after",
    "shifts",
    "weight_at",
]

#: A real minute: the default length of the API's minutes.
MINUTE = timedelta(minutes=1)


class Shift(NamedTuple):
    """One traffic shift: at ``offset`` after the start of AllowTraffic, ``percent`` of the
    traffic goes to the new version (the rest stays on the old one)."""

    offset: timedelta
    percent: int


def _check_minute(minute: timedelta) -> None:
    if minute <= timedelta(0):
        raise ValueError(f"minute: {minute!r} must be longer than zero")


def shifts(routing: TrafficRouting, *, minute: timedelta = MINUTE) -> tuple[Shift, ...]:
    """Every shift of ``routing`` in order: offsets strictly increasing from zero, percentages
    strictly increasing to 100; ``routing.increments`` of them."""
    _check_minute(minute)
    if routing.type is TrafficRoutingType.ALL_AT_ONCE:
        return (Shift(timedelta(0), 100),)
    interval = minute * routing.interval_minutes
    if routing.type is TrafficRoutingType.TIME_BASED_CANARY:
        return (Shift(timedelta(0), routing.percentage), Shift(interval, 100))
    return tuple(
        Shift(interval * (k - 1), min(k * routing.percentage, 100))
        for k in range(1, routing.increments + 1)
    )


def finish_offset(routing: TrafficRouting, *, minute: timedelta = MINUTE) -> timedelta:
    """When 100 % of the traffic is on the new version, counted from the start of AllowTraffic
    (``routing.span_minutes`` minutes)."""
    _check_minute(minute)
    return minute * routing.span_minutes


def weight_at(routing: TrafficRouting, elapsed: timedelta, *, minute: timedelta = MINUTE) -> int:
    """The percentage of traffic on the new version ``elapsed`` after the start of
    AllowTraffic: that of the last shift due by then (a shift is due at its offset); 0 before
    the start."""
    planned = shifts(routing, minute=minute)
    due = bisect.bisect_right([s.offset for s in planned], elapsed)
    return planned[due - 1].percent if due else 0


def next_shift_after(
    routing: TrafficRouting, elapsed: timedelta, *, minute: timedelta = MINUTE
) -> Shift | None:
    """The first shift due strictly after ``elapsed`` (what an effector sleeps until), or None
    once the last one is due."""
    planned = shifts(routing, minute=minute)
    due = bisect.bisect_right([s.offset for s in planned], elapsed)
    return planned[due] if due < len(planned) else None
