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
from typing import TypeVar

__all__ = ["CONTROL_POOL_SIZE", "POOL_SIZE", "run_blocking"]

#: Threads for blocking calls per process (the database pools are sized to match).
POOL_SIZE = 40

#: Threads kept apart for people (the control-plane API, the dashboard's calls through it): with
#: a fleet's agents filling the main pool's queue, a GetDeployment waited behind thousands of
#: their calls (seen: 20 s during a 10,000-host deployment).
CONTROL_POOL_SIZE = 8

_T = TypeVar("_T")

_lock = threading.Lock()
_pools: dict[bool, ThreadPoolExecutor] = {}


def _executor(control: bool) -> ThreadPoolExecutor:
    pool = _pools.get(control)
    if pool is None:
        with _lock:
            pool = _pools.get(control)
            if pool is None:
                size, name = (
                    (CONTROL_POOL_SIZE, "opendeploy-control")
                    if control
                    else (POOL_SIZE, "opendeploy")
                )
                pool = _pools[control] = ThreadPoolExecutor(size, thread_name_prefix=name)
    return pool


async def run_blocking(func: Callable[..., _T], *args: object, control: bool = False) -> _T:
    """``func(*args)`` in the shared pool (``control``: the pool kept for people's calls), with
    the caller's context variables."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, func, *args)
    return await asyncio.get_running_loop().run_in_executor(_executor(control), call)
