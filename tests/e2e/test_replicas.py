"""Three replicas on one PostgreSQL database behind a real HAProxy, bundles in a real SeaweedFS,
real agents: what the hosts and clients see is one server, whichever replica answers.

HAProxy forwards TCP (TLS end to end: the agents verify the replicas' one shared self-signed
certificate) round-robin, with health checks so that a replica that is down is skipped. Each
replica has its own data directory and port; a restarted replica keeps both (and so its lease
owner name). Each host's hooks append ``<event> <version>`` to a proof file of its own.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from opendeploy.api.commands.signing import SIGNER_CA_FILE
from opendeploy.testing.agents import RunningAgent, register_instance, running_agents
from opendeploy.testing.server import RunningServer, free_port, start_server
from tests._seaweedfs import SeaweedS3, running_seaweedfs
from tests.api.test_official_agent_wire import SCRIPT, VARIANTS
from tests.api.test_official_agent_wire import _bundle as official_bundle
from tests.api.test_official_agent_wire import _need_ruby as need_ruby
from tests.conftest import scratch_postgres_database
from tests.e2e.polling import finished_deployment, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

APP, GROUP, BUCKET = "shop", "web", "bundles"
TAGS = {"role": "web"}
HOOKS = ("BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService")
REPLICAS = 3
HOSTS = 3
SERVER_ARGS = (
    "--tls",
    "--poll-timeout",
    "5",
    "--event-start-timeout",
    "60",
    "--bundle-store",
    f"s3://{BUCKET}/opendeploy",
    # Three replicas within PostgreSQL's default max_connections (100), with room for others.
    "--database-connections",
    "16",
)


@dataclass
class Fleet:
    replicas: list[RunningServer]
    #: What clients and agents use: the replicas' credentials at HAProxy's address.
    front: RunningServer
    agents: list[RunningAgent]
    store: SeaweedS3
    database_url: str
    env: dict[str, str]

    def restart(self, index: int, *, kill: bool) -> float:
        """Stop replica ``index`` (SIGKILL, or SIGTERM and wait) and start it again on its
        port; returns how long the stop took."""
        old = self.replicas[index]
        began = time.monotonic()
        if kill:
            old.process.kill()
            old.process.wait()
            old.stop()  # closes its log
        else:
            assert old.stop(timeout=60) == 0, old.log_text()[-3000:]
        took = time.monotonic() - began
        self.replicas[index] = start_server(
            old.data_dir,
            database_url=self.database_url,
            extra_args=SERVER_ARGS,
            env=self.env,
            port=old.port,
        )
        return took


def _haproxy_config(port: int, backends: list[int]) -> str:
    servers = "\n".join(
        f"    server r{i} 127.0.0.1:{p} check inter 200ms fall 1 rise 1"
        for i, p in enumerate(backends)
    )
    return f"""global
    maxconn 2000
