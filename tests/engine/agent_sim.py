"""A server with its engine, plus minimal scripted agents speaking the real Command API.

``Cluster`` serves ``create_server(...).app`` in this process (uvicorn on a free port, engine
worker in the lifespan) with short engine timeouts; ``cluster.add_instance(name, tags)``
registers an on-premises instance, issues its key through ``/opendeploy/v1/instance-credentials``
and returns a :class:`ScriptedAgent`: a botocore client built from the Command API model, which
polls, fetches the spec, acknowledges and completes commands as a test tells it to.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from opendeploy.api.model import DATA_DIR
from opendeploy.engine.effectors.traffic import TrafficController
from opendeploy.server import create_server
from opendeploy.settings import ServerSettings
from opendeploy.testing.server import serve_in_thread

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/CodeDeploy"
S3_V1 = {
    "revisionType": "S3",
    "s3Location": {"bucket": "b", "key": "app-v1.zip", "bundleType": "zip", "eTag": "e1"},
}
S3_V2 = {
    "revisionType": "S3",
    "s3Location": {"bucket": "b", "key": "app-v2.zip", "bundleType": "zip", "eTag": "e2"},
}
AGENT_EVENTS = [
    "ApplicationStop",
    "DownloadBundle",
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
]


def signed_post(
    endpoint: str, path: str, body: dict[str, Any], key: str, secret: str, service: str
) -> tuple[int, dict[str, Any]]:
    """POST a SigV4-signed JSON body; (status, decoded JSON answer)."""
    data = json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=endpoint + path,
        data=data,
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(Credentials(key, secret), service, REGION).add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(
        prepared.url, data=data, headers=dict(prepared.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


_SESSION_LOCK = threading.Lock()


@functools.cache
def _commands_session() -> botocore.session.Session:
    """One botocore session per test process for every scripted agent's client: a new session
    loads its models again (0.15-0.5 s a client on a loaded machine, ~0.01 s from a shared one).
    Each client still has its own credentials, config and event handlers."""
    session = botocore.session.Session()
    session.get_component("data_loader").search_paths.insert(0, str(DATA_DIR))
    return session


@functools.cache
def _admin_session() -> boto3.session.Session:
    """One boto3 session per test process for the clusters' admin clients (as above)."""
    return boto3.session.Session()


def command_client(
    endpoint: str, key: str, secret: str, version: str, *, read_timeout: float = 60
) -> Any:
    """A botocore client for ``codedeploy-commands`` from the packaged model (a request that
    gets no answer within ``read_timeout`` s fails, and its connection is closed)."""
    with _SESSION_LOCK:  # a botocore session is not thread-safe; its clients are
        client = _commands_session().create_client(
            "codedeploy-commands",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(read_timeout=read_timeout, retries={"max_attempts": 1}),
        )

    def add_version(request: Any, **_: Any) -> None:
        request.headers["x-amz-codedeploy-agent-version"] = version

    client.meta.events.register("before-sign.codedeploy-commands.*", add_version)
    return client


@dataclass
class ScriptedAgent:
    """One host's agent, driven step by step by the test."""

    name: str
    host_id: str
    client: Any
    log: list[tuple[str, str]] = field(default_factory=list)  # (deployment id, event) done

    def poll(self) -> dict[str, Any] | None:
        command: dict[str, Any] | None = self.client.poll_host_command(
            HostIdentifier=self.host_id
        ).get("HostCommand")
        return command

    def spec(self, command: dict[str, Any]) -> dict[str, Any]:
        spec: dict[str, Any] = self.client.get_deployment_specification(
            DeploymentExecutionId=command["DeploymentExecutionId"], HostIdentifier=self.host_id
        )
        return spec

    def ack(self, command: dict[str, Any], noop: bool = False) -> str | None:
        answer = self.client.put_host_command_acknowledgement(
            HostCommandIdentifier=command["HostCommandIdentifier"],
            Diagnostics={"Format": "JSON", "Payload": json.dumps({"IsCommandNoop": noop})},
        )
        status: str | None = answer.get("CommandStatus")
        return status

    def complete(
        self, command: dict[str, Any], ok: bool = True, code: int = 4, message: str = ""
    ) -> None:
        payload = {
            "error_code": 0 if ok else code,
            "script_name": "" if ok else f"scripts/{command['CommandName']}.sh",
            "message": "Succeeded: " if ok else message or "Script failed with exit code 1",
            "log": "" if ok else "[stderr]boom\n",
        }
        self.client.put_host_command_complete(
            HostCommandIdentifier=command["HostCommandIdentifier"],
            CommandStatus="Succeeded" if ok else "Failed",
            Diagnostics={"Format": "JSON", "Payload": json.dumps(payload)},
        )

    def step(self, fail: str | None = None) -> dict[str, Any] | None:
        """Poll once; run the command (spec, ack, complete) if one came. Fails event ``fail``."""
        command = self.poll()
        if command is None:
            return None
        self.spec(command)
        status = self.ack(command)
        deployment = command["DeploymentExecutionId"].rsplit("/", 1)[-1]
        if status in ("Succeeded", "Failed"):
            return command
        self.complete(command, ok=command["CommandName"] != fail)
        self.log.append((deployment, command["CommandName"]))
        return command

    def run(self, count: int, fail: str | None = None, timeout: float = 60.0) -> list[str]:
        """Run ``count`` commands (polls until each arrives); their names.

        Fails once ``timeout`` seconds have passed without them (a poll is held a few seconds at
        most), so that a deployment that stopped handing out commands fails the test with what
        this agent did, instead of holding it until pytest-timeout.
        """
        done: list[str] = []
        deadline = time.monotonic() + timeout
        while len(done) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} got {len(done)} of {count} commands in {timeout:.0f} s: {done}"
                )
            command = self.step(fail)
            if command is not None:
                done.append(command["CommandName"])
        return done


