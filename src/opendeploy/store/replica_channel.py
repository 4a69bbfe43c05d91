"""Replicas tell each other which hosts got a command: PostgreSQL LISTEN/NOTIFY.

A command made by one replica's engine must reach an agent whose long poll another replica
holds. Each process's sweep finds such commands within a second (``engine.dispatch``); this
channel makes it milliseconds: after each engine pass that dispatched commands, the replica
sends ``NOTIFY opendeploy_hosts`` with the hosts' names, and every replica's listener thread
wakes the polls it holds for them. The sweep stays as the net under it: a notification lost
while a listener reconnects (the database restarted) is found by the next sweep.

No broker beyond the database the replicas already share; SQLite (one server) needs none.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator

import psycopg
from sqlalchemy.engine import URL

log = logging.getLogger("opendeploy.replicas")

CHANNEL = "opendeploy_hosts"
#: PostgreSQL's limit on a payload is 8,000 bytes; a notification carries this many at most.
PAYLOAD_LIMIT = 7_900
#: How long the listener waits for a notification before it looks whether it must stop.
LISTEN_SLICE_SECONDS = 0.5
#: The longest a (re)connection may take: the sender runs on the engine's thread, which must
#: not hang on a database that does not answer (the sweep covers what is not sent).
CONNECT_TIMEOUT_SECONDS = 2
#: Between attempts to reconnect the listener (the database restarting, say).
RECONNECT_SECONDS = 1.0


def conninfo(url: URL) -> str:
    """The libpq connection string of a SQLAlchemy ``postgresql+psycopg://`` URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def payloads(replica: str, hosts: Iterable[str]) -> Iterator[str]:
    """``hosts`` as notification payloads: the sender's name, then one host a line, each payload
    under :data:`PAYLOAD_LIMIT` bytes."""
    head = replica + "\n"
    chunk: list[str] = []
    size = len(head.encode())
    for host in hosts:
        n = len(host.encode()) + 1
        if chunk and size + n > PAYLOAD_LIMIT:
            yield head + "\n".join(chunk)
            chunk, size = [], len(head.encode())
        chunk.append(host)
        size += n
    if chunk:
        yield head + "\n".join(chunk)


def parse(payload: str, replica: str) -> list[str]:
    """The hosts a payload names; none when this very replica sent it (it woke its own)."""
    sender, _, rest = payload.partition("\n")
    if sender == replica or not rest:
        return []
    return rest.split("\n")


class ReplicaChannel:
    """Publishes the hosts that got a command; hands the other replicas' to ``on_hosts``."""

    def __init__(self, url: URL, replica: str, on_hosts: Callable[[list[str]], None]) -> None:
        self._conninfo = conninfo(url)
        self.replica = replica
        self._on_hosts = on_hosts
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._sender: psycopg.Connection | None = None
        #: Set once the listener's LISTEN is in place (tests and benchmarks wait on it).
        self.listening = threading.Event()

    # --- sending (the engine's thread) ---------------------------------------------------------

    def publish(self, hosts: Iterable[str]) -> None:
        """NOTIFY the other replicas of ``hosts``; a failure is logged (the sweep finds them)."""
        messages = list(payloads(self.replica, hosts))
        if not messages:
            return
        with self._send_lock:
            # Twice at most: a connection kept from before a database restart fails once.
            for attempt in (1, 2):
                try:
                    if self._sender is None or self._sender.closed:
                        self._sender = psycopg.connect(
                            self._conninfo,
                            autocommit=True,
                            connect_timeout=CONNECT_TIMEOUT_SECONDS,
                        )
                    for message in messages:
                        self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, message))
                    return
                except psycopg.Error as exc:
                    self._close_sender()
                    if attempt == 2:
                        log.warning(
                            "could not notify the other replicas (their sweep will): %s", exc
                        )

    def _close_sender(self) -> None:
        if self._sender is not None:
            try:
                self._sender.close()
            finally:
                self._sender = None

    # --- listening (a thread of its own) -------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._listen, name="opendeploy-replica-channel", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._send_lock:
            self._close_sender()

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=LISTEN_SLICE_SECONDS):
                            hosts = parse(note.payload, self.replica)
                            if hosts:
                                self._on_hosts(hosts)
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("replica channel lost, reconnecting: %s", exc)
                self._stopping.wait(RECONNECT_SECONDS)
