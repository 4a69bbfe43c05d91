"""``scripts.log``: the per-deployment record of hook output, in the official agent's format.

Every entry is appended to ``<deployment>/logs/scripts.log`` as ``"%Y-%m-%d %H:%M:%S "`` (local
time) followed by one of ``LifecycleEvent - <Event>\\n``, ``Script - <location>\\n``,
``[stdout]<line>`` or ``[stderr]<line>``; output lines keep their own newline, and a last line
without one is written without one, exactly as the official agent does, so existing tooling that
tails or parses the file keeps working.

The log also keeps a rolling ``tail`` of the latest entries (without timestamps) for the
diagnostics payload of a failed hook. The official agent keeps about 2048 characters with an
off-by-one in its accounting; we keep a clean "last 4096 characters" (the public API documents
``logTail`` as "up to the last 4 KB").
"""

from __future__ import annotations

import collections
import datetime
import threading
import time
from pathlib import Path

__all__ = ["TAIL_LIMIT", "ScriptLog"]

#: Upper bound, in characters, of :attr:`ScriptLog.tail`.
TAIL_LIMIT = 4096


class ScriptLog:
    """Appends hook entries to ``path`` (``<deployment>/logs/scripts.log``) and keeps a tail.

    The directory is created on the first write, and the file is opened, written and closed for
    each entry so that an operator tailing it sees every line as it happens and no file handle
    outlives the call. When ``deployments_log`` is given, every entry is mirrored there as
    ``[%Y-%m-%d %H:%M:%S.%L] [<deployment_id>]<entry without surrounding whitespace>``, the format
    of the official agent's ``codedeploy-agent-deployments.log``.

    Thread-safe: stdout and stderr readers may write concurrently.
    """

    def __init__(
        self, path: Path, *, deployments_log: Path | None = None, deployment_id: str = ""
    ) -> None:
        self.path = Path(path)
        self.deployments_log = None if deployments_log is None else Path(deployments_log)
        self.deployment_id = deployment_id
        self._lock = threading.Lock()
        self._entries: collections.deque[str] = collections.deque()
        self._tail_chars = 0

    def event(self, name: str) -> None:
        """Record the start of lifecycle event ``name`` (``LifecycleEvent - <name>``)."""
        self._append(f"LifecycleEvent - {name}\n")

    def script(self, location: str) -> None:
        """Record the start of the script at ``location`` (``Script - <location>``)."""
        self._append(f"Script - {location}\n")

    def output(self, stream: str, line: str) -> None:
        """Record one output ``line`` (with its newline, if it had one) of ``stream``.

        ``stream`` is ``"stdout"`` or ``"stderr"``.
        """
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream: {stream!r} is not one of 'stdout', 'stderr'")
        self._append(f"[{stream}]{line}")

    @property
    def tail(self) -> str:
        """The latest entries, oldest first, at most :data:`TAIL_LIMIT` characters in total.

        Whole entries are dropped oldest-first; a single entry longer than the limit keeps only
        its last :data:`TAIL_LIMIT` characters.
        """
        with self._lock:
            return "".join(self._entries)

    def _append(self, entry: str) -> None:
        with self._lock:
            self._remember(entry)
            self._write(entry)

    def _remember(self, entry: str) -> None:
        if len(entry) >= TAIL_LIMIT:
            self._entries.clear()
            self._entries.append(entry[-TAIL_LIMIT:])
            self._tail_chars = TAIL_LIMIT
            return
        self._entries.append(entry)
        self._tail_chars += len(entry)
        while self._tail_chars > TAIL_LIMIT:
            self._tail_chars -= len(self._entries.popleft())

    def _write(self, entry: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S ")
        _append_text(self.path, stamp + entry)
        if self.deployments_log is not None:
            now = datetime.datetime.now()
            millis = now.microsecond // 1000
            line = f"[{now:%Y-%m-%d %H:%M:%S}.{millis:03d}] [{self.deployment_id}]{entry.strip()}\n"
            _append_text(self.deployments_log, line)


def _append_text(path: Path, text: str) -> None:
    """Append ``text`` to ``path``, creating its directory first if it does not exist yet."""
    try:
        handle = path.open("a", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a", encoding="utf-8", errors="replace")
    with handle:
        handle.write(text)
