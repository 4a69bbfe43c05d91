"""When a failed notification is tried again, and when it is given up (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff: ``first_delay * 2**(attempt-1)``, at most ``max_delay``; after
    ``max_attempts`` attempts the delivery is Failed (and stays in the log)."""

    max_attempts: int = 10
    first_delay_seconds: float = 2.0
    max_delay_seconds: float = 300.0

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """After ``attempts`` failed attempts: when to try again, or None to give up."""
        if attempts >= self.max_attempts:
            return None
        delay = min(self.first_delay_seconds * 2 ** (attempts - 1), self.max_delay_seconds)
        return now + timedelta(seconds=delay)
