"""The weights of a traffic shift between two pools, and the effector that runs the schedule."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from opendeploy.domain.configs import TrafficRouting
from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.records import DeploymentStyle, LoadBalancerInfo
from opendeploy.engine.effectors import ServerStep, TrafficShift
from opendeploy.engine.effectors.traffic import HostTraffic, TrafficEffector
from opendeploy.engine.traffic_shift import (
    FULL_WEIGHT,
    green_share,
    pool_weights,
    shift_leader,
)


@pytest.mark.parametrize("blue", [1, 2, 3, 10])
@pytest.mark.parametrize("green", [1, 2, 7, 10])
@pytest.mark.parametrize("percent", [0, 1, 5, 10, 25, 33, 50, 90, 99, 100])
def test_each_pool_gets_its_scheduled_share(blue: int, green: int, percent: int) -> None:
    blues = [f"b{i}" for i in range(blue)]
    greens = [f"g{i}" for i in range(green)]
    weights = pool_weights(blues, greens, percent)
    assert set(weights) == {*blues, *greens}
    assert all(0 <= w <= FULL_WEIGHT for w in weights.values())
    # Within a pool every host gets the same weight, so the pool's share is split evenly.
    assert len({weights[b] for b in blues}) == 1 and len({weights[g] for g in greens}) == 1
    share = green_share(weights, greens)
    # The finest shares weights of 1..256 can give: one pool at weight 1, the other at 256.
    lowest = 100 * green / (green + FULL_WEIGHT * blue)
    highest = 100 - 100 * blue / (blue + FULL_WEIGHT * green)
    if 0 < percent < lowest:
        assert share == pytest.approx(lowest), weights
    elif highest < percent < 100:
        assert share == pytest.approx(highest), weights
    else:
        assert abs(share - percent) <= 0.5, weights


def test_an_even_fleet_is_exact() -> None:
    for n in (1, 2, 10):
        for percent in range(101):
            weights = pool_weights(
                [f"b{i}" for i in range(n)], [f"g{i}" for i in range(n)], percent
            )
            assert abs(green_share(weights, [f"g{i}" for i in range(n)]) - percent) <= 0.2


def test_the_ends_take_a_pool_out_and_give_the_other_the_full_weight() -> None:
    assert pool_weights(["b"], ["g"], 0) == {"b": FULL_WEIGHT, "g": 0}
    assert pool_weights(["b"], ["g"], 100) == {"b": 0, "g": FULL_WEIGHT}
    assert pool_weights([], ["g1", "g2"], 10) == {"g1": FULL_WEIGHT, "g2": FULL_WEIGHT}
    with pytest.raises(ValueError, match="no green host"):
        pool_weights(["b"], [], 10)
    with pytest.raises(ValueError, match="within 0..100"):
        pool_weights(["b"], ["g"], 101)
    assert shift_leader(["g2", "g10", "g1"]) == "g1"


class _Recorder:
    """A TrafficController that records what it was asked (and a clock the effector sleeps on)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def block(self, host: str, lb: LoadBalancerInfo, progress: object) -> str:
        self.calls.append(("block", host))
        return f"{host} out"

    def allow(self, host: str, lb: LoadBalancerInfo, progress: object) -> str:
        self.calls.append(("allow", host))
        return f"{host} in"

    def set_weights(
        self, lb: LoadBalancerInfo, weights: Mapping[str, int], progress: object
    ) -> str:
        self.calls.append(("weights", dict(weights)))
        return "ok"

    def state(self, lb: LoadBalancerInfo) -> list[HostTraffic]:
        return [HostTraffic("web", "b1", False, "MAINT", weight=0)]

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class _Progress:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def report(self, message: str) -> None:
        self.lines.append(message)

    def cancelled(self) -> bool:
        return False


def _step(event: LifecycleEvent, host: str, shift: TrafficShift | None, at: datetime) -> ServerStep:
    return ServerStep(
        command_id="c",
        deployment_id="d-AAAAAAAAA",
        target_id=host,
        event=event,
        started_at=at,
        load_balancer=LoadBalancerInfo(target_groups=("web",)),
        style=DeploymentStyle.from_wire({"deploymentType": "BLUE_GREEN"}),
        shift=shift,
    )


def test_the_leader_runs_a_linear_schedule_and_the_others_wait_at_weight_0() -> None:
    routing = TrafficRouting.from_wire(
        {
            "type": "TimeBasedLinear",
            "timeBasedLinear": {"linearPercentage": 40, "linearInterval": 1},
        }
    )
    shift = TrafficShift(routing=routing, blue=("b1",), green=("g1", "g2"), leader="g1")
    rec = _Recorder()
    effector = TrafficEffector(rec, minute=timedelta(seconds=1))
    effector.clock, effector.sleep = (lambda: rec.now), rec.sleep

    other = effector.run(_step(LifecycleEvent.ALLOW_TRAFFIC, "g2", shift, rec.now), _Progress())
    assert other.result == "Succeeded" and "at weight 0 until the traffic shift" in (
        other.diagnostics.message
    )
    assert rec.calls == [("weights", {"g2": 0}), ("allow", "g2")]

    rec.calls.clear()
    progress = _Progress()
    started = rec.now
    lead = effector.run(_step(LifecycleEvent.ALLOW_TRAFFIC, "g1", shift, started), progress)
    assert lead.result == "Succeeded", lead.diagnostics
    weights = [c[1] for c in rec.calls if c[0] == "weights"]
    shares = [round(green_share(w, ["g1", "g2"])) for w in weights[1:]]  # type: ignore[arg-type]
    assert shares == [40, 80, 100]  # 40 %/minute: 40, 80, then 100
    assert progress.lines == [f"{p}% of new requests to green" for p in (40, 80, 100)]
    assert rec.now - started >= timedelta(seconds=2)  # two intervals of a 1-second minute
    assert "40% → 80% → 100%" in lead.diagnostics.message

    # A rerun after the schedule's end catches up in one step: straight to 100 %.
    rec.calls.clear()
    rerun = effector.run(_step(LifecycleEvent.ALLOW_TRAFFIC, "g1", shift, started), _Progress())
    assert rerun.result == "Succeeded"
    assert [c for c in rec.calls if c[0] == "weights"][-1] == (
        "weights",
        {"b1": 0, "g1": FULL_WEIGHT, "g2": FULL_WEIGHT},
    )

    # Blue leaves the pool, then gets its full weight back for later deployments.
    rec.calls.clear()
    effector.run(_step(LifecycleEvent.BLOCK_TRAFFIC, "b1", shift, rec.now), _Progress())
    assert rec.calls == [("block", "b1"), ("weights", {"b1": FULL_WEIGHT})]

    # Without a shift, a host that a shift left at weight 0 gets its peers' weight back.
    rec.calls.clear()
    effector.run(_step(LifecycleEvent.ALLOW_TRAFFIC, "b1", None, rec.now), _Progress())
    assert rec.calls == [("weights", {"b1": FULL_WEIGHT}), ("allow", "b1")]
