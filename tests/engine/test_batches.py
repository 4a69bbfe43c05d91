"""The minimum-healthy-hosts arithmetic, as tables (AWS's own examples included)."""

from __future__ import annotations

import pytest

from opendeploy.domain.configs import MinimumHealthyHostsType
from opendeploy.engine.batches import (
    Tally,
    budget,
    can_still_succeed,
    constraints_hold_at_start,
    free_slots,
    max_in_flight,
    required_healthy,
    success_threshold,
)
from opendeploy.engine.snapshot import (
    ALL_AT_ONCE,
    HALF_AT_A_TIME,
    ONE_AT_A_TIME,
    InvalidMinimumHealthyHosts,
    MinimumHealthyHosts,
    minimum_for,
)


def FP(value: int) -> MinimumHealthyHosts:
    return MinimumHealthyHosts(MinimumHealthyHostsType.FLEET_PERCENT, value)


def HC(value: int) -> MinimumHealthyHosts:
    return MinimumHealthyHosts(MinimumHealthyHostsType.HOST_COUNT, value)


# (config, total, required healthy, max in flight, successes needed)
TABLE = [
    # HalfAtATime: "up to half … at a time (fractions rounded down)", ">= half (rounded up)"
    (HALF_AT_A_TIME, 1, 1, 0, 1),  # cannot start: HEALTH_CONSTRAINTS_INVALID
    (HALF_AT_A_TIME, 2, 1, 1, 1),
    (HALF_AT_A_TIME, 3, 2, 1, 2),
    (HALF_AT_A_TIME, 4, 2, 2, 2),
    (HALF_AT_A_TIME, 5, 3, 2, 3),
    (HALF_AT_A_TIME, 6, 3, 3, 3),
    (HALF_AT_A_TIME, 7, 4, 3, 4),
    (HALF_AT_A_TIME, 8, 4, 4, 4),
    (HALF_AT_A_TIME, 9, 5, 4, 5),  # the user guide's example: 4 at a time, 5 needed
    (HALF_AT_A_TIME, 10, 5, 5, 5),
    # OneAtATime (MOST_CONCURRENCY 1): one at a time, all but the last must succeed
    (ONE_AT_A_TIME, 1, 0, 1, 1),
    (ONE_AT_A_TIME, 2, 1, 1, 1),
    (ONE_AT_A_TIME, 3, 2, 1, 2),
    (ONE_AT_A_TIME, 10, 9, 1, 9),
    # AllAtOnce (HOST_COUNT 0): everything at once, one success suffices
    (ALL_AT_ONCE, 1, 0, 1, 1),
    (ALL_AT_ONCE, 5, 0, 5, 1),
    (ALL_AT_ONCE, 10, 0, 10, 1),
    # custom FLEET_PERCENT, rounded up
    (FP(25), 4, 1, 3, 1),
    (FP(25), 9, 3, 6, 3),
    (FP(25), 10, 3, 7, 3),
    (FP(75), 2, 2, 0, 2),
    (FP(75), 4, 3, 1, 3),
    (FP(75), 9, 7, 2, 7),
    (FP(75), 10, 8, 2, 8),
    (FP(40), 9, 4, 5, 4),  # API Reference example: 5 at a time, 4 needed
    (FP(7), 100, 7, 93, 7),  # integer arithmetic: 0.07 * 100 is 7.000000000000001 in floats
    (FP(0), 3, 0, 3, 1),
    (FP(100), 5, 5, 0, 5),
    # custom HOST_COUNT
    (HC(6), 9, 6, 3, 6),  # API Reference example: 3 at a time, 6 needed
    (HC(1), 2, 1, 1, 1),
    (HC(3), 5, 3, 2, 3),
    (HC(3), 3, 3, 0, 3),
    (HC(5), 3, 5, 0, 3),
]


@pytest.mark.parametrize(("mhh", "total", "required", "in_flight", "needed"), TABLE)
def test_minimum_healthy_hosts_table(
    mhh: MinimumHealthyHosts, total: int, required: int, in_flight: int, needed: int
) -> None:
    assert required_healthy(total, mhh) == required
    assert max_in_flight(total, mhh) == in_flight
    assert success_threshold(total, mhh) == needed
    assert constraints_hold_at_start(total, mhh) is (in_flight > 0)


