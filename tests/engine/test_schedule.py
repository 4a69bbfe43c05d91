"""The traffic-shift schedule: AWS's timing for AllAtOnce, TimeBasedCanary and TimeBasedLinear,
the rules of a ``trafficRoutingConfig``, and the predefined Lambda and ECS configurations."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendeploy.domain.configs import PREDEFINED, ComputePlatform
from opendeploy.engine.schedule import (
    MAX_SHIFT_SPAN_MINUTES,
    MINUTE,
    InvalidTrafficRouting,
    Shift,
    TrafficRouting,
    TrafficRoutingType,
    finish_offset,
    next_shift_after,
    shifts,
    weight_at,
)

ALL_AT_ONCE = TrafficRouting(TrafficRoutingType.ALL_AT_ONCE)


def canary(p: int, i: int) -> TrafficRouting:
    return TrafficRouting(TrafficRoutingType.TIME_BASED_CANARY, p, i)


def linear(p: int, i: int) -> TrafficRouting:
    return TrafficRouting(TrafficRoutingType.TIME_BASED_LINEAR, p, i)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# --- AWS's timing ----------------------------------------------------------------------------


def test_all_at_once_moves_everything_at_the_start() -> None:
    assert shifts(ALL_AT_ONCE) == (Shift(timedelta(0), 100),)
    assert finish_offset(ALL_AT_ONCE) == timedelta(0)


def test_canary_moves_its_percentage_then_the_rest_one_interval_later() -> None:
    assert shifts(canary(10, 5)) == (Shift(minutes(0), 10), Shift(minutes(5), 100))
    assert finish_offset(canary(10, 5)) == minutes(5)


def test_linear_10_percent_every_minute_reaches_100_nine_minutes_after_the_first_shift() -> None:
    """The observed ECS run: 10, 20, … 100 % about 60 s apart, 100 % 9 min after the first."""
    planned = shifts(linear(10, 1))
    assert [s.percent for s in planned] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert [s.offset for s in planned] == [minutes(k) for k in range(10)]
    assert finish_offset(linear(10, 1)) == minutes(9)


@pytest.mark.parametrize(
    ("p", "percents"),
    [
        (30, [30, 60, 90, 100]),
        (33, [33, 66, 99, 100]),
        (50, [50, 100]),
        (99, [99, 100]),
        (40, [40, 80, 100]),
    ],
)
def test_linear_whose_percentage_does_not_divide_100_jumps_to_100_at_the_last_step(
    p: int, percents: list[int]
) -> None:
    planned = shifts(linear(p, 3))
    assert [s.percent for s in planned] == percents
    assert [s.offset for s in planned] == [minutes(3 * k) for k in range(len(percents))]


def test_linear_one_percent_takes_a_hundred_steps() -> None:
    planned = shifts(linear(1, 2))
    assert len(planned) == 100 == linear(1, 2).increments
    assert planned[-1] == Shift(minutes(198), 100)


def test_weight_in_force_at_an_elapsed_time() -> None:
    routing = linear(25, 10)  # 25 % at 0, 50 at 10 min, 75 at 20, 100 at 30
    assert weight_at(routing, -timedelta(seconds=1)) == 0
    assert weight_at(routing, timedelta(0)) == 25  # a shift is due at its offset
    assert weight_at(routing, minutes(10) - timedelta(microseconds=1)) == 25
    assert weight_at(routing, minutes(10)) == 50
    assert weight_at(routing, minutes(29)) == 75
    assert weight_at(routing, minutes(30)) == 100
    assert weight_at(routing, timedelta(days=3)) == 100
    assert weight_at(ALL_AT_ONCE, timedelta(0)) == 100
    assert weight_at(ALL_AT_ONCE, -timedelta(microseconds=1)) == 0


def test_next_shift_after_an_elapsed_time() -> None:
    routing = canary(20, 15)
    assert next_shift_after(routing, -timedelta(seconds=1)) == Shift(timedelta(0), 20)
    assert next_shift_after(routing, timedelta(0)) == Shift(minutes(15), 100)
    assert next_shift_after(routing, minutes(14.5)) == Shift(minutes(15), 100)
    assert next_shift_after(routing, minutes(15)) is None
    assert next_shift_after(ALL_AT_ONCE, timedelta(0)) is None


def test_a_short_minute_scales_every_wait() -> None:
    tenth = timedelta(seconds=0.1)
    planned = shifts(linear(10, 3), minute=tenth)
    assert [s.offset for s in planned] == [timedelta(seconds=0.3 * k) for k in range(10)]
    assert finish_offset(linear(10, 3), minute=tenth) == timedelta(seconds=2.7)
    assert weight_at(linear(10, 3), timedelta(seconds=0.65), minute=tenth) == 30
    assert next_shift_after(canary(10, 30), timedelta(0), minute=tenth) == Shift(
        timedelta(seconds=3), 100
    )
    assert shifts(canary(10, 5)) == shifts(canary(10, 5), minute=MINUTE)


@pytest.mark.parametrize("minute", [timedelta(0), -MINUTE])
def test_a_minute_must_last(minute: timedelta) -> None:
    with pytest.raises(ValueError, match="minute"):
        shifts(canary(10, 5), minute=minute)
    with pytest.raises(ValueError, match="minute"):
        finish_offset(canary(10, 5), minute=minute)


# --- the predefined configurations -----------------------------------------------------------


def test_the_predefined_lambda_and_ecs_configurations_are_aws_s() -> None:
    """Names (note ``Every1Minute`` for Lambda and ``Every1Minutes`` for ECS) and settings."""
    table = {
        name.removeprefix("CodeDeployDefault."): (c.compute_platform, c.traffic_routing)
        for name, c in PREDEFINED.items()
        if c.compute_platform is not ComputePlatform.SERVER
    }
    L, E = ComputePlatform.LAMBDA, ComputePlatform.ECS
    assert table == {
        "LambdaAllAtOnce": (L, ALL_AT_ONCE),
        "LambdaCanary10Percent5Minutes": (L, canary(10, 5)),
        "LambdaCanary10Percent10Minutes": (L, canary(10, 10)),
        "LambdaCanary10Percent15Minutes": (L, canary(10, 15)),
        "LambdaCanary10Percent30Minutes": (L, canary(10, 30)),
        "LambdaLinear10PercentEvery1Minute": (L, linear(10, 1)),
        "LambdaLinear10PercentEvery2Minutes": (L, linear(10, 2)),
        "LambdaLinear10PercentEvery3Minutes": (L, linear(10, 3)),
        "LambdaLinear10PercentEvery10Minutes": (L, linear(10, 10)),
        "ECSAllAtOnce": (E, ALL_AT_ONCE),
        "ECSLinear10PercentEvery1Minutes": (E, linear(10, 1)),
        "ECSLinear10PercentEvery3Minutes": (E, linear(10, 3)),
        "ECSCanary10Percent5Minutes": (E, canary(10, 5)),
        "ECSCanary10Percent15Minutes": (E, canary(10, 15)),
    }
    # 100 % after I for a canary, 9·I for a linear 10 % configuration.
    assert finish_offset(linear(10, 10)) == minutes(90)
    assert finish_offset(canary(10, 15)) == minutes(15)
    # Server configurations have no traffic routing.
    assert all(
        c.traffic_routing is None
        for c in PREDEFINED.values()
        if c.compute_platform is ComputePlatform.SERVER
    )


# --- the wire shape and AWS's rules ----------------------------------------------------------


def test_wire_shapes_parse_and_render_back() -> None:
    wire_canary = {
        "type": "TimeBasedCanary",
        "timeBasedCanary": {"canaryPercentage": 15, "canaryInterval": 7},
    }
    wire_linear = {
        "type": "TimeBasedLinear",
        "timeBasedLinear": {"linearPercentage": 20, "linearInterval": 4},
    }
    assert TrafficRouting.from_wire(wire_canary) == canary(15, 7)
    assert TrafficRouting.from_wire(wire_linear) == linear(20, 4)
    assert TrafficRouting.from_wire({"type": "AllAtOnce"}) == ALL_AT_ONCE
    for wire in (wire_canary, wire_linear, {"type": "AllAtOnce"}):
        assert TrafficRouting.from_wire(wire).to_wire() == wire
    # The member of the other time-based type is ignored, as are both for AllAtOnce.
    both = {**wire_canary, **wire_linear, "type": "TimeBasedCanary"}
    assert TrafficRouting.from_wire(both) == canary(15, 7)
    assert TrafficRouting.from_wire({**both, "type": "AllAtOnce"}).to_wire() == {
        "type": "AllAtOnce"
    }
    # A type given as its string is the enum member.
    from_text = TrafficRouting("TimeBasedLinear", 10, 1)  # type: ignore[arg-type]
    assert from_text.type is TrafficRoutingType.TIME_BASED_LINEAR


def _canary_wire(p: Any, i: Any) -> dict[str, Any]:
    return {
        "type": "TimeBasedCanary",
        "timeBasedCanary": {"canaryPercentage": p, "canaryInterval": i},
    }


def _linear_wire(p: Any, i: Any) -> dict[str, Any]:
    return {
        "type": "TimeBasedLinear",
        "timeBasedLinear": {"linearPercentage": p, "linearInterval": i},
    }


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (None, "must be an object"),
        ([], "must be an object"),
        ({}, "type None is not one of"),
        ({"type": "Blue"}, "type 'Blue' is not one of"),
        ({"type": 3}, "type 3 is not one of"),
        ({"type": "TimeBasedCanary"}, "needs timeBasedCanary"),
        ({"type": "TimeBasedLinear", "timeBasedCanary": {}}, "needs timeBasedLinear"),
        ({"type": "TimeBasedLinear", "timeBasedLinear": None}, "needs timeBasedLinear"),
        (_canary_wire(None, 5), "canaryPercentage is required"),
        (_canary_wire(10, None), "canaryInterval is required"),
        (_canary_wire(0, 5), "canaryPercentage 0 is not valid"),
        (_canary_wire(100, 5), "canaryPercentage 100 is not valid"),
        (_canary_wire(-5, 5), "canaryPercentage -5 is not valid"),
        (_canary_wire(10, 0), "canaryInterval 0 is not valid"),
        (_canary_wire(10, -1), "canaryInterval -1 is not valid"),
        (_canary_wire(True, 5), "canaryPercentage True is not a whole number"),
        (_canary_wire(10.5, 5), "canaryPercentage 10.5 is not a whole number"),
        (_canary_wire(10, "5"), "canaryInterval '5' is not a whole number"),
        (_canary_wire(10, 2881), "puts 2881 minutes between the first and the last"),
        (_linear_wire(100, 1), "linearPercentage 100 is not valid"),
        (_linear_wire(10, 0), "linearInterval 0 is not valid"),
        (_linear_wire(10, 321), "puts 2889 minutes between the first and the last"),
        (_linear_wire(1, 30), "puts 2970 minutes"),
    ],
)
def test_what_aws_refuses(wire: Any, message: str) -> None:
    with pytest.raises(InvalidTrafficRouting, match=message):
        TrafficRouting.from_wire(wire)


def test_the_limits_themselves_are_accepted() -> None:
    assert TrafficRouting.from_wire(_canary_wire(1, 2880)) == canary(1, 2880)
    assert TrafficRouting.from_wire(_canary_wire(99, 1)) == canary(99, 1)
    assert TrafficRouting.from_wire(_linear_wire(10, 320)).span_minutes == 2880
    assert TrafficRouting.from_wire(_linear_wire(99, 2880)).span_minutes == 2880
    assert TrafficRouting.from_wire(_linear_wire(1, 29)).span_minutes == 99 * 29


def test_all_at_once_takes_no_settings() -> None:
    with pytest.raises(InvalidTrafficRouting, match="takes no percentage"):
        TrafficRouting(TrafficRoutingType.ALL_AT_ONCE, 10, 1)


# --- properties over every valid configuration -----------------------------------------------


def _valid(kind: TrafficRoutingType, p: int, i: int) -> bool:
    """AWS's rules, stated independently of the code under test."""
    if kind is TrafficRoutingType.ALL_AT_ONCE:
        return True
    if not (1 <= p <= 99 and i >= 1):
        return False
    steps = 2 if kind is TrafficRoutingType.TIME_BASED_CANARY else math.ceil(100 / p)
    return (steps - 1) * i <= MAX_SHIFT_SPAN_MINUTES


