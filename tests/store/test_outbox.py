"""The outbox's delivery: at least once, in order, one deliverer per batch, nothing lost when a
deliverer dies between handing a batch to the sinks and settling it. Both databases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from opendeploy.engine.events import DeliveredEvent, DeploymentEvent, TriggerEvent
from opendeploy.engine.outbox import OutboxDelivery
from opendeploy.store.database import Store
from opendeploy.store.engine_store import record_events
from opendeploy.store.outbox import Outbox

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _record(store: Store, count: int) -> None:
    events = [
        DeploymentEvent("d-AAAAAAAAA", TriggerEvent.INSTANCE_START, "InProgress", T0, f"web-{i}")
        for i in range(count)
    ]
    with store.database.write() as conn:
        record_events(conn, events)


class Sink:
    """Remembers what it was given; fails the first ``failures`` batches."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.seen: list[DeliveredEvent] = []

    def deliver(self, events: Sequence[DeliveredEvent]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the webhook did not answer")
        self.seen.extend(events)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_every_event_is_delivered_once_in_order(store: Store) -> None:
    _record(store, 3)
    sink = Sink()
    delivery = OutboxDelivery(Outbox(store, "a"), [sink], clock=Clock())
    assert delivery.deliver_once() == 3
    assert delivery.deliver_once() == 0
    assert [e.event.instance_id for e in sink.seen] == ["web-0", "web-1", "web-2"]
    assert [e.seq for e in sink.seen] == sorted(e.seq for e in sink.seen)
    assert {e.event.event_type for e in sink.seen} == {TriggerEvent.INSTANCE_START}
    assert Outbox(store, "a").undelivered() == 0


def test_a_failed_sink_gets_the_batch_again_after_the_lease(store: Store) -> None:
    _record(store, 2)
    sink, clock = Sink(failures=1), Clock()
    delivery = OutboxDelivery(Outbox(store, "a"), [sink], clock=clock, lease_seconds=30)
    with pytest.raises(ConnectionError):
        delivery.deliver_once()
    # Leased to "a" but not settled: another deliverer does not take it before the lease ends.
    other = OutboxDelivery(Outbox(store, "b"), [sink], clock=clock, lease_seconds=30)
    assert other.deliver_once() == 0
    clock.now += timedelta(seconds=31)
    assert other.deliver_once() == 2
    assert [e.event.instance_id for e in sink.seen] == ["web-0", "web-1"]
    assert Outbox(store, "a").undelivered() == 0


def test_a_deliverer_killed_before_settling_loses_nothing(store: Store) -> None:
    """As a SIGKILL between the sinks and the settle: the rows stay leased and undelivered; the
    same replica after a restart (its id survives) delivers them at once, a repeat the sinks
    recognise by ``seq``."""
    _record(store, 2)
    clock = Clock()
    leased = Outbox(store, "a").lease_batch(clock(), lease_seconds=30, limit=10)
    assert len(leased) == 2  # handed to the sinks; then the process died
    restarted = Sink()
    OutboxDelivery(Outbox(store, "a"), [restarted], clock=clock).deliver_once()
    assert [e.seq for e in restarted.seen] == [e.seq for e in leased]


def test_two_deliverers_never_share_a_batch(store: Store) -> None:
    _record(store, 4)
    clock = Clock()
    first = Outbox(store, "a").lease_batch(clock(), lease_seconds=30, limit=2)
    second = Outbox(store, "b").lease_batch(clock(), lease_seconds=30, limit=10)
    assert len(first) == 2 and len(second) == 2
    assert not {e.seq for e in first} & {e.seq for e in second}


def test_delivered_events_are_pruned_after_a_week(store: Store) -> None:
    _record(store, 1)
    outbox = Outbox(store, "a")
    outbox.settle([e.seq for e in outbox.lease_batch(T0, lease_seconds=30, limit=10)], T0)
    assert outbox.prune(T0) == 0
    assert outbox.prune(T0 + timedelta(days=8)) == 1
