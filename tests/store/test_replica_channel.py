"""The replicas' LISTEN/NOTIFY channel: hosts that got a command, from one replica to the others."""

from __future__ import annotations

import queue
import statistics
import time

from sqlalchemy.engine import make_url

from opendeploy.store.database import engine_url
from opendeploy.store.replica_channel import PAYLOAD_LIMIT, ReplicaChannel, parse, payloads


def test_payloads_fit_postgres_limit_and_name_their_sender() -> None:
    hosts = [f"host-{i:05d}.example.internal" for i in range(2_000)]
    messages = list(payloads("replica-a", hosts))
    assert len(messages) > 1
    assert all(len(m.encode()) <= PAYLOAD_LIMIT for m in messages)
    back = [h for m in messages for h in parse(m, "replica-b")]
    assert back == hosts
    # A replica ignores its own notifications: its engine woke its polls already.
    assert all(parse(m, "replica-a") == [] for m in messages)
    assert list(payloads("replica-a", [])) == []


def test_hosts_published_by_one_replica_reach_the_others_in_milliseconds(
    postgres_url: str,
) -> None:
    url = make_url(engine_url(postgres_url))
    got: queue.Queue[tuple[float, list[str]]] = queue.Queue()
    a = ReplicaChannel(url, "replica-a", lambda hosts: got.put((time.monotonic(), ["a", *hosts])))
    b = ReplicaChannel(url, "replica-b", lambda hosts: got.put((time.monotonic(), ["b", *hosts])))
    a.start()
    b.start()
    try:
        assert a.listening.wait(10) and b.listening.wait(10)
        latencies = []
        for i in range(20):
            sent = time.monotonic()
            a.publish([f"web-{i}", f"db-{i}"])
            when, hosts = got.get(timeout=5)
            latencies.append(when - sent)
            assert hosts == ["b", f"web-{i}", f"db-{i}"]  # only B, not A itself
        assert got.empty()
    finally:
        a.stop()
        b.stop()
    # The target is 50 ms for a whole command; the channel alone is a few ms on loopback.
    assert statistics.median(latencies) < 0.5, latencies


def test_both_ends_reconnect_when_the_database_drops_their_connections(postgres_url: str) -> None:
    import psycopg

    url = make_url(engine_url(postgres_url))
    got: queue.Queue[list[str]] = queue.Queue()
    a = ReplicaChannel(url, "replica-a", lambda hosts: None)
    b = ReplicaChannel(url, "replica-b", got.put)
    b.start()
    try:
        assert b.listening.wait(10)
        a.publish(["web-1"])
        assert got.get(timeout=5) == ["web-1"]
        # What a database restart does to them: every connection of this database is cut.
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        deadline = time.monotonic() + 10
        while b.listening.is_set():  # the listener notices, then connects again
            assert time.monotonic() < deadline, "the listener never noticed"
            time.sleep(0.01)
        assert b.listening.wait(10)
        a.publish(["web-2"])  # the sender's connection is gone too: it connects again at once
        assert got.get(timeout=5) == ["web-2"]
    finally:
        a.stop()
        b.stop()
