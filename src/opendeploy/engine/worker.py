"""The engine worker: the loop and the pacer of the engine, over an :class:`EngineStore`.

One thread per server process. Each pass it asks the store for the active deployments
(Created, Queued, InProgress: a pending stop request is on such a row too), and for each one:

1. takes its lease (so replicas sharing a database never work on one deployment at once, and a
   dead replica's lease expires after ``lease_seconds``);
2. loads a :class:`~opendeploy.engine.snapshot.DeploymentSnapshot`;
3. calls :func:`~opendeploy.engine.reconcile.reconcile` (pure);
4. commits the :class:`~opendeploy.engine.reconcile.Decisions` in one transaction that also
   releases the lease (``store.engine_store``; what it writes is what
   :func:`~opendeploy.engine.apply.apply_decisions` predicts);
5. wakes the long polls of the hosts that got a command, and the effector runner when the pass
   created server steps.

The lease is held only during a pass: nothing lives only in memory between passes, so a
restarted server (or another replica) simply carries on. The worker sleeps on a :class:`Wakeup`
that CreateDeployment, StopDeployment, every agent report and every server step's outcome set,
and otherwise ticks every ``engine_tick_seconds`` for timeouts and dead agents; after an
expensive pass it rests (:class:`PassPacer`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from opendeploy.domain.status import TERMINAL_DEPLOYMENT_STATUSES
from opendeploy.engine.dispatch import HostNotifier, Wakeup
from opendeploy.engine.loop import BackgroundLoop
from opendeploy.engine.ports import Committed, EngineStore
from opendeploy.engine.reconcile import Decisions, EngineSettings, reconcile
from opendeploy.engine.snapshot import DeploymentSnapshot
from opendeploy.settings import ServerSettings
from opendeploy.store.database import Store

log = logging.getLogger("opendeploy.engine")


def engine_settings(settings: ServerSettings) -> EngineSettings:
    """The engine's timeouts from the server's settings."""
    return EngineSettings(
        event_timeout_seconds=settings.event_timeout_seconds,
        event_start_timeout_seconds=settings.event_start_timeout_seconds,
        agent_dead_after_seconds=settings.agent_dead_after_seconds,
        deployment_timeout_seconds=settings.deployment_timeout_seconds,
        restart_grace_seconds=settings.restart_grace_seconds,
        minute_seconds=settings.minute_seconds,
    )


def new_owner_id() -> str:
    """A replica's lease owner name: host, pid and a random part (unique per process start)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class EngineWorker(BackgroundLoop):
    """Runs the engine in a background thread; ``wake()`` makes it look at once."""

    thread_name = "opendeploy-engine"

    def __init__(
        self,
        store: Store,
        settings: ServerSettings,
        *,
        notifier: HostNotifier,
        wakeup: Wakeup | None = None,
        heard: Callable[[], Mapping[str, datetime]] | None = None,
        owner: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        backlog: Callable[[], float] | None = None,
        engine_store: EngineStore | None = None,
        on_server_steps: Callable[[], None] | None = None,
        publish: Callable[[list[str]], None] | None = None,
        polled: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        """``heard``: when this process's Command API last heard from each agent (newer than the
        store's batched ``last_seen_at`` when its writes lag). ``backlog``: how many seconds this
        process is behind with the agents' calls (see :mod:`opendeploy.api.backlog`); added to
        ``agent_dead_after_seconds`` each pass. ``engine_store``: the engine's persistence
        (default: SQL on ``store``). ``on_server_steps``: called after a pass that created
        server steps (wakes the effector runner). ``publish``: called with the hosts that got a
        command, after their polls here were woken (tells the other replicas, which may hold
        them: ``store.replica_channel``). ``polled``: the hosts that polled this process since
        it started (see ``DeploymentSnapshot.polled_here``)."""
        self.store = store
        self._heard = heard
        self._backlog = backlog
        self.settings = settings
        self.engine_settings = engine_settings(settings)
        super().__init__(wakeup)
        self.notifier = notifier
        self.owner = owner or new_owner_id()
        if engine_store is None:
            from opendeploy.store.engine_store import SqlEngineStore

            engine_store = SqlEngineStore(store, self.owner, lease_seconds=settings.lease_seconds)
        self.engine_store = engine_store
        self._on_server_steps = on_server_steps
        self._publish = publish
        self._polled = polled
        self._clock = clock
        #: Agents could not poll before this process started: see ``watching_since``.
        self.started_at = clock()
        # Notified after every pass, for callers waiting on an outcome (StopDeployment).
        self._passed = threading.Condition()

    def wait_terminal(self, deployment_id: str, timeout: float) -> bool:
        """Wait (pass by pass) until the deployment is Succeeded, Failed or Stopped."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.store.deployments.status_of(deployment_id)
            if status is None or status in TERMINAL_DEPLOYMENT_STATUSES:
                return status is not None
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._thread is None:
                return False
            with self._passed:
                self._passed.wait(remaining)

    def _run(self) -> None:
        log.info("engine worker started owner=%s", self.owner)
        pacer = PassPacer()
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:
                log.exception("engine pass failed; retrying on the next tick")
            with self._passed:
                self._passed.notify_all()
            self._stopping.wait(pacer.rest_after(started, time.monotonic()))
            self.wakeup.wait(self.settings.engine_tick_seconds)
        log.info("engine worker stopped owner=%s", self.owner)

    # --- one pass ---------------------------------------------------------------------------

    def run_once(self) -> int:
        """Reconcile every active deployment this replica can lease; returns how many changed."""
        changed = 0
        candidates = self.engine_store.candidates(self._clock())
        self.engine_store.forget(set(candidates))
        for deployment_id in candidates:
            if self._stopping.is_set():
                break
            if self.step(deployment_id):
                changed += 1
        return changed

    def step(self, deployment_id: str) -> bool:
        """Lease, reconcile and commit one deployment; True when something changed."""
        now = self._clock()
        store = self.engine_store
        if not store.lease(deployment_id, now):
            return False
        decisions: Decisions | None = None
        try:
            holding = frozenset(self.notifier.polling())
            heard = self._heard() if self._heard is not None else None
            settings = self._settings_now()
            load = functools.partial(
                store.load,
                deployment_id,
                now,
                watching_since=self.started_at,
                holding=holding,
                heard=heard,
            )
            polled = self._polled_now(now)
            loaded = load()
            if loaded is not None:
                decisions = reconcile(_with(loaded.snapshot, polled), now, settings=settings)
                if decisions.unreachable and loaded.instances_cached:
                    # Judged on instance rows read in an earlier pass: judge on fresh ones.
                    loaded = load(fresh_instances=True)
                    decisions = (
                        None
                        if loaded is None
                        else reconcile(_with(loaded.snapshot, polled), now, settings=settings)
                    )
            committed = store.commit(
                deployment_id,
                loaded,
                decisions,
                now,
                dead_after_seconds=self.engine_settings.agent_dead_after_seconds,
            )
        except BaseException:
            store.release(deployment_id)
            raise
        if committed is None:
            return False  # the lease expired mid-pass and another replica took it
        for name in committed.marked_unreachable:
            log.warning("instance unreachable instance=%s deployment_id=%s", name, deployment_id)
        if decisions is None or not decisions.has_changes:
            return False
        self._log(deployment_id, decisions, committed)
        if decisions.dispatch:
            hosts = [c.instance_id for c in decisions.dispatch if c.executor == "agent"]
            self.notifier.notify(hosts)
            if hosts and self._publish is not None:
                self._publish(hosts)
        if committed.server_steps and self._on_server_steps is not None:
            self._on_server_steps()
        if committed.rollback_id is not None:
            self.wakeup.set()
        return True

    def _polled_now(self, now: datetime) -> frozenset[str] | None:
        """The hosts that polled here since the start, while the restart grace lasts (after
        it the engine needs them no more: not read, not copied)."""
        if self._polled is None:
            return None
        grace = max(
            self.engine_settings.restart_grace_seconds,
            self.engine_settings.agent_dead_after_seconds,
        )
        if (now - self.started_at).total_seconds() > grace:
            return None
        return frozenset(self._polled())

    def _settings_now(self) -> EngineSettings:
        """The engine settings, with the dead-agent window stretched by the server's backlog:
        an agent whose call waits in this server's queue is not a dead agent."""
        behind = self._backlog() if self._backlog is not None else 0.0
        if behind <= 0:
            return self.engine_settings
        window = self.engine_settings.agent_dead_after_seconds + behind
        return dataclasses.replace(self.engine_settings, agent_dead_after_seconds=window)

    @staticmethod
    def _log(deployment_id: str, d: Decisions, committed: Committed) -> None:
        if d.deployment is not None:
            error = d.deployment.error
            log.info(
                "deployment status deployment_id=%s status=%s%s",
                deployment_id,
                d.deployment.status,
                f" error={error.code}" if error else "",
            )
        for hc in d.dispatch:
            log.debug(
                "dispatch deployment_id=%s instance=%s event=%s executor=%s",
                deployment_id,
                hc.instance_id,
                hc.event,
                hc.executor,
            )
        if committed.rollback_id is not None:
            log.info(
                "rollback deployment_id=%s rollback_id=%s", deployment_id, committed.rollback_id
            )


def _with(snapshot: DeploymentSnapshot, polled: frozenset[str] | None) -> DeploymentSnapshot:
    return snapshot if polled is None else dataclasses.replace(snapshot, polled_here=polled)


#: The engine's credit of pass time it may spend back to back before it rests (a small fleet's
#: passes, spaced out by the agents' own work, never use it up: no added latency).
PASS_CREDIT_SECONDS = 0.05
#: The longest rest after an expensive pass. A pass over 10,000 targets takes about 0.4 s
#: (most of it waiting for the GIL): with a cap of 0.2 s the engine ran three quarters of the
#: time and took a fifth of the server's CPU, when a pass a second takes in as many reports as
#: the API can answer meanwhile.
MAX_REST_SECONDS = 1.0


class PassPacer:
    """How long the worker rests after each pass: caps the engine at about half a core.

    A pass reads every target of each active deployment, so its cost grows with the fleet, and
    every completion wakes the worker: with thousands of hosts reporting, back-to-back passes
    would take a whole core and starve the API of the GIL. Time between passes (resting or
    waiting for a wake-up) earns credit, up to :data:`PASS_CREDIT_SECONDS`; a pass spends as long
    as it took; the worker rests until the credit is back to zero, at most
    :data:`MAX_REST_SECONDS`. Under sustained load that is a rest as long as the pass (the next
    pass then takes in everything that arrived meanwhile in one go); when passes are spaced out
    by idle time, as with one host running short hooks, no rest at all. (Resting after every
    pass longer than 5 ms, as before, added one pass of latency to every lifecycle event.)
    """

    def __init__(
        self, credit: float = PASS_CREDIT_SECONDS, max_rest: float = MAX_REST_SECONDS
    ) -> None:
        self._limit = credit
        self._max_rest = max_rest
        self._credit = credit
        self._last_end: float | None = None

    def rest_after(self, started: float, ended: float) -> float:
        """The rest after a pass run from ``started`` to ``ended`` (monotonic seconds)."""
        if self._last_end is not None:
            self._credit = min(self._limit, self._credit + max(0.0, started - self._last_end))
        # Debt beyond one rest is forgotten: after a burst of huge passes, cheap ones must not
        # keep resting to pay it back.
        self._credit = max(-self._max_rest, self._credit - max(0.0, ended - started))
        self._last_end = ended
        return min(self._max_rest, max(0.0, -self._credit))


def notify_hosts(notifier: HostNotifier, names: Sequence[str]) -> None:
    """Wake the polls of ``names`` (helper for callers outside the worker)."""
    notifier.notify(names)


class StopRequests:
    """StopDeployment through the engine: set the flag, wake the worker, wait for the outcome."""

    def __init__(self, worker: EngineWorker) -> None:
        self.worker = worker

    def request(self, deployment_id: str, *, auto_rollback: bool | None) -> None:
        """Flag the stop; the AWS errors for an unknown or finished deployment."""
        self.worker.store.deployments.request_stop(
            deployment_id,
            auto_rollback=auto_rollback,
            now=self.worker._clock(),
        )
        self.worker.wake()

    def wait_stopped(self, deployment_id: str, timeout: float) -> bool:
        """Whether the deployment reached a final status within ``timeout`` seconds."""
        return self.worker.wait_terminal(deployment_id, timeout)
