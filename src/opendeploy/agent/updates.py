"""What the agent tells the server while and after a command runs, sized for the wire.

- :class:`OutputStreamer` collects hook output lines (the ``on_output`` callback of
  ``execute_event``) and sends them in batches from a background thread through
  PostHostCommandUpdate, as ``{"seq": n, "output": [{"stream": "stdout", "line": "…"}, …]}``
  in a JSON diagnostics envelope (``seq`` counts the batches of one command from 1, so that the
  server keeps a batch once when a lost answer made botocore send it again). The hook never
  waits for the network: appending is a bounded, in-memory step, and when the server is slower
  than the hook the oldest unsent lines are dropped (and counted in the agent log).
- :func:`fit_payload` renders a completion's diagnostics in the envelope's 8192-character
  limit by cutting the head of the log tail (the end of the output is what explains a failure).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_PAYLOAD_CHARS", "OutputStreamer", "fit_payload"]

#: The Command API's limit on an envelope's ``Payload``.
MAX_PAYLOAD_CHARS = 8192
_BATCH_OVERHEAD = len('{"seq": 0000000000, "output": []}')
# A single line is cut to this many characters before it is queued.
_MAX_LINE_CHARS = 4096

log = logging.getLogger("opendeploy.agent.updates")


def fit_payload(diagnostics: dict[str, Any], limit: int = MAX_PAYLOAD_CHARS) -> str:
    """``diagnostics`` as JSON of at most ``limit`` characters (log head, then message, cut)."""
    data = dict(diagnostics)
    text = json.dumps(data)
    for field in ("log", "message"):
        while len(text) > limit and data.get(field):
            value = str(data[field])
            excess = len(text) - limit
            # JSON escapes may make a character cost up to 6; cut at least the excess.
            cut = max(excess, len(value) // 8, 1)
            data[field] = value[cut:] if field == "log" else value[: max(len(value) - cut, 0)]
            text = json.dumps(data)
    if len(text) > limit:  # only a pathological script_name is left: keep its end
        data["script_name"] = str(data.get("script_name", ""))[-256:]
        text = json.dumps(data)[:limit]
    return text


def _entry(stream: str, line: str) -> str:
    return json.dumps({"stream": stream, "line": line})


class OutputStreamer:
    """Batches hook output lines and sends them from its own thread.

    ``send(payload)`` is called with the JSON payload of one PostHostCommandUpdate; it may
    raise (the batch is then dropped and the failure logged once). Requests are at least
    ``interval`` seconds apart and carry at most ``max_payload`` characters. At most
    ``max_buffered_chars`` of output wait in memory.

    Use as a context manager: leaving it sends what is left (bounded by ``close_timeout``).
    """

    def __init__(
        self,
        send: Callable[[str], None],
        *,
        interval: float = 0.15,
        max_payload: int = MAX_PAYLOAD_CHARS,
        max_buffered_chars: int = 1 << 20,
        close_timeout: float = 5.0,
        name: str = "output",
    ) -> None:
        self._send = send
        self._interval = interval
        self._max_payload = max_payload
        self._max_buffered = max_buffered_chars
        self._close_timeout = close_timeout
        self._pending: deque[str] = deque()
        self._buffered = 0
        self._dropped = 0
        self._failed = False
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.sent_batches = 0
        self._seq = 0
        self.sent_lines = 0

    def __enter__(self) -> OutputStreamer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, stream: str, line: str) -> None:
        """Queue one line (never blocks on the network)."""
        entry = _entry(stream, line[:_MAX_LINE_CHARS])
        limit = self._max_payload - _BATCH_OVERHEAD
        while len(entry) > limit:  # escapes made it too long: cut further
            line = line[: len(line) // 2]
            entry = _entry(stream, line)
        with self._cond:
            self._pending.append(entry)
            self._buffered += len(entry)
            while self._buffered > self._max_buffered and len(self._pending) > 1:
                self._buffered -= len(self._pending.popleft())
                self._dropped += 1
            self._cond.notify()

    def close(self) -> None:
        """Send what is queued and stop the thread (waits at most ``close_timeout``)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(self._close_timeout)
        if self._dropped:
            log.warning(
                "%d output lines were not sent: the server took them slower than "
                "the hook wrote them",
                self._dropped,
            )

    def _next_batch(self) -> list[str]:
        batch: list[str] = []
        size = _BATCH_OVERHEAD
        while self._pending:
            cost = len(self._pending[0]) + (2 if batch else 0)
            if size + cost > self._max_payload:
                break
            entry = self._pending.popleft()
            self._buffered -= len(entry)
            batch.append(entry)
            size += cost
        return batch

    def _run(self) -> None:
        last_sent = 0.0
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                # Let lines accumulate until the interval since the last request has passed.
                while not self._closing:
                    delay = last_sent + self._interval - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                batch = self._next_batch()
            if not batch:
                continue
            self._seq += 1
            payload = f'{{"seq": {self._seq}, "output": [' + ", ".join(batch) + "]}"
            last_sent = time.monotonic()
            try:
                self._send(payload)
                self.sent_batches += 1
                self.sent_lines += len(batch)
            except Exception as exc:  # never let output reporting fail the command
                if not self._failed:
                    log.warning("Cannot send hook output to the server: %s", exc)
                    self._failed = True
