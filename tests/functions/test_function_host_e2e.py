"""The built-in function host end to end: boto3's and aws-cli's Lambda clients against a real
``opendeploy server --function-host``, functions run as real awslambdaric processes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from opendeploy.testing.server import RunningServer, running_server

ROLE = "arn:aws:iam::000000000000:role/lambda-role"


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", textwrap.dedent(source))
    return buffer.getvalue()


VERSIONED = """
    import os
    def handler(event, context):
        return {"answer": VALUE, "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
                "arn": context.invoked_function_arn, "event": event}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(
        tmp_path_factory.mktemp("function-host"), extra_args=("--function-host",)
    ) as srv:
        yield srv
        functions = _function_processes(srv.process.pid)
        assert functions, "the tests ran no function process"
    # Stopped with the server (SIGTERM): no function process is left behind.
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in functions):
        assert time.monotonic() < deadline, "function processes outlived the server"
        time.sleep(0.05)


def _function_processes(pid: int) -> list[int]:
    """The server's children that run awslambdaric."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"awslambdaric" in cmdline:
                found.append(int(child))
    return found


@pytest.fixture(scope="module")
def lam(server: RunningServer) -> Any:
    # One connection pool kept alive across the 1,000 invocations (keep-alive, as a deployment
    # hammering an alias would).
    return server.client(
        "lambda", config=Config(retries={"max_attempts": 1}, max_pool_connections=8)
    )


def _create(lam: Any, name: str, source: str, **extra: Any) -> dict[str, Any]:
    return lam.create_function(  # type: ignore[no-any-return]
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": _zip(source)},
        **extra,
    )


def _payload(response: dict[str, Any]) -> Any:
    return json.loads(response["Payload"].read())


def test_versions_aliases_and_weighted_invocations(lam: Any) -> None:
    created = _create(lam, "shop", VERSIONED.replace("VALUE", "1"))
    assert created["Version"] == "$LATEST"
    assert created["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:shop"
    v1 = lam.publish_version(FunctionName="shop")
    assert v1["Version"] == "1"
    # Nothing changed since version 1: PublishVersion gives version 1 again, as AWS does.
    assert lam.publish_version(FunctionName="shop")["Version"] == "1"
    lam.update_function_code(FunctionName="shop", ZipFile=_zip(VERSIONED.replace("VALUE", "2")))
    v2 = lam.publish_version(FunctionName="shop", Description="second")
    assert v2["Version"] == "2" and v2["CodeSha256"] != v1["CodeSha256"]
    versions = lam.list_versions_by_function(FunctionName="shop")["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]

    alias = lam.create_alias(FunctionName="shop", Name="live", FunctionVersion="1")
    assert alias["AliasArn"].endswith(":function:shop:live")
    with pytest.raises(ClientError) as exists:
        lam.create_alias(FunctionName="shop", Name="live", FunctionVersion="1")
    assert exists.value.response["Error"]["Code"] == "ResourceConflictException"

    # A version, then the alias (one version), then the alias weighted 10 % to version 2.
    by_version = lam.invoke(FunctionName="shop", Qualifier="2", Payload=b'{"n": 1}')
    assert by_version["ExecutedVersion"] == "2"
    assert _payload(by_version) == {
        "answer": 2,
        "version": "2",
        "arn": "arn:aws:lambda:us-east-1:000000000000:function:shop:2",
        "event": {"n": 1},
    }
    by_alias = lam.invoke(FunctionName="shop:live")
    assert by_alias["ExecutedVersion"] == "1" and _payload(by_alias)["answer"] == 1

    updated = lam.update_alias(
        FunctionName="shop",
        Name="live",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
        RevisionId=alias["RevisionId"],
    )
    assert updated["RevisionId"] != alias["RevisionId"]
    got = lam.get_alias(FunctionName="shop", Name="live")
    assert got["FunctionVersion"] == "1"
    assert got["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.1}}
    assert (
        lam.get_function(FunctionName="shop", Qualifier="live")["Configuration"]["Version"] == "1"
    )

    def invoke(_: int) -> str:
        response = lam.invoke(FunctionName="shop", Qualifier="live")
        assert _payload(response)["version"] == response["ExecutedVersion"]
        return str(response["ExecutedVersion"])

    # Four callers at once (warm processes of both versions, keep-alive connections).
    with ThreadPoolExecutor(4) as pool:
        executed = list(pool.map(invoke, range(1000)))
    assert 70 <= executed.count("2") <= 130, executed.count("2")  # 10 % within ±3 points
    assert abs(executed.count("2") - 100) <= 5  # spread draws: about one off, callers racing
    assert executed.count("1") + executed.count("2") == 1000

    # All at once to version 2, the weights cleared.
    final = lam.update_alias(
        FunctionName="shop", Name="live", FunctionVersion="2", RoutingConfig={}
    )
    assert final["FunctionVersion"] == "2" and "RoutingConfig" not in final
    assert lam.invoke(FunctionName="shop", Qualifier="live")["ExecutedVersion"] == "2"


def test_errors_in_lambda_shape(lam: Any) -> None:
    with pytest.raises(ClientError) as missing:
        lam.get_function(FunctionName="nope")
    error = missing.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["Error"]["Message"] == (
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"
    )
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404

    _create(lam, "raiser", "def handler(event, context):\n    raise ValueError('bad input')\n")
    raised = lam.invoke(
        FunctionName="arn:aws:lambda:us-east-1:000000000000:function:raiser", Qualifier="$LATEST"
    )
    assert raised["ExecutedVersion"] == "$LATEST"
    assert raised["StatusCode"] == 200 and raised["FunctionError"] == "Unhandled"
    body = _payload(raised)
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "bad input"
    assert body["requestId"] and body["stackTrace"]

    lam.create_function(
        FunctionName="broken",
        Runtime="python3.11",
        Role=ROLE,
        Handler="missing.handler",
        Code={"ZipFile": _zip("x = 1\n")},
    )
    broken = lam.invoke(FunctionName="broken")
    assert broken["FunctionError"] == "Unhandled"
    assert _payload(broken)["errorType"] == "Runtime.ImportModuleError"

    with pytest.raises(ClientError) as alias_missing:
        lam.invoke(FunctionName="raiser", Qualifier="nothere")
    assert alias_missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as bad_version:
        lam.create_alias(FunctionName="raiser", Name="x", FunctionVersion="7")
    assert bad_version.value.response["Error"]["Message"] == (
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:raiser:7"
    )
    with pytest.raises(ClientError) as latest_weights:
        lam.create_alias(
            FunctionName="raiser",
            Name="y",
            FunctionVersion="$LATEST",
            RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
        )
    assert latest_weights.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_large_zips_need_a_signature_first(server: RunningServer, lam: Any) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return 'big'\n")
        archive.writestr("blob.bin", os.urandom(300_000))
    created = lam.create_function(
        FunctionName="big",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": buffer.getvalue()},
    )
    assert created["CodeSize"] == len(buffer.getvalue())
    assert _payload(lam.invoke(FunctionName="big")) == "big"
    # The same body unsigned is refused from its headers.
    request = urllib.request.Request(
        server.endpoint + "/2015-03-31/functions", data=b"x" * 300_000, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    refused.value.close()


def test_timeout_kills_the_process(lam: Any) -> None:
    _create(
        lam,
        "sleeper",
        "import os, time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 30))\n"
        "    return os.getpid()\n",
        Timeout=1,
    )
    response = lam.invoke(FunctionName="sleeper")
    assert response["FunctionError"] == "Unhandled"
    body = _payload(response)
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    # The timed-out process was killed; the next invocation runs in a new one.
    assert isinstance(_payload(lam.invoke(FunctionName="sleeper", Payload=b'{"sleep": 0}')), int)


HOOK = """
    import boto3
    def handler(event, context):
        codedeploy = boto3.client("codedeploy")
        if "create" in event:
            codedeploy.create_application(applicationName=event["create"])
        return {"applications": codedeploy.list_applications()["applications"]}