defaults
    mode tcp
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch
listen replicas
    bind 127.0.0.1:{port}
    balance roundrobin
{servers}
"""


@contextmanager
def _haproxy(directory: Path, backends: list[int]) -> Iterator[int]:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(binary).exists(), "haproxy is not installed (scripts/install installs it)"
    port = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(_haproxy_config(port, backends))
    log = (directory / "haproxy.log").open("ab")
    process = subprocess.Popen(
        [binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log
    )
    try:
        import socket

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 10, "HAProxy to listen")
        yield port
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def _bundle(version: str) -> bytes:
    scripts, hooks = {}, []
    for event in HOOKS:
        scripts[f"scripts/{event}.sh"] = (
            f'#!/bin/sh\nset -e\necho "$LIFECYCLE_EVENT {version}" >> "$PROOF_DIR/events"\n'
        )
        hooks.append(f"  {event}:\n    - location: scripts/{event}.sh\n      timeout: 60\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("appspec.yml", "version: 0.0\nos: linux\nhooks:\n" + "".join(hooks))
        for name, text in scripts.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            archive.writestr(info, text)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("replicas")
    with ExitStack() as stack:
        url = stack.enter_context(scratch_postgres_database())
        store = stack.enter_context(running_seaweedfs(base / "seaweedfs", BUCKET))
        env = store.env()
        # Started together on an empty database: one migrates and makes the shared secrets,
        # the others wait for the migration and take what it made.
        with ThreadPoolExecutor(REPLICAS) as pool:
            started = list(
                pool.map(
                    lambda i: start_server(
                        base / f"replica-{i}", database_url=url, extra_args=SERVER_ARGS, env=env
                    ),
                    range(REPLICAS),
                )
            )
        fleet = Fleet(started, started[0], [], store, url, env)
        stack.callback(lambda: [replica.stop() for replica in fleet.replicas])
        lb = stack.enter_context(_haproxy(base, [r.port for r in started]))
        fleet.front = replace(started[0], endpoint=f"https://127.0.0.1:{lb}")
        fleet.agents = stack.enter_context(
            running_agents(
                fleet.front,
                base / "hosts",
                HOSTS,
                tags=TAGS,
                agent_env=lambda _name, d: {"PROOF_DIR": str(d)},
            )
        )
        client = fleet.front.client()
        client.create_application(applicationName=APP)
        client.create_deployment_group(
            applicationName=APP,
            deploymentGroupName=GROUP,
            serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
            deploymentConfigName="CodeDeployDefault.AllAtOnce",
            onPremisesInstanceTagFilters=[
                {"Key": k, "Value": v, "Type": "KEY_AND_VALUE"} for k, v in TAGS.items()
            ],
        )
        yield fleet


def _push(server: RunningServer, version: str) -> dict[str, Any]:
    s3 = server.client("s3")
    key = f"{APP}/{version}.zip"
    s3.put_object(Bucket=BUCKET, Key=key, Body=_bundle(version))
    return {"revisionType": "S3", "s3Location": {"bucket": BUCKET, "key": key, "bundleType": "zip"}}


def _deploy(server: RunningServer, revision: dict[str, Any]) -> str:
    created = server.client().create_deployment(
        applicationName=APP, deploymentGroupName=GROUP, revision=revision
    )
    return str(created["deploymentId"])


def _ran(agent: RunningAgent, version: str) -> list[str]:
    path = agent.directory / "events"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line for line in lines if line.endswith(f" {version}")]


def test_replicas_share_secrets_and_a_push_to_one_is_deployed_through_another(
    fleet: Fleet,
) -> None:
    first, second, third = fleet.replicas
    # One admin key, one TLS certificate, one deployment-spec signer, whoever made them.
    for replica in (second, third):
        assert replica.access_key_id == first.access_key_id
        for name in ("tls-cert.pem", "tls-key.pem", SIGNER_CA_FILE, "spec-signer.pem"):
            assert (replica.data_dir / name).read_bytes() == (first.data_dir / name).read_bytes()
    # The bundle lives in the object store, not in the data directory of the replica pushed to.
    revision = _push(first, "v1")
    objects = fleet.store.client().list_objects_v2(Bucket=BUCKET, Prefix="opendeploy/")
    assert objects.get("KeyCount", 0) >= 1
    assert not (first.data_dir / "bundles").exists()
    deployment_id = _deploy(third, revision)
    info = finished_deployment(second.client(), deployment_id, timeout=90)
    assert info["status"] == "Succeeded", info.get("errorInformation")
    for agent in fleet.agents:
        assert _ran(agent, "v1") == [f"{e} v1" for e in HOOKS], agent.output()[-2000:]


def test_an_official_agent_trusting_one_replica_is_served_by_another(
    fleet: Fleet, tmp_path: Path
) -> None:
    # The official agent's Ruby stack: TLS pinned to the certificate it was given, the spec's
    # PKCS#7 checked against the signer CA file written when it registered, the bundle fetched
    # with aws-sdk-s3 through the S3 front, all of it from replicas other than the one it knows.
    ruby = need_ruby()
    first, second, third = fleet.replicas
    register_instance(first, "ruby-1", tmp_path / "ruby-1", tags={"role": "ruby"})
    host = yaml.safe_load((tmp_path / "ruby-1" / "codedeploy.onpremises.yml").read_text())
    client = first.client()
    client.create_deployment_group(
        applicationName=APP,
        deploymentGroupName="ruby",
        serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
        deploymentConfigName="CodeDeployDefault.AllAtOnce",
        onPremisesInstanceTagFilters=[{"Key": "role", "Value": "ruby", "Type": "KEY_AND_VALUE"}],
    )
    bundle = official_bundle()
    first.client("s3").put_object(Bucket=BUCKET, Key="ruby/app.zip", Body=bundle)
    deployment_id = second.client().create_deployment(
        applicationName=APP,
        deploymentGroupName="ruby",
        revision={
            "revisionType": "S3",
            "s3Location": {"bucket": BUCKET, "key": "ruby/app.zip", "bundleType": "zip"},
        },
    )["deploymentId"]
    signing_name, target_prefix = VARIANTS["ruby-1"]
    done = subprocess.run(
        [
            ruby,
            str(SCRIPT),
            third.endpoint,
            str(first.ca_bundle),
            str(tmp_path / "ruby-1" / SIGNER_CA_FILE),
            signing_name,
            target_prefix,
            host["aws_access_key_id"],
            host["aws_secret_access_key"],
            host["iam_user_arn"],
            host["region"],
            str(tmp_path / "bundle"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["tls_check"] == "passed", seen
    assert seen["spec_verified"] is True and seen["spec_signer_pinned"] is True, seen
    assert seen["spec"]["DeploymentId"] == deployment_id
    assert seen["bundle_etag_matches"] is True
    assert (tmp_path / "bundle").read_bytes() == bundle
    assert seen["ack"] == [200, "InProgress"] and seen["complete"] == 200
    # The host polls no more: stop its deployment rather than leave it to the dead-agent rule.
    client.stop_deployment(deploymentId=deployment_id)


def _deploy_while(fleet: Fleet, prefix: str, disturb: Any) -> list[str]:
    """Deploy ``<prefix>0``, ``<prefix>1`` … in turn (pushed and created through HAProxy) until
    ``disturb()``, run on a thread meanwhile, has returned (at least two); asserts that each
    succeeded and returns their versions."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            disturb()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    versions: list[str] = []
    results: list[tuple[str, Any]] = []
    while thread.is_alive() or len(versions) < 2:
        version = f"{prefix}{len(versions)}"
        deployment_id = wait_for(partial(_created, fleet, version), 60, f"{version} created")
        info = wait_for(partial(_finished, fleet, deployment_id), 150, f"{deployment_id} done")
        versions.append(version)
        results.append((info["status"], info.get("errorInformation")))
    thread.join(120)
    assert not errors, errors
    assert results == [("Succeeded", None)] * len(versions), results
    return versions


