"""SigV4 secrets remembered, so that a busy fleet does not query them per request.

Every request is verified against its access key's secret; with thousands of agents each
polling, acknowledging and completing, that lookup (two queries for an instance key: the key and
whether its instance is still registered) was the largest single cost of the Command API. A
secret found is remembered for ``ttl`` seconds. Only found secrets are remembered: a key issued a
moment ago works at once. Revocation does not wait for ``ttl``: deregistering an instance in this
process forgets everything at once (:meth:`SecretCache.forget_all`), and the Command API's sweep
does the same within a second when it sees a deregistration made by another replica (the
newest ``deregister_time`` moved).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from opendeploy.api.sigv4 import SecretLookup

__all__ = ["DEFAULT_TTL_SECONDS", "KeyKindCache", "SecretCache"]

#: How long a found secret is trusted without asking the store again (revocations, see the
#: module's docstring, take effect sooner).
DEFAULT_TTL_SECONDS = 600.0


class SecretCache:
    """A :data:`SecretLookup` that remembers found secrets for ``ttl`` seconds."""

    def __init__(
        self,
        lookup: SecretLookup,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        explain: Callable[[str], str | None] | None = None,
    ) -> None:
        self._lookup = lookup
        self._explain = explain
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._found: dict[str, tuple[float, str]] = {}

    def explain_unknown(self, access_key_id: str) -> str | None:
        """Why a key is not accepted, when there is more to say than "invalid" (e.g. the key
        of a deregistered instance); read by ``sigv4.verify`` for its error message."""
        return self._explain(access_key_id) if self._explain is not None else None

    def __call__(self, access_key_id: str) -> str | None:
        remembered = self.peek(access_key_id)
        if remembered is not None:
            return remembered
        now = self._clock()
        secret = self._lookup(access_key_id)
        with self._lock:
            if secret is None:
                self._found.pop(access_key_id, None)
            else:
                if len(self._found) >= self._max_entries:
                    self._drop_expired(now)
                self._found[access_key_id] = (now + self._ttl, secret)
        return secret

    def peek(self, access_key_id: str) -> str | None:
        """The remembered secret of the key, if still fresh; never asks the store."""
        with self._lock:
            entry = self._found.get(access_key_id)
        if entry is not None and self._clock() < entry[0]:
            return entry[1]
        return None

    def forget_all(self) -> None:
        """Ask the store again for every key (an instance was deregistered)."""
        with self._lock:
            self._found.clear()

    def _drop_expired(self, now: float) -> None:
        expired = [key for key, (until, _) in self._found.items() if until <= now]
        for key in expired:
            del self._found[key]
        if len(self._found) >= self._max_entries:  # all fresh: start over rather than grow
            self._found.clear()


class KeyKindCache:
    """``"admin"`` or ``"instance"`` per access key, remembered: a key's kind never changes.

    Every control-plane call asks whether its key is an instance key (refused there); that was
    a database read per call. Only known keys are remembered, so a key issued a moment ago is
    found at once; a deleted key is refused by its signature check before its kind matters.
    """

    def __init__(self, lookup: Callable[[str], str | None], *, max_entries: int = 100_000) -> None:
        self._lookup = lookup
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._kinds: dict[str, str] = {}

    def __call__(self, access_key_id: str) -> str | None:
        with self._lock:
            kind = self._kinds.get(access_key_id)
        if kind is not None:
            return kind
        kind = self._lookup(access_key_id)
        if kind is not None:
            with self._lock:
                if len(self._kinds) >= self._max_entries:
                    self._kinds.clear()  # rare, and each entry is one read to get back
                self._kinds[access_key_id] = kind
        return kind
