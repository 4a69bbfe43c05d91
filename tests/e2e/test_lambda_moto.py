"""Lambda deployments end to end: a real server driving a ``moto_server`` through boto3.

The server reaches moto through boto3's standard configuration only (``AWS_ENDPOINT_URL_LAMBDA``
and the credential chain, in its environment). moto stores aliases and their routing weights but
runs no code without containers, so the test plays the hook functions: it reads each hook's
execution id from the server's output endpoint (the step's progress line) and answers through
PutLifecycleEventHookExecutionStatus, as a hook function would. Minutes last 0.5 s
(``--minute-seconds``) and the event timeout is 3 s, so every schedule runs in seconds.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import re
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from opendeploy.cli.logs import fetch_output
from opendeploy.testing.server import RunningServer, start_server
from tests.e2e.polling import TERMINAL, deployment_info, finished_deployment, wait_for
from tests.revisions.servers import moto_server
from tests.web.conftest import login

ROLE = "arn:aws:iam::123456789012:role/CodeDeploy"
BLUE_GREEN = {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
MINUTE = 0.5
EVENT_TIMEOUT = 3
_EXECUTION_ID = re.compile(r"lifecycleEventHookExecutionId (\S+?)\.?$")
_names = itertools.count(1)


pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as url:
        config = json.dumps({"lambda": {"use_docker": False}}).encode()
        request = urllib.request.Request(f"{url}/moto-api/config", data=config, method="POST")
        urllib.request.urlopen(request, timeout=10).read()
        yield url


def server_env(moto: str) -> dict[str, str]:
    """boto3's standard configuration, nothing of OpenDeploy's: where Lambda is, as whom."""
    return {
        "AWS_ENDPOINT_URL_LAMBDA": moto,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


SERVER_ARGS = (
    "--minute-seconds",
    str(MINUTE),
    "--event-timeout",
    str(EVENT_TIMEOUT),
    "--step-lease",
    "2",
)


@pytest.fixture(scope="module")
def server(moto: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(
        tmp_path_factory.mktemp("lambda-server"), extra_args=SERVER_ARGS, env=server_env(moto)
    )
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def lam(moto: str) -> Any:
    return boto3.session.Session().client(
        "lambda",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def role(moto: str) -> str:
    iam = boto3.session.Session().client(
        "iam",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    arn: str = iam.create_role(RoleName="lambda", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    return arn


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


@dataclass
class Function:
    name: str
    pre: str
    post: str


def new_function(lam: Any, role: str, versions: int = 2) -> Function:
    """A function with ``versions`` published versions, alias ``live`` on 1, two hook functions."""
    n = next(_names)
    name = f"fn{n}"
    code = _zip()
    lam.create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler",
        Code={"ZipFile": code},
    )  # fmt: skip
    for _ in range(versions):
        lam.update_function_code(FunctionName=name, ZipFile=code)
        lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    hooks = Function(name, f"CodeDeployHook_pre{n}", f"CodeDeployHook_post{n}")
    for hook in (hooks.pre, hooks.post):
        lam.create_function(
            FunctionName=hook, Runtime="python3.12", Role=role, Handler="app.handler",
            Code={"ZipFile": code},
        )  # fmt: skip
    return hooks


def appspec(fn: Function, current: str, target: str, *, hooks: bool = True) -> dict[str, Any]:
    # Lower-case keys and JSON on purpose: both are accepted, as aws-cli accepts them.
    body: dict[str, Any] = {
        "version": 0.0,
        "resources": [
            {
                fn.name: {
                    "type": "AWS::Lambda::Function",
                    "properties": {
                        "name": fn.name,
                        "alias": "live",
                        "currentversion": current,
                        "targetversion": target,
                    },
                }
            }
        ],
    }
    if hooks:
        body["hooks"] = [{"BeforeAllowTraffic": fn.pre}, {"AfterAllowTraffic": fn.post}]
    content = json.dumps(body)
    return {"revisionType": "AppSpecContent", "appSpecContent": {"content": content}}


def new_group(cd: Any, config: str = "CodeDeployDefault.LambdaAllAtOnce", **extra: Any) -> str:
    app = f"app{next(_names)}"
    cd.create_application(applicationName=app, computePlatform="Lambda")
    cd.create_deployment_group(
        applicationName=app,
        deploymentGroupName="g",
        serviceRoleArn=ROLE,
        deploymentStyle=BLUE_GREEN,
        deploymentConfigName=config,
        **extra,
    )
    return app


def custom_config(cd: Any, routing: dict[str, Any]) -> str:
    name = f"cfg{next(_names)}"
    cd.create_deployment_config(
        deploymentConfigName=name, computePlatform="Lambda", trafficRoutingConfig=routing
    )
    return name


def _every(percent: int, minutes: int, kind: str) -> dict[str, int]:
    return {f"{kind}Percentage": percent, f"{kind}Interval": minutes}


def alias_state(lam: Any, fn: Function) -> tuple[str, dict[str, float]]:
    alias = lam.get_alias(FunctionName=fn.name, Name="live")
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return alias["FunctionVersion"], dict(weights)


def execution_id(cd: Any, deployment_id: str, event: str) -> str:
    """The hook execution id of ``event``, from the step's progress line."""

    def find() -> str | None:
        lines, _ = fetch_output(cd, deployment_id, event=event)
        for line in lines:
            if (match := _EXECUTION_ID.search(line.line)) is not None:
                return match.group(1)
        return None

    found: str = wait_for(find, 20, f"the {event} hook of {deployment_id} to be invoked")
    return found


