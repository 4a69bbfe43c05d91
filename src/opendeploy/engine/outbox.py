"""Delivery of the outbox's deployment events to the sinks, at least once.

The loop leases a batch of undelivered events, hands it to every sink in order, and marks it
delivered only when all took it; a sink that fails leaves the batch to be delivered again when
its lease runs out, and a server killed in between leaves the same. Sinks therefore see an event
at least once and should use ``seq`` to drop repeats. The sink here writes each event as one
structured log line (logger ``opendeploy.events``); notifications (SNS, webhooks), the
dashboard's live view and metrics are sinks to come.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from opendeploy.engine.events import DeliveredEvent
from opendeploy.engine.loop import BackgroundLoop

log = logging.getLogger("opendeploy.outbox")
events_log = logging.getLogger("opendeploy.events")

#: Events per batch.
BATCH = 500
#: A batch leased by a deliverer that died is delivered again after this long.
LEASE_SECONDS = 30.0
#: Delivered events are kept this long (the outbox is not the deployment history).
KEEP_DELIVERED = timedelta(days=7)


class EventSink(Protocol):
    """Takes a batch of events; raises if it could not (the batch is delivered again)."""

    def deliver(self, events: Sequence[DeliveredEvent]) -> None: ...


class OutboxStore(Protocol):
    def lease_batch(
        self, now: datetime, *, lease_seconds: float, limit: int
    ) -> list[DeliveredEvent]: ...

    def settle(self, seqs: list[int], now: datetime) -> None: ...

    def prune(self, before: datetime) -> int: ...


class LogSink:
    """Each event as one ``key=value`` line of the server's log (``logger=opendeploy.events``)."""

    def deliver(self, events: Sequence[DeliveredEvent]) -> None:
        for delivered in events:
            e = delivered.event
            events_log.info(
                "deployment event seq=%d type=%s deployment_id=%s instance=%s status=%s "
                "occurred_at=%s%s",
                delivered.seq,
                e.event_type,
                e.deployment_id,
                e.instance_id or "-",
                e.status,
                e.occurred_at.isoformat(),
                f" detail={json.dumps(e.detail, sort_keys=True)}" if e.detail else "",
            )


class OutboxDelivery(BackgroundLoop):
    """The delivery loop: a thread per server process; ``wake()`` after a commit with events."""

    thread_name = "opendeploy-outbox"

    def __init__(
        self,
        outbox: OutboxStore,
        sinks: Sequence[EventSink],
        *,
        tick_seconds: float = 1.0,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self.outbox = outbox
        self.sinks = list(sinks)
        self.tick_seconds = tick_seconds
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._pruned_at: datetime | None = None

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver what is waiting (one last pass), then end the thread."""
        super().stop(timeout)

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            try:
                while self.deliver_once():
                    pass
                self._prune()
            except Exception:
                log.exception("outbox delivery failed; retrying on the next tick")
            if stopping:
                return
            self.wakeup.wait(self.tick_seconds)

    def deliver_once(self) -> int:
        """Lease one batch, hand it to every sink, settle it; how many events it had."""
        batch = self.outbox.lease_batch(self.clock(), lease_seconds=self.lease_seconds, limit=BATCH)
        if not batch:
            return 0
        for sink in self.sinks:
            sink.deliver(batch)
        self.outbox.settle([e.seq for e in batch], self.clock())
        return len(batch)

    def _prune(self) -> None:
        now = self.clock()
        if self._pruned_at is None or now - self._pruned_at > timedelta(hours=1):
            self._pruned_at = now
            self.outbox.prune(now - KEEP_DELIVERED)
