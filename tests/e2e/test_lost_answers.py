"""A real agent against a real server through a proxy that loses the server's answers.

Each Command API call reaches the server, the server acts on it and answers, and the answer
never reaches the agent (the connection is cut). The agent's calls are safe to repeat and the
server's answers are the same when they are repeated, so a lost answer costs a retry: the
deployment succeeds, in seconds rather than after an event timeout.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from opendeploy.testing.agents import RunningAgent, running_agents
from opendeploy.testing.proxy import AnswerDroppingProxy
from opendeploy.testing.server import RunningServer, running_server
from tests._stored import server_store
from tests.e2e.polling import finished_deployment

#: Far below the event timeouts (minutes) that a lost answer used to cost.
WITHIN_SECONDS = 20.0


def _bundle(destination: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "appspec.yml",
            "version: 0.0\nos: linux\nfiles:\n  - source: index.html\n"
            f"    destination: {destination}\n"
            "hooks:\n  AfterInstall:\n    - location: after.sh\n",
        )
        archive.writestr("index.html", "<p>hello</p>\n")
        info = zipfile.ZipInfo("after.sh")
        info.external_attr = 0o755 << 16
        archive.writestr(info, "#!/bin/sh\necho after-install ran\n")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("lost") / "server") as srv:
        yield srv


@pytest.mark.parametrize(
    ("operation", "times"),
    [
        ("PollHostCommand", 1),
        ("GetDeploymentSpecification", 1),
        ("PutHostCommandAcknowledgement", 1),
        # More than botocore's own attempts (3): the agent's retries must carry it.
        ("PutHostCommandAcknowledgement", 4),
        ("GetDeploymentSpecification", 4),
        ("PutHostCommandComplete", 4),
        # Hook output: botocore sends the batch again, the server keeps it once.
        ("PostHostCommandUpdate", 2),
        # The bundle's download (S3 GetObject from the server): lost answers, then a cut body.
        ("GET", 5),
        ("GET-cut", 2),
    ],
)
def test_a_lost_answer_costs_a_retry_not_the_deployment(
    server: RunningServer, tmp_path: Path, operation: str, times: int
) -> None:
    destination = tmp_path / "www"
    bundle = _bundle(destination)
    bucket = f"lost-{operation.lower()}-{times}".replace("_", "-")
    s3 = server.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="app.zip", Body=bundle)
    cd = server.client("codedeploy")
    with AnswerDroppingProxy(server.endpoint) as proxy:
        proxied = replace(server, endpoint=proxy.endpoint, _log_file=None)
        tag = f"{operation}-{times}"
        with running_agents(
            proxied, tmp_path / "hosts", 1, name_prefix=tag, tags={"role": tag}
        ) as (agent,):
            if operation == "GET-cut":
                proxy.cut("GET", after_bytes=100, times=times)
            else:
                proxy.drop(operation, times=times)
            started = time.monotonic()
            deployment_id = _deploy(cd, bucket, tag)
            info = finished_deployment(cd, deployment_id, timeout=120)
            elapsed = time.monotonic() - started
            assert info["status"] == "Succeeded", (info, _agent_log(agent))
            if operation == "GET-cut":
                ranges = [r for op, r in proxy.requests if op == "GET"]
                assert ranges[-3:] == [None, "bytes=100-", "bytes=200-"], ranges
            else:
                assert proxy.dropped[operation] == times, proxy.seen
            assert elapsed < WITHIN_SECONDS, (elapsed, _agent_log(agent))
            assert (destination / "index.html").read_text() == "<p>hello</p>\n"
            store = server_store(server)
            try:
                output = "".join(
                    c["output"] or "" for c in store.commands.output(deployment_id, agent.name)
                )
            finally:
                store.close()
            assert output.count("after-install ran") == 1, output


def _deploy(cd: object, bucket: str, tag: str) -> str:
    app = f"app-{tag}"
    cd.create_application(applicationName=app)  # type: ignore[attr-defined]
    cd.create_deployment_group(  # type: ignore[attr-defined]
        applicationName=app,
        deploymentGroupName="web",
        serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
        deploymentConfigName="CodeDeployDefault.AllAtOnce",
        onPremisesInstanceTagFilters=[{"Key": "role", "Value": tag, "Type": "KEY_AND_VALUE"}],
    )
    deployment_id: str = cd.create_deployment(  # type: ignore[attr-defined]
        applicationName=app,
        deploymentGroupName="web",
        revision={
            "revisionType": "S3",
            "s3Location": {"bucket": bucket, "key": "app.zip", "bundleType": "zip"},
        },
    )["deploymentId"]
    return deployment_id


def _agent_log(agent: RunningAgent) -> str:
    return agent.output()[-4000:]


def test_a_poll_answer_lost_as_the_server_dies_is_handed_out_again_after_restart(
    tmp_path: Path,
) -> None:
    """The server records the delivery, its answer never reaches the agent, the server is
    killed: the restarted server sees on the agent's first poll that the agent never received
    the command, and hands it out at once (not after REDELIVER_AFTER, 60 s)."""
    destination = tmp_path / "www"
    with running_server(tmp_path / "server") as first:
        s3 = first.client("s3")
        s3.create_bucket(Bucket="restart")
        s3.put_object(Bucket="restart", Key="app.zip", Body=_bundle(destination))
        with AnswerDroppingProxy(first.endpoint) as proxy:
            proxied = replace(first, endpoint=proxy.endpoint, _log_file=None)
            with running_agents(proxied, tmp_path / "hosts", 1, tags={"role": "r"}) as (agent,):
                proxy.drop("PollHostCommand")
                deployment_id = _deploy(first.client("codedeploy"), "restart", "r")
                deadline = time.monotonic() + 30
                while not proxy.dropped["PollHostCommand"]:
                    assert time.monotonic() < deadline, "no poll answer was dropped"
                    time.sleep(0.02)
                first.process.kill()
                first.process.wait()
                killed = time.monotonic()
                with running_server(first.data_dir, port=first.port) as again:
                    cd = again.client("codedeploy")
                    info = finished_deployment(cd, deployment_id, timeout=120)
                    elapsed = time.monotonic() - killed
                    assert info["status"] == "Succeeded", (info, _agent_log(agent))
                    assert elapsed < WITHIN_SECONDS, (elapsed, _agent_log(agent))
                    assert "never received" in again.log_text()
