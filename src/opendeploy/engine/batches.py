"""How many instances a deployment may take out of service, and when it can no longer succeed.

Pure arithmetic on ``minimumHealthyHosts``, exactly as AWS documents it:

- ``HOST_COUNT v``: at least ``v`` instances must stay healthy (API Reference, MinimumHealthyHosts:
  "with nine instances, if a HOST_COUNT of six is specified, deploy to up to three instances at a
  time. The deployment is successful if six or more instances are deployed to successfully").
- ``FLEET_PERCENT p``: "CodeDeploy converts the percentage to the equivalent number of instances
  and rounds up fractional instances" (CreateDeploymentConfig, ``minimumHealthyHosts``): 9
  instances at 40 % need ceil(3.6) = 4, so up to 5 at a time. HalfAtATime (50 %) on 5 hosts needs
  3 and runs 2 at a time ("up to half of the instances at a time (with fractions rounded down)").
- ``MOST_CONCURRENCY 1`` is what GetDeploymentConfig returns for CodeDeployDefault.OneAtATime:
  one instance at a time, and "all instances but one are kept in a healthy state … if the
  deployment to the last instance fails, the overall deployment is still successful". So
  ``MOST_CONCURRENCY v`` needs ``total - v`` healthy instances and allows ``v`` in flight.

Health, as the user guide's "Instance health" page describes it: an instance that is being
deployed to, or whose deployment failed, is unhealthy; one still waiting (old revision) or
succeeded is healthy. The engine never lets ``in_flight + failed`` exceed
``total - required_healthy`` (the *budget*).

Success needs ``max(required_healthy, 1)`` succeeded instances: the ``1`` is AllAtOnce's rule
("succeeds if the application revision is deployed to one or more of the instances"), and for a
one-instance OneAtATime group "the overall deployment succeeds only if deployment to the single
instance succeeds".

When ``required_healthy >= total`` for HOST_COUNT or FLEET_PERCENT, no instance can be taken out
of service; AWS "will immediately fail the overall deployment" (user guide, Instance health:
"Make sure the minimum number of healthy instances you specify is less than the total number of
instances"). :func:`constraints_hold_at_start` reports that case; HalfAtATime on one host is one.
"""

from __future__ import annotations

from dataclasses import dataclass

from opendeploy.engine.snapshot import MinimumHealthyHosts


def required_healthy(total: int, mhh: MinimumHealthyHosts) -> int:
    """The number of instances that must stay healthy (and, at the end, have succeeded)."""
    if mhh.type == "HOST_COUNT":
        return mhh.value
    if mhh.type == "FLEET_PERCENT":
        # Integer form of ceil(total * value / 100), free of float rounding.
        return -(-total * mhh.value // 100)
    return max(total - mhh.value, 0)


def budget(total: int, mhh: MinimumHealthyHosts) -> int:
    """How many instances may be unhealthy (in flight or failed) at once; never negative."""
    if mhh.type == "MOST_CONCURRENCY":
        return min(mhh.value, total)
    return max(total - required_healthy(total, mhh), 0)


def max_in_flight(total: int, mhh: MinimumHealthyHosts) -> int:
    """The largest batch: how many instances are deployed to at once while none has failed.

    ``0`` means the constraints cannot be met at all (see :func:`constraints_hold_at_start`).
    """
    return budget(total, mhh)


def success_threshold(total: int, mhh: MinimumHealthyHosts) -> int:
    """How many instances must succeed for the deployment to succeed (at least one)."""
    if total == 0:
        return 0
    return min(max(required_healthy(total, mhh), 1), total)


def constraints_hold_at_start(total: int, mhh: MinimumHealthyHosts) -> bool:
    """Whether a deployment to ``total`` instances can start at all under ``mhh``."""
    return total > 0 and budget(total, mhh) > 0


@dataclass(frozen=True, slots=True)
class Tally:
    """Targets of one deployment counted by where they stand for the health rule."""

    total: int
    succeeded: int = 0
    failed: int = 0
    in_flight: int = 0
    pending: int = 0


def free_slots(tally: Tally, mhh: MinimumHealthyHosts) -> int:
    """How many pending targets may start now without breaking the minimum of healthy hosts."""
    slots = budget(tally.total, mhh) - tally.failed - tally.in_flight
    return max(0, min(slots, tally.pending))


def can_still_succeed(tally: Tally, mhh: MinimumHealthyHosts) -> bool:
    """Whether the deployment can still reach its success threshold.

    The best case is that every in-flight target succeeds, and every pending target too if any
    pending target can ever start (failures only grow, so once ``failed`` fills the budget no
    pending target ever will). OneAtATime on 3 hosts: the first failure leaves 2 pending that can
    never start, best case 0 < 2, so it fails at once; a failure of the last one leaves 2 >= 2.
    """
    startable = tally.pending if tally.failed < budget(tally.total, mhh) else 0
    best = tally.succeeded + tally.in_flight + startable
    return best >= success_threshold(tally.total, mhh)
