"""Live updates of a deployment page as Server-Sent Events.

The stream re-reads the deployment every :data:`POLL_SECONDS` (the store is the one source of
truth, shared by every replica, so there is nothing to subscribe to) and sends a region of the
page only when its HTML changed: ``summary``, ``failure``, ``actions`` and ``instances`` carry
HTML fragments rendered by the page's own templates; ``output`` carries the watched instance's
new hook output (``{"instance": name, "reset": bool, "text": str}``). Every payload is JSON,
so it fits in SSE ``data:`` lines. When the deployment has finished the last changes go out
followed by ``end``, and the stream closes; it also closes when the server shuts down or after
:data:`MAX_STREAM_SECONDS` (the browser's EventSource then reconnects by itself).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.to_thread

from opendeploy.store.database import Store
from opendeploy.web import views
from opendeploy.web.render import render

POLL_SECONDS = 0.5
#: A stream ends after this long; EventSource reconnects (bounds what a stuck client holds).
MAX_STREAM_SECONDS = 300.0
#: Reconnect delay told to the browser (milliseconds).
RETRY_MS = 1000

_REGIONS = {
    "summary": "deployment_summary.html",
    "failure": "deployment_failure.html",
    "actions": "deployment_actions.html",
    "instances": "deployment_instances.html",
}


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event with a JSON payload (JSON has no raw newlines)."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def render_regions(context: dict[str, Any]) -> dict[str, str]:
    """The HTML of every live region of the deployment page for one view."""
    return {name: render(template, **context) for name, template in _REGIONS.items()}


async def deployment_events(
    store: Store,
    deployment_id: str,
    *,
    page: int,
    instance: str | None,
    csrf: str,
    is_closing: Callable[[], bool],
    poll_seconds: float = POLL_SECONDS,
) -> AsyncIterator[bytes]:
    """The event stream of one deployment page (see the module docstring)."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    sent: dict[str, str] = {}
    output = ""
    started = time.monotonic()

    def snapshot() -> tuple[dict[str, str], str, bool, str | None]:
        view = views.deployment(store, deployment_id, page=page, instance=instance)
        return render_regions({**view, "csrf": csrf}), view["output"], view["live"], view["watched"]

    shown: str | None = None
    while True:
        regions, text, live, watched = await anyio.to_thread.run_sync(snapshot)
        for name, html in regions.items():
            if sent.get(name) != html:
                sent[name] = html
                yield sse(name, html)
        # Without a chosen instance the view follows the one in progress, so ``watched`` moves.
        if watched != shown or not text.startswith(output):
            yield sse("output", {"instance": watched, "reset": True, "text": text})
        elif text != output:
            yield sse("output", {"instance": watched, "reset": False, "text": text[len(output) :]})
        shown, output = watched, text
        if not live:
            yield sse("end", {})
            return
        if is_closing() or time.monotonic() - started > MAX_STREAM_SECONDS:
            return
        await anyio.sleep(poll_seconds)