def answer(cd: Any, deployment_id: str, event: str, status: str = "Succeeded") -> str:
    ident = execution_id(cd, deployment_id, event)
    cd.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=ident, status=status
    )
    return ident


def events_of(cd: Any, deployment_id: str, target: str) -> dict[str, str]:
    got = cd.batch_get_deployment_targets(deploymentId=deployment_id, targetIds=[target])
    (only,) = got["deploymentTargets"]
    return {e["lifecycleEventName"]: e["status"] for e in only["lambdaTarget"]["lifecycleEvents"]}


def watch_alias(lam: Any, fn: Function, until: Any) -> list[tuple[str, dict[str, float]]]:
    """Every distinct alias state seen until ``until()`` is true."""
    seen: list[tuple[str, dict[str, float]]] = []

    def look() -> bool:
        state = alias_state(lam, fn)
        if not seen or seen[-1] != state:
            seen.append(state)
        return bool(until())

    wait_for(look, 30, f"the alias of {fn.name} to settle")
    return seen


def test_all_at_once_with_both_hooks_and_the_hook_answers_rules(
    server: RunningServer, lam: Any, role: str
) -> None:
    cd = server.client("codedeploy")
    fn = new_function(lam, role)
    app = new_group(cd)
    dep = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=appspec(fn, "1", "2")
    )["deploymentId"]
    pre = answer(cd, dep, "BeforeAllowTraffic")
    # An answer is taken once; a second one, an unknown id, a status other than the two: AWS's
    # errors.
    for ident, status, code in (
        (pre, "Succeeded", "LifecycleEventAlreadyCompletedException"),
        ("not-an-id", "Succeeded", "InvalidLifecycleEventHookExecutionIdException"),
        (pre, "Pending", "InvalidLifecycleEventHookExecutionStatusException"),
    ):
        with pytest.raises(ClientError) as exc:
            cd.put_lifecycle_event_hook_execution_status(
                deploymentId=dep, lifecycleEventHookExecutionId=ident, status=status
            )
        assert exc.value.response["Error"]["Code"] == code
    answer(cd, dep, "AfterAllowTraffic")
    info = finished_deployment(cd, dep, timeout=30)
    assert info["status"] == "Succeeded", info
    assert info["deploymentOverview"]["Succeeded"] == 1
    assert alias_state(lam, fn) == ("2", {})
    assert cd.list_deployment_targets(deploymentId=dep)["targetIds"] == [fn.name]
    (target,) = cd.batch_get_deployment_targets(deploymentId=dep, targetIds=[fn.name])[
        "deploymentTargets"
    ]
    assert target["deploymentTargetType"] == "LambdaTarget"
    lt = target["lambdaTarget"]
    assert lt["status"] == "Succeeded"
    assert lt["lambdaFunctionInfo"] == {
        "functionName": fn.name,
        "functionAlias": "live",
        "currentVersion": "1",
        "targetVersion": "2",
        "targetVersionWeight": 1.0,
    }
    assert [e["lifecycleEventName"] for e in lt["lifecycleEvents"]] == [
        "BeforeAllowTraffic",
        "AllowTraffic",
        "AfterAllowTraffic",
    ]
    assert {e["status"] for e in lt["lifecycleEvents"]} == {"Succeeded"}
    # Answering after the deployment ended.
    with pytest.raises(ClientError) as exc:
        cd.put_lifecycle_event_hook_execution_status(
            deploymentId=dep, lifecycleEventHookExecutionId=pre, status="Failed"
        )
    assert exc.value.response["Error"]["Code"] == "LifecycleEventAlreadyCompletedException"


