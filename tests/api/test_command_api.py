"""The Command API over real sockets: identity, long poll latency, spec envelopes, diagnostics."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from opendeploy.agent.spec import S3Revision, parse_deployment_spec
from opendeploy.api.commands.handlers import public_diagnostics
from opendeploy.api.commands.signing import SIGNER_CA_FILE, self_signed, signer_subject
from opendeploy.store import commands as cmd_store
from opendeploy.store import driver_sql
from tests._stored import bare_deployment
from tests.api._openssl import compat_subject, openssl
from tests.engine.agent_sim import (
    AGENT_EVENTS,
    S3_V1,
    Cluster,
    command_client,
    running_cluster,
    settings_for,
)


@pytest.fixture
def cluster(tmp_path: Path, database_url: str) -> Any:
    with running_cluster(settings_for(tmp_path, database_url, poll_timeout_seconds=1.0)) as c:
        yield c


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_long_poll_answers_as_soon_as_a_command_exists(tmp_path: Path, database_url: str) -> None:
    # A poll held 3 s: long enough that creating the deployment (a second or more on a loaded
    # machine) ends while the second poll is still held, which is what this test is about.
    hold = 3.0
    settings = settings_for(tmp_path, database_url, poll_timeout_seconds=hold)
    with running_cluster(settings) as cluster:
        agent = cluster.add_instance("web-1", {"app": "web"})
        cluster.group("shop")
        started = time.monotonic()
        assert agent.poll() is None  # nothing to do: the poll is held, then answers {}
        assert hold - 0.1 <= time.monotonic() - started < hold + 2

        def poll() -> tuple[dict[str, Any] | None, float]:
            return agent.poll(), time.monotonic()

        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(poll)
            # Give the poll a head start so it is really held when the command appears.
            time.sleep(0.3)
            assert not held.done()
            cluster.deploy("shop", S3_V1)
            created = time.monotonic()  # the engine makes the command from here on
            command, answered = held.result(timeout=hold + 5)
    assert command is not None, "the held poll ended before the command was made"
    assert command["CommandName"] == "ApplicationStop"
    latency = answered - created
    assert latency < 1.0, f"long poll answered {latency:.3f} s after the command was created"
    assert command["HostIdentifier"] == agent.host_id
    assert command["DeploymentExecutionId"].startswith("CodeDeploy/us-east-1/Prod/arn:aws:")


def test_hosts_see_and_answer_only_their_own_commands(cluster: Cluster) -> None:
    a = cluster.add_instance("web-1", {"app": "web"})
    b = cluster.add_instance("db-1", {"app": "db"})
    cluster.group("shop")
    cluster.deploy("shop", S3_V1)
    command = a.poll()
    assert command is not None
    with pytest.raises(ClientError) as exc:
        b.client.poll_host_command(HostIdentifier=a.host_id)
    assert _code(exc) == "AccessDeniedException"
    for call in (
        lambda: b.ack(command),
        lambda: b.complete(command),
        lambda: b.spec(command),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert _code(exc) == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        b.client.put_host_command_acknowledgement(HostCommandIdentifier="hc-nope")
    assert _code(exc) == "ClientException"
    assert a.ack(command) == "InProgress"


def test_admin_key_cannot_poll_and_instance_key_cannot_administer(cluster: Cluster) -> None:
    agent = cluster.add_instance("web-1", {"app": "web"})
    admin = command_client(cluster.endpoint, cluster.admin_key, cluster.admin_secret, "X")
    with pytest.raises(ClientError) as exc:
        admin.poll_host_command(HostIdentifier=agent.host_id)
    assert _code(exc) == "AccessDeniedException"
    assert "admin key" in exc.value.response["Error"]["Message"]
    creds = agent.client._request_signer._credentials
    import boto3

    as_host = boto3.session.Session().client(
        "codedeploy",
        endpoint_url=cluster.endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
    )
    with pytest.raises(ClientError) as exc:
        as_host.list_applications()
    assert _code(exc) == "AccessDeniedException"
    # Nor may an instance key issue credentials.
    status, body = cluster.issue("web-1", creds.access_key, creds.secret_key)
    assert status == 400 and body["__type"] == "AccessDeniedException"


def test_instance_credentials_errors_and_revocation(cluster: Cluster) -> None:
    status, body = cluster.issue("ghost")
    assert status == 400 and body["__type"] == "InstanceNotRegisteredException"
    assert "ghost" in body["message"]
    agent = cluster.add_instance("web-1", {"app": "web"})
    assert agent.poll() is None
    cluster.cd.deregister_on_premises_instance(instanceName="web-1")
    with pytest.raises(ClientError) as exc:
        agent.poll()
    assert _code(exc) in ("UnrecognizedClientException", "InvalidClientTokenId")


def _openssl_content(pem: str, tmp_path: Path) -> bytes:
    path = tmp_path / "spec.pem"
    path.write_text(pem)
    done = openssl("cms", "-verify", "-noverify", "-inform", "PEM", "-in", str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_spec_envelopes_parse_with_the_agent_parser(cluster: Cluster, tmp_path: Path) -> None:
    ours = cluster.add_instance("web-1", {"app": "web"}, version="OPENDEPLOY-1.0.0")
    official = cluster.add_instance("web-2", {"app": "web"}, version="OFFICIAL_1.8.1")
    cluster.group("shop", config="CodeDeployDefault.AllAtOnce")
    dep = cluster.deploy("shop", S3_V1)
    text = ours.spec(ours.poll())  # type: ignore[arg-type]
    signed = official.spec(official.poll())  # type: ignore[arg-type]
    assert text["DeploymentSystem"] == signed["DeploymentSystem"] == "CodeDeploy"
    text_env = text["DeploymentSpecification"]["GenericEnvelope"]
    signed_env = signed["DeploymentSpecification"]["GenericEnvelope"]
    assert text_env["Format"] == "TEXT/JSON"
    assert signed_env["Format"] == "PKCS7/JSON"
    assert signed_env["Payload"].startswith("-----BEGIN PKCS7-----")
    inner = _openssl_content(signed_env["Payload"], tmp_path)
    assert json.loads(inner) == json.loads(text_env["Payload"])
    spec = parse_deployment_spec(inner)
    assert spec.deployment_id == dep
    assert spec.application_name == "shop" and spec.deployment_group_name == "prod"
    assert spec.deployment_creator == "user" and spec.deployment_type == "IN_PLACE"
    assert spec.revision == S3Revision(bucket="b", key="app-v1.zip", bundle_type="zip", etag="e1")
    assert spec.file_exists_behavior.value == "DISALLOW"
    # Every call records the agent's version header and the time it was seen.
    seen = cluster.server.store.instances.get("web-2")
    assert seen["agent_version"] == "OFFICIAL_1.8.1" and seen["last_seen_at"] is not None


def test_signed_spec_passes_the_strict_check_of_official_agents(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The strict official agents' check, with the OpenSSL they use: ``NOCHAIN`` verification
    against their CA file (the server's signer CA copied over it), one certificate, its subject
    pinned to the region's signer in OpenSSL's ``/C=…/CN=…`` text."""
    official = cluster.add_instance("web-2", {"app": "web"}, version="OFFICIAL_1.2.1")
    cluster.group("shop", config="CodeDeployDefault.AllAtOnce")
    cluster.deploy("shop", S3_V1)
    answer = official.spec(official.poll())  # type: ignore[arg-type]
    spec = tmp_path / "spec.pem"
    spec.write_text(answer["DeploymentSpecification"]["GenericEnvelope"]["Payload"])
    ca = cluster.settings.data_dir / SIGNER_CA_FILE
    verified = openssl(
        "smime", "-verify", "-nochain", "-CAfile", str(ca), "-inform", "PEM", "-in", str(spec)
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ApplicationName"] == "shop"
    certs = openssl("pkcs7", "-print_certs", "-in", str(spec)).stdout
    assert certs.count(b"-----BEGIN CERTIFICATE-----") == 1
    assert compat_subject(certs) == (
        "subject=/C=US/ST=Washington/L=Seattle/O=Amazon.com, Inc."
        "/CN=codedeploy-signer-us-east-1.amazonaws.com"
    )
    # The check can fail: against another CA file (the one the agent ships, say) it does.
    _, other = self_signed(signer_subject("us-east-1"))
    stranger = tmp_path / "other-ca.pem"
    stranger.write_bytes(other)
    refused = openssl(
        "smime", "-verify", "-nochain", "-CAfile", str(stranger), "-inform", "PEM", "-in", str(spec)
    )
    assert refused.returncode != 0


def test_completion_diagnostics_and_streamed_output(cluster: Cluster) -> None:
    agent = cluster.add_instance("web-1", {"app": "web"})
    cluster.group("shop")
    dep = cluster.deploy("shop", S3_V1)
    command = agent.poll()
    assert command is not None
    assert agent.ack(command) == "InProgress"
    for lines in (["starting", "step 1"], ["done"]):
        answer = agent.client.post_host_command_update(
            HostCommandIdentifier=command["HostCommandIdentifier"],
            Diagnostics={"Format": "JSON", "Payload": json.dumps({"output": lines})},
        )
        assert answer["CommandStatus"] == "InProgress"
    out = cluster.server.store.commands.output(dep, "web-1")
    assert out[0]["output"] == "starting\nstep 1\ndone\n"
    agent.complete(command, ok=False, code=7, message="Failed: after an agent restart.")
    agent.complete(command)  # a repeated (different) completion is ignored
    info = cluster.wait_status(dep, "Failed")
    assert info["deploymentOverview"]["Failed"] == 1
    event = cluster.targets(dep)["web-1"]["lifecycleEvents"][0]
    assert event["diagnostics"]["errorCode"] == "UnknownError"
    assert event["diagnostics"]["message"] == "Failed: after an agent restart."
    # The closed command: a late acknowledgement tells the agent to skip it.
    assert agent.ack(command) == "Failed"


def test_noop_acknowledgement_succeeds_the_event(cluster: Cluster) -> None:
    agent = cluster.add_instance("web-1", {"app": "web"})
    cluster.group("shop")
    dep = cluster.deploy("shop", S3_V1)
    for _ in AGENT_EVENTS:
        command = agent.poll()
        while command is None:
            command = agent.poll()
        agent.ack(command, noop=True)
    info = cluster.wait_status(dep, "Succeeded")
    assert info["deploymentOverview"]["Succeeded"] == 1


def test_error_code_mapping() -> None:
    def env(code: object) -> dict[str, str]:
        payload = {"error_code": code, "script_name": "s.sh", "message": "m", "log": "x" * 9000}
        return {"Format": "JSON", "Payload": json.dumps(payload)}

    names = {c: public_diagnostics("Failed", env(c))["errorCode"] for c in range(8)}
    assert names == {
        0: "Success",
        1: "ScriptMissing",
        2: "ScriptNotExecutable",
        3: "ScriptTimedOut",
        4: "ScriptFailed",
        5: "UnknownError",
        6: "ScriptFailed",
        7: "UnknownError",
    }
    odd = public_diagnostics("Failed", env("Unknown"))
    assert odd["errorCode"] == "UnknownError" and len(odd["logTail"]) == 4096
    assert public_diagnostics("Succeeded", None)["errorCode"] == "Success"


def _wait_held(cluster: Cluster, *names: str) -> None:
    """Until every one of ``names`` holds a poll in the server."""
    deadline = time.monotonic() + 10
    while not set(names) <= set(cluster.server.notifier.waiting()):
        assert time.monotonic() < deadline, f"polls of {names} never held"
        time.sleep(0.02)


def test_a_command_created_by_another_replica_reaches_a_held_poll(
    tmp_path: Path, database_url: str
) -> None:
    # No engine in this process creates the command, so nothing here wakes the poll: only the
    # process's periodic sweep (SWEEP_SECONDS) can find it, as with a command of another replica.
    settings = settings_for(tmp_path, database_url, poll_timeout_seconds=15.0)
    with running_cluster(settings) as cluster:
        agent = cluster.add_instance("web-1", {"app": "web"})
        store = cluster.server.store
        bare_deployment(store, "d-OTHERREPL", now=datetime.now(UTC))
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(agent.poll)
            _wait_held(cluster, "web-1")
            with store.database.write() as conn:
                command_id = cmd_store.dispatch(
                    conn, "d-OTHERREPL", "web-1", "BeforeInstall", datetime.now(UTC)
                )
            created = time.monotonic()
            command = held.result(timeout=20)
            latency = time.monotonic() - created
    assert command is not None and command["HostCommandIdentifier"] == command_id
    # One sweep interval (1 s) plus generous room for a loaded machine; far below the 15 s
    # after which the poll would have answered "no command".
    assert latency < 6, f"the poll answered {latency:.1f} s after the command was created"


def test_held_polls_keep_their_hosts_alive_in_batched_writes(
    tmp_path: Path, database_url: str
) -> None:
    # dead_after 1.5 s: signs of life are due every 0.5 s, swept every 0.25 s.
    settings = settings_for(
        tmp_path, database_url, agent_dead_after_seconds=1.5, poll_timeout_seconds=8.0
    )
    with running_cluster(settings) as cluster:
        agents = [cluster.add_instance(f"web-{i}", {"app": "web"}) for i in range(5)]
        names = [a.name for a in agents]
        touch = driver_sql.TOUCH_INSTANCES
        seen_writes: list[int] = []  # rows per UPDATE of on_premises_instances

        def count(conn: Any, rows: Sequence[Any]) -> None:
            seen_writes.append(len(rows))
            type(touch).execute(touch, conn, rows)

        with ThreadPoolExecutor(len(agents)) as pool:
            held = [pool.submit(a.poll) for a in agents]
            _wait_held(cluster, *names)
            touch.execute = count  # type: ignore[method-assign]
            try:
                began = time.monotonic()
                time.sleep(4)  # the polls are held for this long: several dead-agent windows
                holding = time.monotonic() - began
                instances = cluster.server.store.instances.get_many(names)
                now = datetime.now(UTC)
            finally:
                del touch.execute
            assert [f.result(timeout=20) for f in held] == [None] * len(agents)
    for instance in instances:
        assert instance is not None and instance["last_seen_at"] is not None
        quiet = (now - instance["last_seen_at"]).total_seconds()
        assert quiet < 1.5, f"{instance['name']} looks dead while holding a poll ({quiet:.2f} s)"
    # Batched: one statement per sweep for all held polls (not one transaction per host and
    # heartbeat), so fewer statements than sweeps could make, and several rows per statement.
    assert 0 < len(seen_writes) <= holding / 0.25 + 4, seen_writes
    assert max(seen_writes) >= 2, seen_writes
