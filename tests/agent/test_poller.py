"""The agent's poller: command flow, crash recovery, output batching, backoff, credential reload.

The poller talks through real botocore clients over HTTP to a small scripted Command API served
in this process (``serve_in_thread``): it answers the five operations from a queue the test
fills and records every call, so each rule of the official flow can be checked exactly. The
whole path through a real ``opendeploy server`` is covered by tests/e2e/test_deployments.py.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from opendeploy.agent.config import load_agent_config
from opendeploy.agent.envelope import open_envelope, pkcs7_content
from opendeploy.agent.poller import (
    FAILED_AFTER_RESTART_MESSAGE,
    Backoff,
    Poller,
)
from opendeploy.agent.spec import DeploymentSpecError
from opendeploy.agent.updates import MAX_PAYLOAD_CHARS, OutputStreamer, fit_payload
from opendeploy.cli.instance import write_agent_files
from opendeploy.clients import AGENT_VERSION_HEADER
from opendeploy.testing.server import free_port, serve_in_thread

HOST = "arn:aws:iam::000000000000:user/opendeploy/host-1"
GROUP = "dg-1111"


# -- a scripted Command API ------------------------------------------------------------------------


@dataclass
class Call:
    operation: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeCommandService:
    """Answers the Command API from ``commands``; ``ack_status`` scripts the acknowledgement."""

    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    calls: list[Call] = field(default_factory=list)
    ack_status: dict[str, str] = field(default_factory=dict)
    spec_format: str = "TEXT/JSON"
    completed: threading.Condition = field(default_factory=threading.Condition)

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> JSONResponse:
            operation = request.headers["x-amz-target"].split(".", 1)[1]
            body = json.loads(await request.body() or b"{}")
            call = Call(operation, body, dict(request.headers))
            answer = await _answer(self, call)
            with self.completed:
                self.calls.append(call)
                self.completed.notify_all()
            return JSONResponse(answer, media_type="application/x-amz-json-1.1")

        return Starlette(routes=[Route("/", endpoint, methods=["POST"])])

    def add(self, command_id: str, name: str, deployment_id: str, **extra: Any) -> None:
        self.commands.put(
            {
                "HostCommandIdentifier": command_id,
                "HostIdentifier": extra.get("host", HOST),
                "DeploymentExecutionId": f"OpenDeploy/us-east-1/Prod/{deployment_id}",
                "CommandName": name,
                "Nonce": 1,
            }
        )

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        with self.completed:
            while not predicate(self.calls):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"timed out; calls: {[c.operation for c in self.calls]}"
                self.completed.wait(remaining)
            return list(self.calls)

    def of(self, operation: str) -> list[Call]:
        return [c for c in self.calls if c.operation == operation]


async def _answer(service: FakeCommandService, call: Call) -> dict[str, Any]:
    import anyio

    if call.operation == "PollHostCommand":
        # Hold the poll for a short while, as the real server does for ~20 s.
        def take() -> dict[str, Any] | None:
            try:
                return service.commands.get(timeout=0.3)
            except queue.Empty:
                return None

        command = await anyio.to_thread.run_sync(take)
        return {"HostCommand": command} if command else {}
    if call.operation == "GetDeploymentSpecification":
        deployment_id = call.body["DeploymentExecutionId"].rsplit("/", 1)[1]
        payload = json.dumps(service.specs[deployment_id])
        if service.spec_format == "PKCS7/JSON":
            # Signed with a throw-away self-signed key, as AWS's service signs its specs.
            payload = _sign(payload.encode()).decode()
        return {
            "DeploymentSystem": "CodeDeploy",
            "DeploymentSpecification": {
                "GenericEnvelope": {"Format": service.spec_format, "Payload": payload}
            },
        }
    if call.operation == "PutHostCommandAcknowledgement":
        return {"CommandStatus": service.ack_status.get(call.body["HostCommandIdentifier"], "")}
    if call.operation == "PostHostCommandUpdate":
        return {"CommandStatus": "InProgress"}
    return {}


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def service() -> Iterator[tuple[FakeCommandService, str]]:
    fake = FakeCommandService()
    with serve_in_thread(fake.app()) as endpoint:
        yield fake, endpoint


def _agent_dir(tmp_path: Path, endpoint: str, key: str = "AKIDHOST1") -> Path:
    files = write_agent_files(
        tmp_path / "agent",
        endpoint=endpoint,
        region="us-east-1",
        iam_user_arn=HOST,
        access_key_id=key,
        secret_access_key="secret",
    )
    return files.agent_config


def _bundle(tmp_path: Path, hooks: dict[str, str]) -> Path:
    """A directory bundle whose hooks run the given shell lines."""
    bundle = tmp_path / "bundle"
    (bundle / "scripts").mkdir(parents=True)
    (bundle / "app.txt").write_text("v1\n")
    lines = [
        "version: 0.0",
        "os: linux",
        "files:",
        "  - source: app.txt",
        f"    destination: {tmp_path / 'installed'}",
        "hooks:",
    ]
    for event, body in hooks.items():
        script = bundle / "scripts" / f"{event}.sh"
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
        lines += [f"  {event}:", f"    - location: scripts/{event}.sh", "      timeout: 30"]
    (bundle / "appspec.yml").write_text("\n".join(lines) + "\n")
    return bundle


def _spec(bundle: Path, deployment_id: str, group: str = GROUP) -> dict[str, Any]:
    return {
        "DeploymentId": deployment_id,
        "DeploymentGroupId": group,
        "DeploymentGroupName": "group",
        "ApplicationName": "app",
        "Revision": {
            "RevisionType": "Local Directory",
            "LocalRevision": {"Location": str(bundle), "BundleType": "directory"},
        },
    }


@contextlib.contextmanager
def running_poller(config_path: Path, **kwargs: Any) -> Iterator[Poller]:
    """A Poller running in a thread; stopped (and its commands awaited) on exit."""
    poller = Poller(load_agent_config(config_path), backoff=Backoff(0.05, 0.2), **kwargs)
    thread = threading.Thread(target=poller.run, kwargs={"stop_timeout": 30}, daemon=True)
    thread.start()
    try:
        yield poller
    finally:
        poller.request_stop()
        thread.join(40)
        assert not thread.is_alive()


def _payload(call: Call) -> dict[str, Any]:
    return dict(json.loads(call.body["Diagnostics"]["Payload"]))


def _completes(n: int) -> Any:
    return lambda calls: len([c for c in calls if c.operation == "PutHostCommandComplete"]) >= n


# -- the command flow --------------------------------------------------------------------------


def test_commands_run_in_order_with_output_and_official_diagnostics(
    tmp_path: Path, service: tuple[FakeCommandService, str]
) -> None:
    fake, endpoint = service
    bundle = _bundle(
        tmp_path, {"AfterInstall": "echo installing; echo oops >&2", "ValidateService": "exit 3"}
    )
    fake.specs["d-AAAAAAAA1"] = _spec(bundle, "d-AAAAAAAA1")
    for i, name in enumerate(["DownloadBundle", "Install", "AfterInstall", "ValidateService"]):
        fake.add(f"cmd-{i}", name, "d-AAAAAAAA1")
    config_path = _agent_dir(tmp_path, endpoint)
    with running_poller(config_path):
        fake.wait_for(_completes(4))
    completes = fake.of("PutHostCommandComplete")
    assert [c.body["HostCommandIdentifier"] for c in completes] == [f"cmd-{i}" for i in range(4)]
    assert [c.body["CommandStatus"] for c in completes] == [
        "Succeeded",
        "Succeeded",
        "Succeeded",
        "Failed",
    ]
    assert _payload(completes[0]) == {
        "error_code": 0,
        "script_name": "",
        "message": "Succeeded: ",
        "log": "",
    }
    failed = _payload(completes[3])
    assert failed["error_code"] == 4
    assert failed["script_name"] == "scripts/ValidateService.sh"
    assert "failed with exit code 3" in failed["message"]
    # The specification was asked for once for the deployment's four commands.
    specs = fake.of("GetDeploymentSpecification")
    assert [c.body["DeploymentExecutionId"] for c in specs] == [
        "OpenDeploy/us-east-1/Prod/d-AAAAAAAA1"
    ]
    # Every acknowledgement says whether the command is a no-op (none is here).
    acks = fake.of("PutHostCommandAcknowledgement")
    assert [_payload(a) for a in acks] == [{"IsCommandNoop": False}] * 4
    # Hook output reached the server while the command ran, as batched updates.
    lines = [
        entry
        for call in fake.of("PostHostCommandUpdate")
        if call.body["HostCommandIdentifier"] == "cmd-2"
        for entry in _payload(call)["output"]
    ]
    assert {"stream": "stdout", "line": "installing"} in lines
    assert {"stream": "stderr", "line": "oops"} in lines
    assert (tmp_path / "installed" / "app.txt").read_text() == "v1\n"
    # The agent named itself and signed as the host.
    poll = fake.of("PollHostCommand")[0]
    assert poll.headers[AGENT_VERSION_HEADER].startswith("OPENDEPLOY_")
    assert "/codedeploy-commands/aws4_request" in poll.headers["authorization"]
    assert poll.body == {"HostIdentifier": HOST}
    # The tracking directory is empty once every command completed.
    assert not list((tmp_path / "agent" / "deployment-root" / "ongoing-deployment").iterdir())


def test_ack_status_decides_whether_a_command_runs(
    tmp_path: Path, service: tuple[FakeCommandService, str]
) -> None:
    fake, endpoint = service
    bundle = _bundle(tmp_path, {"AfterInstall": f"touch {tmp_path / 'ran'}"})
    fake.specs["d-AAAAAAAA2"] = _spec(bundle, "d-AAAAAAAA2")
    fake.ack_status = {"noop-failed": "Failed", "skip": "Succeeded", "hook-failed": "Failed"}
    fake.add("noop-failed", "ApplicationStop", "d-AAAAAAAA2")  # first deployment: a no-op
    fake.add("skip", "DownloadBundle", "d-AAAAAAAA2")
    fake.add("hook-failed", "AfterInstall", "d-AAAAAAAA2")
    fake.add("unknown", "Reboot", "d-AAAAAAAA2")
    with running_poller(_agent_dir(tmp_path, endpoint)):
        fake.wait_for(
            lambda calls: (
                len([c for c in calls if c.operation == "PutHostCommandAcknowledgement"]) >= 4
            )
        )
        fake.wait_for(_completes(2))
    acks = {
        c.body["HostCommandIdentifier"]: _payload(c)
        for c in fake.of("PutHostCommandAcknowledgement")
    }
    assert acks["noop-failed"] == {"IsCommandNoop": True}
    assert acks["unknown"] == {"IsCommandNoop": True}
    completes = {c.body["HostCommandIdentifier"]: c for c in fake.of("PutHostCommandComplete")}
    assert set(completes) == {"noop-failed", "unknown"}
    assert completes["noop-failed"].body["CommandStatus"] == "Succeeded"
    assert _payload(completes["noop-failed"])["message"] == "Succeeded: CompletedNoopCommand"
    assert completes["unknown"].body["CommandStatus"] == "Failed"
    assert _payload(completes["unknown"]) == {
        "error_code": 5,
        "script_name": "",
        "message": "Unsupported command type: Reboot.",
        "log": "",
    }
    assert not (tmp_path / "ran").exists()


def test_a_command_for_another_host_is_ignored(
    tmp_path: Path, service: tuple[FakeCommandService, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, endpoint = service
    fake.add("other", "DownloadBundle", "d-AAAAAAAA3", host="arn:aws:iam::1:user/someone-else")
    with caplog.at_level(logging.ERROR), running_poller(_agent_dir(tmp_path, endpoint)):
        fake.wait_for(
            lambda calls: len([c for c in calls if c.operation == "PollHostCommand"]) >= 2
        )
    assert fake.of("GetDeploymentSpecification") == []
    assert "Host Identifier mismatch" in caplog.text


def test_pkcs7_specification_is_opened(
    tmp_path: Path, service: tuple[FakeCommandService, str]
) -> None:
    fake, endpoint = service
    fake.spec_format = "PKCS7/JSON"
    bundle = _bundle(tmp_path, {})
    spec = _spec(bundle, "d-AAAAAAAA4")
    fake.specs["d-AAAAAAAA4"] = spec
    fake.add("dl", "DownloadBundle", "d-AAAAAAAA4")
    with running_poller(_agent_dir(tmp_path, endpoint)):
        fake.wait_for(_completes(1))
    assert fake.of("PutHostCommandComplete")[0].body["CommandStatus"] == "Succeeded"


def _sign(data: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs7
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spec-signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(data)
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.PEM, [pkcs7.PKCS7Options.Binary])
    )


def test_envelope_rejects_unknown_formats_and_garbage() -> None:
    with pytest.raises(DeploymentSpecError, match="Unsupported DeploymentSpecification format"):
        open_envelope("XML", "<x/>")
    with pytest.raises(DeploymentSpecError, match="PKCS#7"):
        pkcs7_content(b"-----BEGIN PKCS7-----\nAAAA\n-----END PKCS7-----\n")


# -- crash recovery ------------------------------------------------------------------------------


def test_restart_reports_interrupted_commands_with_code_7(
    tmp_path: Path, service: tuple[FakeCommandService, str]
) -> None:
    fake, endpoint = service
    config_path = _agent_dir(tmp_path, endpoint)
    ongoing = tmp_path / "agent" / "deployment-root" / "ongoing-deployment"
    ongoing.mkdir(parents=True)
    (ongoing / "d-RECENT001").write_text("cmd-recent")
    stale = ongoing / "d-STALE0001"
    stale.write_text("cmd-stale")
    old = time.time() - 2 * 86400
    os.utime(stale, (old, old))
    with running_poller(config_path):
        fake.wait_for(lambda calls: any(c.operation == "PollHostCommand" for c in calls))
    completes = fake.of("PutHostCommandComplete")
    assert [c.body["HostCommandIdentifier"] for c in completes] == ["cmd-recent"]
    assert completes[0].body["CommandStatus"] == "Failed"
    assert _payload(completes[0]) == {
        "error_code": 7,
        "script_name": "",
        "message": FAILED_AFTER_RESTART_MESSAGE,
        "log": "",
    }
    # Reported before the first poll, and the directory is clear afterwards.
    assert fake.calls[0].operation == "PutHostCommandComplete"
    assert list(ongoing.iterdir()) == []


# -- credentials, errors, backoff ----------------------------------------------------------------


def test_rotated_credentials_are_used_without_restart(
    tmp_path: Path, service: tuple[FakeCommandService, str]
) -> None:
    fake, endpoint = service
    config_path = _agent_dir(tmp_path, endpoint, key="AKIDFIRST")
    with running_poller(config_path):
        fake.wait_for(lambda calls: any("AKIDFIRST" in c.headers["authorization"] for c in calls))
        _agent_dir(tmp_path, endpoint, key="AKIDSECOND")
        fake.wait_for(lambda calls: any("AKIDSECOND" in c.headers["authorization"] for c in calls))


def test_unreachable_server_backs_off_and_names_the_endpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    config_path = _agent_dir(tmp_path, endpoint)
    poller = Poller(load_agent_config(config_path), backoff=Backoff(0.01, 0.05))
    with caplog.at_level(logging.ERROR, logger="opendeploy.agent.poller"):
        thread = threading.Thread(target=poller.run, kwargs={"stop_timeout": 5}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while poller.backoff.failures < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # no event to wait for: the poller is only retrying
        poller.request_stop()
        thread.join(10)
    assert poller.backoff.failures >= 3
    assert f"Cannot reach InstanceService at {endpoint}" in caplog.text


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(1.0, 30.0, rng=lambda: 1.0)
    assert [backoff.next() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    low = Backoff(1.0, 30.0, rng=lambda: 0.0)
    assert [low.next() for _ in range(3)] == [0.5, 1, 2]
    backoff.reset()
    assert backoff.next() == 1


# -- sizes on the wire -------------------------------------------------------------------------


def test_fit_payload_keeps_the_end_of_the_log_within_the_limit() -> None:
    diagnostics = {
        "error_code": 4,
        "script_name": "s.sh",
        "message": "failed",
        "log": "x" * 20000 + "END",
    }
    text = fit_payload(diagnostics)
    assert len(text) <= MAX_PAYLOAD_CHARS
    data = json.loads(text)
    assert data["log"].endswith("END") and data["message"] == "failed"
    escaped = {"error_code": 4, "script_name": "", "message": "m", "log": "\u0001" * 9000}
    assert len(fit_payload(escaped)) <= MAX_PAYLOAD_CHARS
    small = {"error_code": 0, "script_name": "", "message": "Succeeded: ", "log": ""}
    assert json.loads(fit_payload(small)) == small


def test_output_streamer_batches_within_the_limit_and_never_blocks() -> None:
    sent: list[str] = []
    release = threading.Event()

    def slow_send(payload: str) -> None:
        release.wait(10)  # the server is stuck: appending must still return at once
        sent.append(payload)

    with OutputStreamer(slow_send, interval=0.01, max_buffered_chars=200_000) as streamer:
        started = time.monotonic()
        for i in range(5000):
            streamer("stdout", f"line {i} " + "y" * 30)
        streamer("stderr", "z" * 10_000)  # one over-long line is cut to fit a request
        assert time.monotonic() - started < 2
        release.set()
    assert sent, "nothing was sent"
    assert all(len(p) <= MAX_PAYLOAD_CHARS for p in sent)
    entries = [e for p in sent for e in json.loads(p)["output"]]
    # The buffer bound dropped the oldest lines; the newest arrived, in order.
    assert entries[-1]["stream"] == "stderr"
    numbers = [
        int(re.match(r"line (\d+)", e["line"]).group(1))  # type: ignore[union-attr]
        for e in entries[:-1]
    ]
    assert numbers == sorted(numbers) and numbers[-1] == 4999


def test_output_streamer_survives_send_errors() -> None:
    def broken(payload: str) -> None:
        raise OSError("network down")

    with OutputStreamer(broken, interval=0.0) as streamer:
        streamer("stdout", "hello")
    assert streamer.sent_batches == 0


def test_pkcs7_content_is_the_signed_json() -> None:
    data = json.dumps({"DeploymentId": "d-X", "pad": "p" * 5000}).encode()
    assert pkcs7_content(_sign(data)) == data


def test_commands_of_different_groups_run_concurrently(
    tmp_path: Path, service: tuple[FakeCommandService, str]
) -> None:
    fake, endpoint = service
    meet = tmp_path / "meet"
    meet.mkdir()
    # Each group's hook announces itself, then waits (at most 10 s) for the other's: both can
    # only succeed if they run at the same time.
    for group, other in (("A", "B"), ("B", "A")):
        wait = (
            f"touch {meet}/{group}; i=0; while [ ! -e {meet}/{other} ]; do "
            "i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.05; done"
        )
        bundle = _bundle(tmp_path / group, {"AfterInstall": wait})
        fake.specs[f"d-GROUP000{group}"] = _spec(bundle, f"d-GROUP000{group}", group=f"dg-{group}")
        (tmp_path / group / "installed").mkdir(parents=True)
    with running_poller(_agent_dir(tmp_path, endpoint)):
        for group in "AB":
            fake.add(f"dl-{group}", "DownloadBundle", f"d-GROUP000{group}")
            fake.add(f"in-{group}", "Install", f"d-GROUP000{group}")
            fake.wait_for(_completes(2 if group == "A" else 4))
        fake.add("hook-A", "AfterInstall", "d-GROUP000A")
        fake.add("hook-B", "AfterInstall", "d-GROUP000B")
        fake.wait_for(_completes(6))
    statuses = {
        c.body["HostCommandIdentifier"]: c.body["CommandStatus"]
        for c in fake.of("PutHostCommandComplete")
    }
    assert statuses["hook-A"] == statuses["hook-B"] == "Succeeded"


def test_commands_of_one_deployment_take_their_turns_in_the_order_received() -> None:
    from opendeploy.agent.poller import _Turns

    turns, ran = _Turns(), []
    tickets = [turns.ticket("d-1") for _ in range(4)]
    other = turns.ticket("d-2")

    def run(ticket: int) -> None:
        turns.wait("d-1", ticket)
        ran.append(ticket)
        turns.done("d-1", ticket)

    threads = [threading.Thread(target=run, args=(t,)) for t in reversed(tickets)]
    for thread in threads:
        thread.start()
    turns.wait("d-2", other)  # another deployment does not wait for d-1
    turns.done("d-2", other)
    for thread in threads:
        thread.join(10)
    assert ran == [0, 1, 2, 3]
    assert turns.ticket("d-1") == 0  # all done: forgotten


def test_an_invalid_specification_is_asked_for_again(
    tmp_path: Path, service: tuple[FakeCommandService, str]
) -> None:
    # Only a specification that parsed is remembered: a broken one fails its command and the
    # next command of the deployment asks the server again.
    fake, endpoint = service
    fake.specs["d-BROKEN001"] = {"not": "a specification"}
    fake.add("bad-1", "DownloadBundle", "d-BROKEN001")
    fake.add("bad-2", "Install", "d-BROKEN001")
    with running_poller(_agent_dir(tmp_path, endpoint)):
        fake.wait_for(_completes(2))
    assert [c.body["CommandStatus"] for c in fake.of("PutHostCommandComplete")] == [
        "Failed",
        "Failed",
    ]
    assert len(fake.of("GetDeploymentSpecification")) == 2


def test_polls_list_the_received_commands_and_a_repeated_delivery_is_not_run_twice(
    tmp_path: Path, service: tuple[FakeCommandService, str]
) -> None:
    """The server may hand a command out again (its poll answer looked lost): while the agent
    runs it, the repeat is ignored; every poll names the commands received lately."""
    fake, endpoint = service
    proof = tmp_path / "ran"
    bundle = _bundle(tmp_path, {"AfterInstall": f"echo ran >> {proof}; sleep 1"})
    fake.specs["d-AAAAAAAA7"] = _spec(bundle, "d-AAAAAAAA7")
    fake.add("cmd-download", "DownloadBundle", "d-AAAAAAAA7")
    fake.add("cmd-install", "Install", "d-AAAAAAAA7")
    fake.add("cmd-once", "AfterInstall", "d-AAAAAAAA7")
    fake.add("cmd-once", "AfterInstall", "d-AAAAAAAA7")
    config_path = _agent_dir(tmp_path, endpoint)
    with running_poller(config_path):
        fake.wait_for(_completes(3))
        fake.wait_for(lambda calls: len([c for c in calls if c.operation == "PollHostCommand"]) > 3)
    assert proof.read_text() == "ran\n"
    acks = [c.body["HostCommandIdentifier"] for c in fake.of("PutHostCommandAcknowledgement")]
    assert acks == ["cmd-download", "cmd-install", "cmd-once"]
    polls = fake.of("PollHostCommand")
    assert polls[0].headers["x-opendeploy-received-commands"] == ""
    assert polls[-1].headers["x-opendeploy-received-commands"] == (
        "cmd-once,cmd-install,cmd-download"
    )