@pytest.mark.parametrize(
    ("routing", "expected"),
    [
        (
            {"type": "TimeBasedCanary", "timeBasedCanary": _every(20, 1, "canary")},
            [("1", {}), ("1", {"2": 0.2}), ("2", {})],
        ),
        (
            {"type": "TimeBasedLinear", "timeBasedLinear": _every(25, 1, "linear")},
            [("1", {}), ("1", {"2": 0.25}), ("1", {"2": 0.5}), ("1", {"2": 0.75}), ("2", {})],
        ),
    ],
    ids=["canary", "linear"],
)  # fmt: skip
def test_canary_and_linear_shift_the_alias_step_by_step(
    server: RunningServer,
    lam: Any,
    role: str,
    routing: dict[str, Any],
    expected: list[tuple[str, dict[str, float]]],
) -> None:
    cd = server.client("codedeploy")
    fn = new_function(lam, role)
    app = new_group(cd, custom_config(cd, routing))
    dep = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=appspec(fn, "1", "2", hooks=False)
    )["deploymentId"]
    seen = watch_alias(lam, fn, lambda: deployment_info(cd, dep)["status"] in TERMINAL)
    # Polled every 0.1 s, each weight held 0.5 s: every state is seen, in order (a poll that
    # comes late may miss one on a loaded machine; it can never see one out of order).
    assert seen[0] == expected[0] and seen[-1] == expected[-1]
    assert [state for state in expected if state in seen] == seen
    assert len(seen) >= len(expected) - 1
    assert finished_deployment(cd, dep)["status"] == "Succeeded"
    # The shifts, as the step's output (watch, the dashboard) shows them.
    lines = [line.line for line in fetch_output(cd, dep, event="AllowTraffic")[0]]
    percents = [int(m.group(1)) for line in lines if (m := re.search(r"version 2 (\d+)%", line))]
    assert percents == [int(w.get("2", 1.0 if v == "2" else 0) * 100) for v, w in expected[1:]]
    # The dashboard draws the same history.
    with login(server) as ui:
        page = ui.get(f"/ui/deployments/{dep}").text
    assert f"{fn.name}:live" in page
    shown = [int(p) for p in re.findall(r"(\d+) % on version 2", page)]
    assert shown == percents


def test_a_failing_before_hook_fails_the_deployment_and_leaves_the_alias(
    server: RunningServer, lam: Any, role: str
) -> None:
    cd = server.client("codedeploy")
    fn = new_function(lam, role)
    app = new_group(cd)
    dep = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=appspec(fn, "1", "2")
    )["deploymentId"]
    answer(cd, dep, "BeforeAllowTraffic", "Failed")
    info = finished_deployment(cd, dep, timeout=30)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert fn.pre in info["errorInformation"]["message"]
    assert events_of(cd, dep, fn.name) == {
        "BeforeAllowTraffic": "Failed",
        "AllowTraffic": "Skipped",
        "AfterAllowTraffic": "Skipped",
    }
    assert alias_state(lam, fn) == ("1", {})


def test_a_failing_after_hook_rolls_the_alias_back(
    server: RunningServer, lam: Any, role: str
) -> None:
    cd = server.client("codedeploy")
    fn = new_function(lam, role, versions=3)
    app = new_group(
        cd,
        autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
    )
    first = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=appspec(fn, "1", "2", hooks=False)
    )["deploymentId"]
    assert finished_deployment(cd, first)["status"] == "Succeeded"
    dep = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=appspec(fn, "2", "3")
    )["deploymentId"]
    answer(cd, dep, "BeforeAllowTraffic")
    answer(cd, dep, "AfterAllowTraffic", "Failed")
    info = finished_deployment(cd, dep, timeout=30)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    rollback = info["rollbackInfo"]["rollbackDeploymentId"]
    back = finished_deployment(cd, rollback, timeout=30)
    assert back["status"] == "Succeeded" and back["creator"] == "codeDeployRollback"
    assert back["rollbackInfo"]["rollbackTriggeringDeploymentId"] == dep
    assert alias_state(lam, fn) == ("2", {})
    messages = wait_for(
        lambda: [
            m for m in deployment_info(cd, dep)["deploymentStatusMessages"] if "put back" in m
        ],
        10,
        "the alias restored message",
    )
    assert "version 2" in messages[0]


