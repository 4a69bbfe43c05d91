"""Shutdown: closing connections are cut once flushed (a TLS close waits for the peer's
close_notify, which clients holding an idle keep-alive connection never send)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from opendeploy.server import CLOSING_GRACE_SECONDS, cut_closing_connections


@dataclass
class _Transport:
    closing: bool
    buffered: int = 0
    aborted: bool = False

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True


@dataclass
class _Connection:
    transport: _Transport
    name: str = field(default="")


def test_closing_connections_are_cut_once_flushed_and_open_ones_are_left() -> None:
    idle = _Connection(_Transport(closing=True))  # uvicorn closed it: idle keep-alive
    flushing = _Connection(_Transport(closing=True, buffered=4096))  # its response is going out
    serving = _Connection(_Transport(closing=False))  # a request still being answered
    connections = [idle, flushing, serving]

    async def scenario() -> None:
        cutter = asyncio.create_task(cut_closing_connections(connections))
        await asyncio.sleep(CLOSING_GRACE_SECONDS / 2)
        assert not idle.transport.aborted  # a grace to flush first
        await asyncio.sleep(CLOSING_GRACE_SECONDS + 0.2)
        assert idle.transport.aborted
        assert not flushing.transport.aborted and not serving.transport.aborted
        flushing.transport.buffered = 0
        serving.transport.closing = True  # its response done, uvicorn closes it
        await asyncio.sleep(CLOSING_GRACE_SECONDS + 0.2)
        cutter.cancel()

    asyncio.run(scenario())
    assert flushing.transport.aborted and serving.transport.aborted