routings = st.one_of(
    st.just(ALL_AT_ONCE),
    # A linear configuration with the longest interval its step count allows, or less.
    st.integers(1, 99).flatmap(
        lambda p: st.builds(
            linear,
            st.just(p),
            st.integers(1, MAX_SHIFT_SPAN_MINUTES // (math.ceil(100 / p) - 1)),
        )
    ),
    st.builds(canary, st.integers(1, 99), st.integers(1, MAX_SHIFT_SPAN_MINUTES)),
)
short_minutes = st.integers(1, 120_000_000).map(lambda us: timedelta(microseconds=us))


@settings(max_examples=300, deadline=None, database=None)
@given(routings, short_minutes)
def test_shifts_rise_to_100_at_aws_timing(routing: TrafficRouting, minute: timedelta) -> None:
    planned = shifts(routing, minute=minute)
    percents = [s.percent for s in planned]
    offsets = [s.offset for s in planned]
    assert len(planned) == routing.increments
    assert percents == sorted(set(percents)) and percents[0] > 0 and percents[-1] == 100
    assert offsets[0] == timedelta(0)
    # Equal spacing: one interval between shifts.
    assert all(
        b - a == minute * routing.interval_minutes
        for a, b in zip(offsets, offsets[1:], strict=False)
    )
    assert offsets[-1] == finish_offset(routing, minute=minute) == minute * routing.span_minutes
    assert routing.span_minutes <= MAX_SHIFT_SPAN_MINUTES
    if routing.type is TrafficRoutingType.ALL_AT_ONCE:
        assert planned == (Shift(timedelta(0), 100),)
    elif routing.type is TrafficRoutingType.TIME_BASED_CANARY:
        assert percents == [routing.percentage, 100]
    else:
        assert len(planned) == math.ceil(100 / routing.percentage)
        assert percents == [min(k * routing.percentage, 100) for k in range(1, len(planned) + 1)]


@settings(max_examples=300, deadline=None, database=None)
@given(routings, short_minutes, st.lists(st.integers(-(10**6), 10**12), min_size=1, max_size=20))
def test_weight_never_falls_and_follows_the_shifts(
    routing: TrafficRouting, minute: timedelta, elapsed_us: list[int]
) -> None:
    planned = shifts(routing, minute=minute)
    finish = finish_offset(routing, minute=minute)
    times = sorted(timedelta(microseconds=us) for us in elapsed_us)
    times += [finish, finish + timedelta(microseconds=1)] + [s.offset for s in planned]
    times.sort()
    weights = [weight_at(routing, t, minute=minute) for t in times]
    assert weights == sorted(weights)  # non-decreasing
    assert weight_at(routing, finish, minute=minute) == 100
    for t in times:
        weight = weight_at(routing, t, minute=minute)
        due = [s for s in planned if s.offset <= t]
        assert weight == (due[-1].percent if due else 0)
        following = next_shift_after(routing, t, minute=minute)
        if following is None:
            assert t >= finish and weight == 100
        else:
            assert following.offset > t and following in planned
            assert following.percent > weight
            # Nothing is due between now and the next shift.
            just_before = following.offset - timedelta(microseconds=1)
            assert weight_at(routing, max(t, just_before), minute=minute) == weight


@settings(max_examples=500, deadline=None, database=None)
@given(
    st.sampled_from(list(TrafficRoutingType)),
    st.integers(-5, 120),
    st.integers(-5, 4000),
)
def test_from_wire_accepts_exactly_what_aws_accepts(
    kind: TrafficRoutingType, p: int, i: int
) -> None:
    if kind is TrafficRoutingType.ALL_AT_ONCE:
        wire: dict[str, Any] = {"type": "AllAtOnce"}
    elif kind is TrafficRoutingType.TIME_BASED_CANARY:
        wire = _canary_wire(p, i)
    else:
        wire = _linear_wire(p, i)
    if _valid(kind, p, i):
        routing = TrafficRouting.from_wire(wire)
        assert routing.to_wire() == wire
        assert TrafficRouting.from_wire(routing.to_wire()) == routing
    else:
        with pytest.raises(InvalidTrafficRouting):
            TrafficRouting.from_wire(wire)
