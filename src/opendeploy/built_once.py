"""A value built on first use, once, whichever thread asks first: the boto3 clients of the
server's effectors and sources (building one loads a service model, a few hundred ms)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BuiltOnce(Generic[T]):
    """``make()``, called on the first call only; later calls return what it made."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._built: list[T] = []

    def __call__(self) -> T:
        with self._lock:
            if not self._built:
                self._built.append(self._make())
            return self._built[0]
