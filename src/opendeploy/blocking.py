"""Blocking calls (the database, mostly) run off the event loop in one shared thread pool.

The API's hot paths hand every database call to a thread. anyio's ``to_thread`` (what
Starlette's ``run_in_threadpool`` uses) costs several times what the hand-off needs (cancel
scopes, a capacity limiter, run-variable lookups), which with a fleet's thousands of calls per
second was a large part of the event loop's work. :func:`run_blocking` is the plain asyncio
hand-off to a fixed pool, keeping the caller's context variables (the agent version header, for
one) as ``to_thread`` does.

The pool is one per process and fixed in size: more threads than database connections only wait
for a connection, and a pool that grows with a burst (a thread per waiting request) spends its
time switching threads at the GIL. Calls beyond the pool's size wait in order.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["POOL_SIZE", "run_blocking"]

#: Threads for blocking calls per process (the database pools are sized to match).
POOL_SIZE = 40

_P = ParamSpec("_P")
_T = TypeVar("_T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="opendeploy-api")
    return _pool


async def run_blocking(func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``func(*args, **kwargs)`` in the shared pool, with the caller's context variables."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, func, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)
