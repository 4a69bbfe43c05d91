"""A loop on a background thread, woken early by :meth:`BackgroundLoop.wake`.

The engine worker, the effector runner and the outbox's delivery are each one such loop per
server process; this is their common start / stop / wake.
"""

from __future__ import annotations

import threading

from opendeploy.engine.dispatch import Wakeup


class BackgroundLoop:
    """``start()`` runs :meth:`_run` on a daemon thread; ``stop()`` asks it to end (through
    ``_stopping`` and a wake-up) and waits for it."""

    #: The thread's name (``ps -L`` and tracebacks show it).
    thread_name = "opendeploy-loop"

    def __init__(self, wakeup: Wakeup | None = None) -> None:
        self.wakeup = wakeup or Wakeup()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end (it finishes what it is doing) and wait up to ``timeout``."""
        self._stopping.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def request_stop(self) -> None:
        """Ask the loop to end after what it is doing, without waiting (a signal handler's
        part: the join comes later, from :meth:`stop`)."""
        self._stopping.set()
        self.wakeup.set()

    def wake(self) -> None:
        self.wakeup.set()

    def _run(self) -> None:
        raise NotImplementedError