def test_a_hook_that_never_answers_fails_after_the_event_timeout(
    server: RunningServer, lam: Any, role: str
) -> None:
    cd = server.client("codedeploy")
    fn = new_function(lam, role)
    app = new_group(cd)
    dep = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=appspec(fn, "1", "2")
    )["deploymentId"]
    execution_id(cd, dep, "BeforeAllowTraffic")  # invoked, and never answered
    info = finished_deployment(cd, dep, timeout=EVENT_TIMEOUT + 15)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert f"did not complete within {EVENT_TIMEOUT} s" in info["errorInformation"]["message"]
    assert alias_state(lam, fn) == ("1", {})


def test_checks_against_the_function_and_a_bad_appspec(
    server: RunningServer, lam: Any, role: str
) -> None:
    cd = server.client("codedeploy")
    fn = new_function(lam, role)
    app = new_group(cd)
    cases = [
        (appspec(fn, "2", "1", hooks=False), "alias version does not match"),
        (appspec(Function("nofunction", "x", "y"), "1", "2", hooks=False), "does not exist"),
        (appspec(fn, "1", "7", hooks=False), "TargetVersion 7"),
        (
            {"revisionType": "String", "string": {"content": "version: 0.0\nResources: []\n"}},
            "names no resource",
        ),
    ]
    for revision, words in cases:
        dep = cd.create_deployment(applicationName=app, deploymentGroupName="g", revision=revision)[
            "deploymentId"
        ]
        info = finished_deployment(cd, dep, timeout=30)
        assert info["status"] == "Failed", info
        assert info["errorInformation"]["code"] == "INVALID_LAMBDA_CONFIGURATION", info
        assert words in info["errorInformation"]["message"]
        assert info["errorInformation"]["message"].startswith(
            "The deployment failed because the AppSpec file that specifies the AWS Lambda"
        )
    assert alias_state(lam, fn) == ("1", {})


def _linear_slow(cd: Any) -> str:
    return custom_config(
        cd,
        {"type": "TimeBasedLinear", "timeBasedLinear": _every(20, 2, "linear")},
    )  # fmt: skip


def test_stop_mid_shift_puts_the_alias_back(server: RunningServer, lam: Any, role: str) -> None:
    cd = server.client("codedeploy")
    fn = new_function(lam, role)
    app = new_group(cd, _linear_slow(cd))
    dep = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=appspec(fn, "1", "2", hooks=False)
    )["deploymentId"]
    wait_for(lambda: alias_state(lam, fn) == ("1", {"2": 0.2}), 20, "the first shift")
    cd.stop_deployment(deploymentId=dep, autoRollbackEnabled=False)
    info = finished_deployment(cd, dep, timeout=20)
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "MANUAL_STOP"
    wait_for(lambda: alias_state(lam, fn) == ("1", {}), 10, "the alias put back")
    assert events_of(cd, dep, fn.name)["AfterAllowTraffic"] == "Skipped"


def test_server_killed_mid_shift_resumes_and_finishes(
    server: RunningServer, moto: str, lam: Any, role: str
) -> None:
    # Last in the module: it kills the module's server and leaves it restarted in its place.
    cd = server.client("codedeploy")
    fn = new_function(lam, role)
    app = new_group(cd, _linear_slow(cd))
    dep = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=appspec(fn, "1", "2", hooks=False)
    )["deploymentId"]
    wait_for(lambda: alias_state(lam, fn) == ("1", {"2": 0.2}), 20, "the first shift")
    server.process.kill()  # SIGKILL: no chance to tidy up
    server.process.wait()
    server.stop()
    restarted = start_server(
        server.data_dir, extra_args=SERVER_ARGS, env=server_env(moto), port=server.port
    )
    for f in dataclasses.fields(RunningServer):
        setattr(server, f.name, getattr(restarted, f.name))
    cd = server.client("codedeploy")
    seen = watch_alias(lam, fn, lambda: deployment_info(cd, dep)["status"] in TERMINAL)
    assert finished_deployment(cd, dep)["status"] == "Succeeded"
    assert seen[-1] == ("2", {})
    weights = [w.get("2", 0.0) for v, w in seen if v == "1"]
    assert weights == sorted(weights)  # only forward, never a step back
    assert "rerun=true" in server.log_text()
