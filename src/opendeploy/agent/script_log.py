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

Speed: while a script runs, the hook runner holds the log in :meth:`ScriptLog.batch`: both files
stay open and the entries of one read of the script's output are written together, then flushed
(so a ``tail -f`` still sees them at once). Reopening both files for every line capped hook
output at about 12,000 lines/s (``bench/hook_output.py``).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from opendeploy.errors import AgentError

__all__ = ["TAIL_LIMIT", "ScriptLog"]

#: Upper bound, in characters, of :attr:`ScriptLog.tail`.
TAIL_LIMIT = 4096


class ScriptLog:
    """Appends hook entries to ``path`` (``<deployment>/logs/scripts.log``) and keeps a tail.

    The directory is created on the first write. Outside :meth:`batch`, each entry is written
    and the file closed at once, so no file handle outlives the call; inside it, the files stay
    open and entries are written at each :meth:`flush` (or every 256 KiB). When
    ``deployments_log`` is given, every entry is mirrored there as
    ``[%Y-%m-%d %H:%M:%S.%L] [<deployment_id>]<entry without surrounding whitespace>``, the format
    of the official agent's ``codedeploy-agent-deployments.log``. A write that fails raises
    :class:`~opendeploy.errors.AgentError` naming the file (a full disk, say).

    Thread-safe: stdout and stderr readers may write concurrently.
    """

    def __init__(
        self, path: Path, *, deployments_log: Path | None = None, deployment_id: str = ""
    ) -> None:
        self.path = Path(path)
        self.deployments_log = None if deployments_log is None else Path(deployments_log)
        self.deployment_id = deployment_id
        self._lock = threading.RLock()
        self._entries: collections.deque[str] = collections.deque()
        self._tail_chars = 0
        self._batching = 0
        self._pending: list[str] = []  # scripts.log text not written yet
        self._mirrored: list[str] = []  # deployments log text not written yet
        self._pending_chars = 0
        self._handles: dict[Path, TextIO] = {}
        self._second = -1
        self._stamp = ""

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

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Keep the files open and write entries in blocks until the block ends (then flushed
        and closed); call :meth:`flush` whenever what came so far should be visible."""
        with self._lock:
            self._batching += 1
        try:
            yield
        finally:
            with self._lock:
                self._batching -= 1
                try:
                    self._flush_locked()
                finally:
                    if not self._batching:
                        self._close_locked()

    def flush(self) -> None:
        """Write what the batch holds so far to both files."""
        with self._lock:
            self._flush_locked()

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
            now = time.time()
            second = int(now)
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._pending.append(f"{self._stamp} {entry}")
            self._pending_chars += len(entry)
            if self.deployments_log is not None:
                millis = int((now - second) * 1000)
                self._mirrored.append(
                    f"[{self._stamp}.{millis:03d}] [{self.deployment_id}]{entry.strip()}\n"
                )
            if not self._batching or self._pending_chars >= _BLOCK_CHARS:
                self._flush_locked()
                if not self._batching:
                    self._close_locked()

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

    def _flush_locked(self) -> None:
        pending, self._pending = self._pending, []
        mirrored, self._mirrored = self._mirrored, []
        self._pending_chars = 0
        if pending:
            self._write(self.path, "".join(pending))
        if mirrored and self.deployments_log is not None:
            self._write(self.deployments_log, "".join(mirrored))

    def _write(self, path: Path, text: str) -> None:
        try:
            handle = self._handles.get(path)
            if handle is None:
                handle = self._handles[path] = _open_for_append(path)
            handle.write(text)
            handle.flush()
        except OSError as exc:
            handle = self._handles.pop(path, None)
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
            raise AgentError(f"cannot write the hook log {path}: {exc.strerror or exc}") from exc

    def _close_locked(self) -> None:
        handles, self._handles = self._handles, {}
        for handle in handles.values():
            with contextlib.suppress(OSError):
                handle.close()


# One write per 256 KiB at most while batching, whatever the reader hands over.
_BLOCK_CHARS = 256 * 1024


def _open_for_append(path: Path) -> TextIO:
    """Open ``path`` to append, creating its directory first if it does not exist yet."""
    try:
        return path.open("a", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("a", encoding="utf-8", errors="replace")