def _created(fleet: Fleet, version: str) -> str | None:
    """The deployment of ``version``: created now, or by an earlier try whose answer was lost
    with the replica that gave it (a retry must not deploy the version twice)."""
    try:
        client = fleet.front.client()
        listed = client.list_deployments(applicationName=APP, deploymentGroupName=GROUP)
        for deployment_id in listed["deployments"]:
            info = client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
            if info["revision"]["s3Location"]["key"] == f"{APP}/{version}.zip":
                return str(deployment_id)
        return _deploy(fleet.front, _push(fleet.front, version))
    except (BotoCoreError, ClientError):  # the replica that answered went away mid-call
        return None


def _finished(fleet: Fleet, deployment_id: str) -> dict[str, Any] | None:
    try:
        info = fleet.front.client().get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    except (BotoCoreError, ClientError):
        return None
    return info if info["status"] in ("Succeeded", "Failed", "Stopped") else None


def test_a_replica_killed_every_few_seconds_leaves_no_deployment_stuck_or_wrong(
    fleet: Fleet,
) -> None:
    def kill_each_in_turn() -> None:
        for victim in range(REPLICAS):
            time.sleep(2.0)  # a deployment is under way: kill in its midst
            fleet.restart(victim, kill=True)

    versions = _deploy_while(fleet, "k", kill_each_in_turn)
    for agent in fleet.agents:
        for version in versions:
            # Every hook exactly once: a killed replica neither lost nor repeated a command.
            assert _ran(agent, version) == [f"{e} {version}" for e in HOOKS], agent.output()[-3000:]


def test_a_rolling_restart_of_every_replica_fails_no_deployment(fleet: Fleet) -> None:
    stops: list[float] = []

    def roll() -> None:
        for index in range(REPLICAS):
            time.sleep(1.0)
            stops.append(fleet.restart(index, kill=False))

    _deploy_while(fleet, "r", roll)
    # Each replica held the agents' idle keep-alive TLS connections: they are cut at once, not
    # waited for (30 s each before).
    assert len(stops) == REPLICAS and max(stops) < 10, stops


def test_a_push_while_the_bundle_store_is_down_names_it(fleet: Fleet) -> None:
    # Last in the module: the store stays down.
    fleet.store.process.terminate()
    fleet.store.process.wait(30)
    s3 = fleet.replicas[0].client("s3", config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket=BUCKET, Key="down.zip", Body=_bundle("down"))
    error = caught.value.response["Error"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert error["Code"] == "ServiceUnavailable"
    assert f"s3://{BUCKET}/opendeploy/" in error["Message"], error
