"""From outbox events to sent notifications: the fan-out sink and the sending loop.

:class:`TriggerFanOut` is an outbox sink: for each event it makes one delivery per trigger of the
deployment's group whose ``triggerEvents`` include it, with the message rendered there and then
(``messages.build``). Making them is idempotent, so the outbox's at-least-once hand-over makes
each (event, trigger) once. :class:`NotificationSender` claims due deliveries under a lease,
sends each (SNS or webhook), and records the attempt: Delivered, Pending again after a backoff,
or Failed after the last attempt. A server killed mid-send leaves its claim; the restarted
replica (same id) takes it back at once and sends again with the same idempotency key.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opendeploy import metrics
from opendeploy.engine.events import DeliveredEvent
from opendeploy.engine.loop import BackgroundLoop
from opendeploy.engine.notifications.declaration import Notifications
from opendeploy.engine.notifications.messages import (
    DeploymentFacts,
    build,
    is_instance_event,
    wanted,
)
from opendeploy.engine.notifications.retry import RetryPolicy
from opendeploy.engine.notifications.senders import (
    SNS_SEND_SECONDS,
    Delivery,
    Sender,
    SendResult,
)

if TYPE_CHECKING:
    from opendeploy.store.notifications import NotificationLog

log = logging.getLogger("opendeploy.notifications")

SNS = "sns"
WEBHOOK = "webhook"
#: Deliveries claimed per round, and sent at once (each sender waits on the network).
BATCH = 32
CONCURRENCY = 8
#: The shortest claim on a batch; longer when its sends may take longer (see ``_lease_for``).
LEASE_SECONDS = 60.0
KEEP_SETTLED = timedelta(days=7)


class TriggerFanOut:
    """The outbox sink that turns events into deliveries (one per subscribed trigger)."""

    def __init__(
        self,
        deliveries: NotificationLog,
        declaration: Notifications,
        *,
        region: str,
        account_id: str,
        on_added: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.deliveries = deliveries
        self.declaration = declaration
        self.region = region
        self.account_id = account_id
        self.on_added = on_added
        self.clock = clock

    def deliver(self, events: Sequence[DeliveredEvent]) -> None:
        subjects = self.deliveries.subjects(d.event.deployment_id for d in events)
        if not subjects:
            return  # no group of these events' deployments has triggers
        wanted_by: list[tuple[DeliveredEvent, list[Mapping[str, Any]]]] = []
        for delivered in events:
            subject = subjects.get(delivered.event.deployment_id)
            if subject is not None:
                kind = delivered.event.event_type
                triggers = [t for t in subject.triggers if wanted(t, kind)]
                if triggers:
                    wanted_by.append((delivered, triggers))
        # Instance events need the instance's ARN and lifecycle: read for those wanted only.
        instances: dict[str, set[str]] = {}
        for delivered, _ in wanted_by:
            e = delivered.event
            if e.instance_id is not None and is_instance_event(e.event_type):
                instances.setdefault(e.deployment_id, set()).add(e.instance_id)
        facts = {
            dep: self.deliveries.with_instances(subjects[dep].facts, instances.get(dep, ()))
            for dep in {d.event.deployment_id for d, _ in wanted_by}
        }
        now = self.clock()
        rows = [
            self._row(delivered, facts[delivered.event.deployment_id], trigger, now)
            for delivered, triggers in wanted_by
            for trigger in triggers
        ]
        if rows and self.deliveries.add(rows):
            self.on_added()

    def _row(
        self,
        delivered: DeliveredEvent,
        facts: DeploymentFacts,
        trigger: Mapping[str, Any],
        now: datetime,
    ) -> dict[str, Any]:
        name = str(trigger.get("triggerName") or "")
        arn = str(trigger.get("triggerTargetArn") or "")
        note = build(delivered, facts, name, region=self.region, account_id=self.account_id)
        hook = self.declaration.webhook(arn)
        e = delivered.event
        return {
            "event_seq": delivered.seq,
            "trigger_name": name,
            "idempotency_key": note.idempotency_key,
            "deployment_id": e.deployment_id,
            "instance_id": e.instance_id,
            "event_type": str(e.event_type),
            "target_kind": WEBHOOK if hook is not None else SNS,
            "target": arn,
            "subject": note.subject,
            "message": note.message,
            "status": "Pending",
            "attempts": 0,
            "occurred_at": e.occurred_at,
            "created_at": now,
            "next_attempt_at": now,
        }


class NotificationSender(BackgroundLoop):
    """The sending loop: a thread per server process, woken when deliveries are added."""

    thread_name = "opendeploy-notify"

    def __init__(
        self,
        deliveries: NotificationLog,
        declaration: Notifications,
        senders: Mapping[str, Sender],
        *,
        policy: RetryPolicy | None = None,
        tick_seconds: float = 0.5,
        lease_seconds: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self.deliveries = deliveries
        self.declaration = declaration
        self.senders = dict(senders)
        self.policy = policy or RetryPolicy()
        self.tick_seconds = tick_seconds
        self.lease_seconds = lease_seconds or _lease_for(declaration)
        self.clock = clock
        self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="opendeploy-notify-send")
        self._pruned_at: datetime | None = None
        #: The earliest retry this round scheduled (the loop wakes for it).
        self._soonest: datetime | None = None

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._soonest = None
            try:
                while self.send_once() and not self._stopping.is_set():
                    pass
                self._prune()
            except Exception:
                log.exception("notification delivery failed; retrying on the next tick")
            wait = self.tick_seconds
            if self._soonest is not None:
                # A retry due before the next tick is not kept waiting for it.
                until = (self._soonest - self.clock()).total_seconds()
                wait = min(wait, max(until, 0.01))
            self.wakeup.wait(wait)

    def send_once(self) -> int:
        """Claim due deliveries, send them (concurrently), record each attempt; how many."""
        claimed = self.deliveries.claim(self.clock(), lease_seconds=self.lease_seconds, limit=BATCH)
        if not claimed:
            return 0
        for delivery, result in zip(claimed, self._pool.map(self._send, claimed), strict=True):
            self._settle(delivery, result)
        return len(claimed)

    def _send(self, delivery: Delivery) -> SendResult:
        kind = WEBHOOK if self.declaration.webhook(delivery.target) is not None else SNS
        started = time.perf_counter()
        try:
            result = self.senders[kind].send(delivery)
        except Exception as e:  # a notifier's bug must not stop the others
            log.exception("notifier %s raised", kind)
            result = SendResult(False, error=f"{type(e).__name__}: {e}")
        metrics.NOTIFICATION_SECONDS.labels(kind).observe(time.perf_counter() - started)
        metrics.NOTIFICATIONS.labels(kind, "delivered" if result.ok else "failed").inc()
        return result

    def _settle(self, delivery: Delivery, result: SendResult) -> None:
        now = self.clock()
        retry_at = None if result.ok else self.policy.next_attempt(delivery.attempt, now)
        if retry_at is not None and (self._soonest is None or retry_at < self._soonest):
            self._soonest = retry_at
        status = self.deliveries.settle(
            delivery.id,
            now,
            ok=result.ok,
            status_code=result.status_code,
            error=result.error,
            retry_at=retry_at,
        )
        if result.ok:
            log.info(
                "notification delivered id=%d trigger=%s event=%s deployment_id=%s attempt=%d",
                delivery.id,
                delivery.trigger_name,
                delivery.event_type,
                delivery.deployment_id,
                delivery.attempt,
            )
        else:
            log.warning(
                "notification attempt failed id=%d trigger=%s event=%s deployment_id=%s "
                "attempt=%d status=%s error=%s next=%s",
                delivery.id,
                delivery.trigger_name,
                delivery.event_type,
                delivery.deployment_id,
                delivery.attempt,
                status,
                result.error,
                retry_at.isoformat() if retry_at else "gave-up",
            )

    def _prune(self) -> None:
        now = self.clock()
        if self._pruned_at is None or now - self._pruned_at > timedelta(hours=1):
            self._pruned_at = now
            self.deliveries.prune(now - KEEP_SETTLED)


def _lease_for(declaration: Notifications) -> float:
    """A claim outlasting the slowest batch twice over: a batch is sent ``CONCURRENCY`` at a
    time, each send bounded by its timeout, so another replica never takes over a batch that is
    still being sent (its own restart takes its claims back at once, whatever their length)."""
    slowest = max(
        [SNS_SEND_SECONDS, *(hook.timeout_seconds for hook in declaration.webhooks.values())]
    )
    return max(LEASE_SECONDS, 2 * math.ceil(BATCH / CONCURRENCY) * slowest)