"""


def test_a_function_calls_the_server_back_with_boto3(server: RunningServer, lam: Any) -> None:
    server.client("codedeploy").create_application(applicationName="called-back")
    _create(lam, "caller", HOOK, Timeout=30)
    response = lam.invoke(FunctionName="caller")
    assert "FunctionError" not in response, _payload(response)
    assert "called-back" in _payload(response)["applications"]


def test_aws_cli_invoke(server: RunningServer, lam: Any, tmp_path: Path) -> None:
    _create(lam, "cli", VERSIONED.replace("VALUE", "7"))
    out = tmp_path / "out.json"
    env = {**os.environ, **server.env()}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "awscli",
            "lambda",
            "invoke",
            "--function-name",
            "cli",
            "--payload",
            '{"from": "cli"}',
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    assert json.loads(out.read_text())["event"] == {"from": "cli"}


def test_memory_is_bounded(lam: Any) -> None:
    _create(
        lam,
        "hog",
        "def handler(event, context):\n    return len(bytearray(400 * 1024 * 1024))\n",
        MemorySize=128,
    )
    response = lam.invoke(FunctionName="hog")
    assert response["FunctionError"] == "Unhandled"
    assert _payload(response)["errorType"] == "MemoryError"


def test_event_invocations_run_in_the_background(server: RunningServer, lam: Any) -> None:
    # The function of the test above, warm if it ran.
    with contextlib.suppress(lam.exceptions.ResourceConflictException):
        _create(lam, "caller", HOOK, Timeout=30)
    response = lam.invoke(
        FunctionName="caller", InvocationType="Event", Payload=b'{"create": "from-event"}'
    )
    assert response["StatusCode"] == 202
    codedeploy = server.client("codedeploy")
    waiter_deadline = time.monotonic() + 20
    while "from-event" not in codedeploy.list_applications()["applications"]:
        assert time.monotonic() < waiter_deadline, "the Event invocation never ran"
        time.sleep(0.1)
