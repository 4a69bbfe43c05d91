"""The effector runner: takes up due server steps and runs their effectors, outside the engine.

One thread per server process plays the loop (take up due steps, renew the leases of running
ones, notice cancelled ones); each step runs in a small pool of its own, since a load balancer's
drain or a traffic schedule can take minutes and must not hold up the others. After every
outcome the engine is woken, as an agent's report wakes it.

Leases: a step taken up carries the time of its last renewal (``delivered_at``); the loop renews
each running step every ``lease_seconds / 3``. A runner that dies (or loses the database) stops
renewing, and after ``lease_seconds`` any runner takes the step up again and runs it again
(``ServerStep.rerun``): effectors are idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from opendeploy import metrics
from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.engine.effectors import Effector, ServerStep, StepOutcome
from opendeploy.engine.loop import BackgroundLoop

log = logging.getLogger("opendeploy.effectors")

#: Steps run at once per server process (each holds a thread while it waits on a load balancer).
MAX_PARALLEL_STEPS = 16
#: A step whose runner stops renewing is taken up again after this long.
STEP_LEASE_SECONDS = 30.0


class StepStore(Protocol):
    """What the runner needs of the store (``store.server_steps.ServerSteps``)."""

    def take_due(
        self, now: datetime, *, stale_before: datetime, limit: int
    ) -> list[ServerStep]: ...

    def renew(self, command_id: str, now: datetime, message: str | None = None) -> bool: ...

    def report(self, step: ServerStep, outcome: StepOutcome, now: datetime) -> bool: ...


@dataclass
class _Running:
    """A step in the pool, with what the loop and the effector share about it."""

    step: ServerStep
    renewed: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)


class _Progress:
    """The :class:`~opendeploy.engine.effectors.StepProgress` of one running step."""

    def __init__(self, runner: EffectorRunner, running: _Running) -> None:
        self._runner = runner
        self._running = running

    def report(self, message: str) -> None:
        alive = self._runner.steps.renew(
            self._running.step.command_id, self._runner.clock(), message
        )
        self._running.renewed = time.monotonic()
        if not alive:
            self._running.cancelled.set()

    def cancelled(self) -> bool:
        return self._running.cancelled.is_set()


class EffectorRunner(BackgroundLoop):
    """Runs server steps: ``wake()`` after the engine dispatched some; ``on_outcome`` after each."""

    thread_name = "opendeploy-effectors"

    def __init__(
        self,
        steps: StepStore,
        effectors: Mapping[LifecycleEvent, Effector],
        *,
        on_outcome: Callable[[], None] = lambda: None,
        tick_seconds: float = 1.0,
        lease_seconds: float = STEP_LEASE_SECONDS,
        max_parallel: int = MAX_PARALLEL_STEPS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self.steps = steps
        self.effectors = dict(effectors)
        self.on_outcome = on_outcome
        self.tick_seconds = tick_seconds
        self.lease_seconds = lease_seconds
        self.max_parallel = max_parallel
        self.clock = clock
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_parallel, thread_name_prefix="opendeploy-step")
        super().start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking steps up; running ones are told they are cancelled and waited for.

        A step cut short so is not reported: its lease runs out and a runner (this server's
        after a restart, or another replica's) takes it up again."""
        with self._lock:
            for running in self._running.values():
                running.cancelled.set()
        super().stop(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # --- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("effector runner pass failed; retrying on the next tick")
            self.wakeup.wait(self.tick_seconds)

    def run_once(self) -> list[ServerStep]:
        """Renew the running steps' leases, take due steps up and start them; returns those."""
        self._renew_leases()
        with self._lock:
            free = self.max_parallel - len(self._running)
        now = self.clock()
        stale = now - timedelta(seconds=self.lease_seconds)
        taken = self.steps.take_due(now, stale_before=stale, limit=free)
        for step in taken:
            self._start(step)
        return taken

    def _renew_leases(self) -> None:
        every = self.lease_seconds / 3
        with self._lock:
            due = [r for r in self._running.values() if time.monotonic() - r.renewed >= every]
        for running in due:
            if not self.steps.renew(running.step.command_id, self.clock()):
                running.cancelled.set()  # the engine closed it: a stop, a timeout
            running.renewed = time.monotonic()

    def _start(self, step: ServerStep) -> None:
        running = _Running(step)
        with self._lock:
            if step.command_id in self._running:
                return  # still running here (its lease was renewed late): leave it be
            self._running[step.command_id] = running
        log.info(
            "server step started deployment_id=%s instance=%s event=%s%s",
            step.deployment_id,
            step.target_id,
            step.event,
            " rerun=true" if step.rerun else "",
        )
        assert self._pool is not None, "start() the runner first"
        self._pool.submit(self._execute, running)

    def _execute(self, running: _Running) -> None:
        step = running.step
        try:
            outcome = self.execute(step, _Progress(self, running))
            if running.cancelled.is_set() and self._stopping.is_set():
                return  # cut short by a shutdown: left for a runner to take up again
            metrics.EFFECTOR_STEPS.labels(str(step.event), outcome.result).inc()
            counted = self.steps.report(step, outcome, self.clock())
            log.info(
                "server step ended deployment_id=%s instance=%s event=%s result=%s%s",
                step.deployment_id,
                step.target_id,
                step.event,
                outcome.result,
                "" if counted else " (too late: the engine had given it up)",
            )
            self.on_outcome()
        except Exception:
            # Not reported: the lease runs out and the step is taken up again.
            log.exception("server step could not be reported command_id=%s", step.command_id)
        finally:
            with self._lock:
                self._running.pop(step.command_id, None)

    def execute(self, step: ServerStep, progress: _Progress) -> StepOutcome:
        """Run the step's effector; any failure of it becomes the step's Failed outcome."""
        effector = self.effectors.get(step.event)
        if effector is None:
            return StepOutcome.failed(f"This server has no effector for the step {step.event}.")
        try:
            return effector.run(step, progress)
        except Exception as e:  # an effector's bug must fail its step, not hang it
            log.exception("effector failed command_id=%s", step.command_id)
            return StepOutcome.failed(
                f"The {step.event} step for {step.target_id} failed inside the server: "
                f"{type(e).__name__}: {e}"
            )