def test_no_instances_can_never_start() -> None:
    assert not constraints_hold_at_start(0, ALL_AT_ONCE)
    assert success_threshold(0, ALL_AT_ONCE) == 0


@pytest.mark.parametrize(
    ("mhh", "tally", "slots"),
    [
        (HALF_AT_A_TIME, Tally(total=4, pending=4), 2),
        (HALF_AT_A_TIME, Tally(total=4, failed=1, in_flight=1, pending=2), 0),
        (HALF_AT_A_TIME, Tally(total=4, succeeded=1, failed=1, pending=2), 1),
        (HALF_AT_A_TIME, Tally(total=4, failed=2, succeeded=1, pending=1), 0),
        (ALL_AT_ONCE, Tally(total=3, pending=3), 3),
        (ONE_AT_A_TIME, Tally(total=3, succeeded=1, pending=2), 1),
        (HC(3), Tally(total=5, in_flight=1, pending=4), 1),
    ],
)
def test_free_slots(mhh: MinimumHealthyHosts, tally: Tally, slots: int) -> None:
    assert free_slots(tally, mhh) == slots
    assert tally.in_flight + free_slots(tally, mhh) + tally.failed <= budget(tally.total, mhh)


@pytest.mark.parametrize(
    ("mhh", "tally", "possible"),
    [
        # HalfAtATime on 4: the second failure leaves 1 pending that can never start
        (HALF_AT_A_TIME, Tally(total=4, failed=1, in_flight=1, pending=2), True),
        (HALF_AT_A_TIME, Tally(total=4, failed=2, succeeded=1, pending=1), False),
        (HALF_AT_A_TIME, Tally(total=4, failed=2, in_flight=0, pending=2), False),
        (HALF_AT_A_TIME, Tally(total=4, failed=2, succeeded=2), True),
        # OneAtATime fails on the first failure unless it is the last instance
        (ONE_AT_A_TIME, Tally(total=3, failed=1, pending=2), False),
        (ONE_AT_A_TIME, Tally(total=3, succeeded=2, failed=1), True),
        (ONE_AT_A_TIME, Tally(total=1, failed=1), False),
        # AllAtOnce fails only when every instance failed
        (ALL_AT_ONCE, Tally(total=3, failed=2, in_flight=1), True),
        (ALL_AT_ONCE, Tally(total=3, failed=2, succeeded=1), True),
        (ALL_AT_ONCE, Tally(total=3, failed=3), False),
    ],
)
def test_can_still_succeed(mhh: MinimumHealthyHosts, tally: Tally, possible: bool) -> None:
    assert can_still_succeed(tally, mhh) is possible


@pytest.mark.parametrize(
    ("type_", "value", "text"),
    [
        ("HOST_COUNT", -1, "minimumHealthyHosts.value: -1 must be >= 0"),
        ("FLEET_PERCENT", 101, "minimumHealthyHosts.value: 101 exceeds 100 for FLEET_PERCENT"),
        ("MOST_CONCURRENCY", 0, "must be >= 1 for MOST_CONCURRENCY"),
        ("HOSTS", 1, "minimumHealthyHosts.type: 'HOSTS' is not a known type"),
    ],
)
def test_minimum_healthy_hosts_rejects_bad_values(type_: str, value: int, text: str) -> None:
    with pytest.raises(InvalidMinimumHealthyHosts, match=text):
        MinimumHealthyHosts(type_, value)  # type: ignore[arg-type]


def test_predefined_one_at_a_time_maps_to_most_concurrency() -> None:
    # domain.configs stores it as HOST_COUNT 1; the engine must still run one at a time.
    assert minimum_for("CodeDeployDefault.OneAtATime", "HOST_COUNT", 1) == ONE_AT_A_TIME
    assert max_in_flight(5, minimum_for("CodeDeployDefault.OneAtATime", "HOST_COUNT", 1)) == 1
    assert minimum_for("custom", "HOST_COUNT", 1) == HC(1)
    assert minimum_for("CodeDeployDefault.HalfAtATime", "FLEET_PERCENT", 50) == HALF_AT_A_TIME
    with pytest.raises(InvalidMinimumHealthyHosts, match="'BOGUS' is not a known type"):
        minimum_for("custom", "BOGUS", 1)
