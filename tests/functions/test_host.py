"""The function host's process pools, in-process (real awslambdaric processes, no server)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opendeploy.functions.errors import TooManyRequestsError
from opendeploy.functions.host import FunctionHost, HostSettings
from opendeploy.revisions.blobstore import LocalBlobStore
from opendeploy.store.functions import FunctionVersion

SOURCE = """
import os, time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    if "big" in event:
        return "x" * event["big"]
    return {"pid": os.getpid(), "left_ms": context.get_remaining_time_in_millis()}
"""


def _record(blobs: LocalBlobStore, *, timeout: int = 3, version: str = "1") -> FunctionVersion:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", SOURCE)
    info = blobs.put_stream(io.BytesIO(buffer.getvalue()))
    return FunctionVersion(
        function_name="pool",
        version=version,
        config={"Runtime": "python3.11", "Handler": "app.handler", "Timeout": timeout},
        code_sha256=info.sha256,
        code_size=info.size,
        revision_id="r1",
        last_modified=datetime.now(UTC),
    )


def _host(tmp_path: Path, **overrides: object) -> tuple[FunctionHost, LocalBlobStore]:
    blobs = LocalBlobStore(tmp_path / "blobs")
    settings = HostSettings(
        root=tmp_path / "functions",
        endpoint="http://127.0.0.1:9",
        region="us-east-1",
        access_key_id="AKIAEXAMPLE",
        secret_access_key="secret",
        **overrides,  # type: ignore[arg-type]
    )
    return FunctionHost(settings, blobs), blobs


async def _call(
    host: FunctionHost, record: FunctionVersion, event: dict[str, object]
) -> dict[str, int]:
    result = await host.invoke(record, json.dumps(event).encode(), invoked_arn="arn:x")
    assert result.function_error is None, result.payload
    return json.loads(result.payload)  # type: ignore[no-any-return]


def test_warm_processes_are_reused_and_bounded(tmp_path: Path) -> None:
    async def scenario() -> None:
        host, blobs = _host(tmp_path, max_concurrency=2, queue_timeout_seconds=0.3)
        record = _record(blobs)
        try:
            first = await _call(host, record, {})
            again = await _call(host, record, {})
            assert first["pid"] == again["pid"]  # warm: the same process
            assert 2000 < first["left_ms"] <= 3000  # the deadline counts from delivery
            # Two at once need a second process; a third waits, and gives up after 0.3 s.
            busy = [asyncio.ensure_future(_call(host, record, {"sleep": 1})) for _ in range(2)]
            await asyncio.sleep(0.1)
            with pytest.raises(TooManyRequestsError, match="Rate Exceeded"):
                await _call(host, record, {})
            pids = {r["pid"] for r in await asyncio.gather(*busy)}
            assert len(pids) == 2 and len(host.process_ids()) == 2
            # A result over Lambda's 6 MB limit is Lambda's error, not a hang.
            big = await host.invoke(record, b'{"big": 7000000}', invoked_arn="arn:x")
            assert big.function_error == "Unhandled"
            assert json.loads(big.payload)["errorType"] == "Function.ResponseSizeTooLarge"
            assert (await _call(host, record, {}))["pid"]
        finally:
            await host.close()
        for pid in pids:
            await _gone(pid)

    asyncio.run(scenario())


def test_a_full_host_stops_the_longest_idle_process(tmp_path: Path) -> None:
    async def scenario() -> None:
        host, blobs = _host(tmp_path, max_processes=1)
        one, two = _record(blobs), _record(blobs, version="2")
        try:
            first = await _call(host, one, {})
            second = await _call(host, two, {})
            await _gone(first["pid"])
            assert host.process_ids() == [second["pid"]]
        finally:
            await host.close()

    asyncio.run(scenario())


async def _gone(pid: int) -> None:
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return  # killed, waiting to be reaped
        await asyncio.sleep(0.05)
    raise AssertionError(f"function process {pid} is still running")
