"""The notification delivery log: made once per (event, trigger) however often the outbox hands
an event over, claimed by one sender at a time, taken back by its owner after a restart and by
anyone once the claim runs out, settled only by the claim's holder. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opendeploy.store.database import Store
from opendeploy.store.notifications import NotificationLog

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _row(seq: int, trigger: str = "chat") -> dict[str, Any]:
    return {
        "event_seq": seq,
        "trigger_name": trigger,
        "idempotency_key": f"key-{seq}-{trigger}",
        "deployment_id": "d-AAAAAAAAA",
        "instance_id": None,
        "event_type": "DeploymentSuccess",
        "target_kind": "webhook",
        "target": "arn:aws:sns:us-east-1:000000000000:deploys",
        "subject": "SUCCEEDED: AWS CodeDeploy d-AAAAAAAAA in us-east-1 to shop",
        "message": "{}",
        "status": "Pending",
        "attempts": 0,
        "occurred_at": T0,
        "created_at": T0,
        "next_attempt_at": T0,
    }


def test_made_once_per_event_and_trigger_claims_split_the_work_and_survive_a_restart(
    store: Store,
) -> None:
    a, b = NotificationLog(store, "replica-a"), NotificationLog(store, "replica-b")
    assert a.add([_row(1), _row(1, "pager"), _row(2)]) == 3
    # The outbox hands the batch over again (at least once): nothing new.
    assert a.add([_row(1), _row(1, "pager"), _row(2), _row(3), _row(4)]) == 2
    assert b.add([_row(4), _row(5)]) == 1
    first = a.claim(T0, lease_seconds=60, limit=3)
    second = b.claim(T0, lease_seconds=60, limit=10)
    assert [d.id for d in first] + [d.id for d in second] == sorted(d.id for d in [*first, *second])
    assert len(first) == 3 and len(second) == 3
    # Replica a restarted (same id): its unexpired claims are its own again at once.
    again = NotificationLog(store, "replica-a").claim(T0, lease_seconds=60, limit=10)
    assert {d.id for d in again} == {d.id for d in first}
    assert all(d.attempt == 1 and d.idempotency_key.startswith("key-") for d in again)
    # Another replica gets them only once the claim ran out.
    c = NotificationLog(store, "replica-c")
    assert c.claim(T0 + timedelta(seconds=30), lease_seconds=60, limit=10) == []
    late = c.claim(T0 + timedelta(seconds=61), lease_seconds=60, limit=10)
    assert {d.id for d in late} == {d.id for d in [*first, *second]}


def test_only_the_claims_holder_settles_and_retries_wait_their_turn(store: Store) -> None:
    a, b = NotificationLog(store, "a"), NotificationLog(store, "b")
    a.add([_row(1), _row(2)])
    one, two = a.claim(T0, lease_seconds=60, limit=2)
    retry_at = T0 + timedelta(seconds=4)
    assert b.settle(one.id, T0, ok=True, status_code=200, error=None, retry_at=None) is None
    assert (
        a.settle(one.id, T0, ok=False, status_code=500, error="HTTP 500", retry_at=retry_at)
        == "Pending"
    )
    assert a.settle(two.id, T0, ok=True, status_code=200, error=None, retry_at=None) == "Delivered"
    assert b.claim(T0 + timedelta(seconds=3), lease_seconds=60, limit=10) == []
    (retried,) = b.claim(retry_at, lease_seconds=60, limit=10)
    assert (retried.id, retried.attempt) == (one.id, 2)
    assert b.settle(retried.id, retry_at, ok=False, status_code=None, error="timed out",
                    retry_at=None) == "Failed"  # fmt: skip
    rows = {r.id: r for r in a.recent()}
    assert (rows[one.id].status, rows[one.id].attempts, rows[one.id].last_error) == (
        "Failed",
        2,
        "timed out",
    )
    assert rows[two.id].delivered_at == T0
    assert [r.id for r in a.recent(status="Failed")] == [one.id]
    assert a.counts() == {("webhook", "Delivered"): 1, ("webhook", "Failed"): 1}
    assert a.prune(T0 + timedelta(days=1)) == 2