@dataclass
class Cluster:
    endpoint: str
    settings: ServerSettings
    admin_key: str
    admin_secret: str
    server: Any

    @functools.cached_property
    def cd(self) -> Any:
        """The admin's CodeDeploy client, made once: building one costs 0.1-0.4 s, and
        ``wait_status`` asks for it on every turn (boto3 clients are thread-safe)."""
        with _SESSION_LOCK:
            return _admin_session().client(
                "codedeploy",
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id=self.admin_key,
                aws_secret_access_key=self.admin_secret,
            )

    def issue(self, name: str, key: str | None = None, secret: str | None = None) -> Any:
        return signed_post(
            self.endpoint,
            "/opendeploy/v1/instance-credentials",
            {"instanceName": name},
            key or self.admin_key,
            secret or self.admin_secret,
            "codedeploy",
        )

    def add_instance(
        self,
        name: str,
        tags: dict[str, str],
        version: str = "OPENDEPLOY-test",
        *,
        read_timeout: float = 60,
    ) -> ScriptedAgent:
        arn = f"arn:aws:iam::123456789012:user/opendeploy/{name}"
        cd = self.cd
        cd.register_on_premises_instance(instanceName=name, iamUserArn=arn)
        cd.add_tags_to_on_premises_instances(
            instanceNames=[name], tags=[{"Key": k, "Value": v} for k, v in tags.items()]
        )
        status, creds = self.issue(name)
        assert status == 200, creds
        assert creds["iamUserArn"] == arn
        client = command_client(
            self.endpoint,
            creds["accessKeyId"],
            creds["secretAccessKey"],
            version,
            read_timeout=read_timeout,
        )
        return ScriptedAgent(name, arn, client)

    def group(
        self,
        app: str,
        group: str = "prod",
        *,
        config: str = "CodeDeployDefault.OneAtATime",
        rollback: bool = False,
        tag: tuple[str, str] = ("app", "web"),
        target_group: str | None = None,
    ) -> None:
        """An application with a group; ``target_group``: its traffic goes through that target
        group, with traffic control (BlockTraffic/AllowTraffic run on the server)."""
        cd = self.cd
        cd.create_application(applicationName=app)
        extra: dict[str, Any] = {}
        if target_group is not None:
            extra["loadBalancerInfo"] = {"targetGroupInfoList": [{"name": target_group}]}
            extra["deploymentStyle"] = {
                "deploymentType": "IN_PLACE",
                "deploymentOption": "WITH_TRAFFIC_CONTROL",
            }
        if rollback:
            extra["autoRollbackConfiguration"] = {
                "enabled": True,
                "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST"],
            }
        cd.create_deployment_group(
            applicationName=app,
            deploymentGroupName=group,
            serviceRoleArn=ROLE,
            deploymentConfigName=config,
            onPremisesInstanceTagFilters=[
                {"Key": tag[0], "Value": tag[1], "Type": "KEY_AND_VALUE"}
            ],
            **extra,
        )

    def deploy(self, app: str, revision: dict[str, Any], group: str = "prod") -> str:
        answer = self.cd.create_deployment(
            applicationName=app, deploymentGroupName=group, revision=revision
        )
        return str(answer["deploymentId"])

    def info(self, deployment_id: str) -> dict[str, Any]:
        return dict(self.cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"])

    def wait_status(
        self, deployment_id: str, *statuses: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The deployment once its status is one of ``statuses`` (the engine ticks at 0.05 s).

        The deadline only bounds a failing test; a generous one keeps a loaded machine green.
        """
        engine = self.server.engine
        deadline = time.monotonic() + timeout
        while True:
            info = self.info(deployment_id)
            if info["status"] in statuses:
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"{deployment_id} is {info['status']}, not {statuses}")
            engine.wait_terminal(deployment_id, min(0.5, deadline - time.monotonic()))

    def targets(self, deployment_id: str) -> dict[str, dict[str, Any]]:
        cd = self.cd
        ids = cd.list_deployment_targets(deploymentId=deployment_id)["targetIds"]
        got = cd.batch_get_deployment_targets(deploymentId=deployment_id, targetIds=ids)
        return {
            t["instanceTarget"]["targetId"]: t["instanceTarget"] for t in got["deploymentTargets"]
        }


def settings_for(tmp_path: Path, database_url: str, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "agent_dead_after_seconds": 30.0,
        "poll_timeout_seconds": 2.0,
        "engine_tick_seconds": 0.05,
        "event_start_timeout_seconds": 30.0,
    }
    values.update(overrides)
    return ServerSettings(**values)


@contextmanager
def running_cluster(
    settings: ServerSettings, *, traffic: TrafficController | None = None
) -> Iterator[Cluster]:
    built = create_server(settings, traffic=traffic)
    with serve_in_thread(built.app) as endpoint:
        yield Cluster(
            endpoint,
            settings,
            built.credentials.access_key_id,
            built.credentials.secret_access_key,
            built,
        )
